//! The token stream as a tree of keyword lines and `{ }` blocks. A line
//! followed by `{` owns the block; keepalived reads value blocks
//! (`virtual_ipaddress { … }`) the same way, one child per line.

use super::lexer::{Loc, Token};
use super::NoteKind;

/// Blocks nested deeper than this are not configuration.
const MAX_DEPTH: usize = 32;

/// One keyword line, with its block if it has one.
#[derive(Debug, Clone)]
pub(super) struct Node {
    /// Index in file order, for the converter's bookkeeping.
    pub(super) id: usize,
    pub(super) keyword: String,
    pub(super) args: Vec<String>,
    /// The text the words came from (scripts re-split it with quotes and escapes).
    pub(super) raw: String,
    pub(super) loc: Loc,
    pub(super) block: Option<Block>,
}

/// A `{ … }` block.
#[derive(Debug, Clone)]
pub(super) struct Block {
    pub(super) children: Vec<Node>,
    pub(super) open: Loc,
    /// `None` when the input ended first.
    pub(super) close: Option<Loc>,
}

impl Node {
    /// The block's children, or none.
    pub(super) fn children(&self) -> &[Node] {
        self.block.as_ref().map_or(&[], |b| &b.children)
    }

    /// The first argument.
    pub(super) fn arg(&self) -> Option<&str> {
        self.args.first().map(String::as_str)
    }

    /// This node and everything under it, depth first.
    pub(super) fn walk(&self, visit: &mut dyn FnMut(&Node)) {
        visit(self);
        for child in self.children() {
            child.walk(visit);
        }
    }

    /// Every location this node's text occupies (its line, its braces, its
    /// children's), for accounting.
    pub(super) fn locs(&self, out: &mut Vec<Loc>) {
        out.push(self.loc);
        if let Some(block) = &self.block {
            out.push(block.open);
            out.extend(block.close);
            for child in &block.children {
                child.locs(out);
            }
        }
    }
}

/// A brace the tree has no place for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StrayNote {
    pub(super) loc: Loc,
    pub(super) keyword: String,
    pub(super) reason: &'static str,
    pub(super) kind: NoteKind,
}

/// The tree and what did not fit in it.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    pub(super) nodes: Vec<Node>,
    pub(super) notes: Vec<StrayNote>,
    /// Lines of tokens the tree does not hold (stray braces, too-deep blocks).
    pub(super) skipped: Vec<Loc>,
    /// How many nodes were made (ids are 0..count).
    pub(super) count: usize,
}

struct Frame {
    node: Node,
    children: Vec<Node>,
}

/// Builds the tree. Never recurses on input: depth is bounded by [`MAX_DEPTH`].
pub(super) fn parse(tokens: Vec<Token>) -> Parsed {
    let mut out = Parsed::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut top: Vec<Node> = Vec::new();
    let mut pending: Option<Node> = None;
    // Braces of a block too deep to keep: skipped until it closes.
    let mut skip_depth = 0usize;

    for token in tokens {
        if skip_depth > 0 {
            let loc = match &token {
                Token::Open(loc) => {
                    skip_depth += 1;
                    *loc
                }
                Token::Close(loc) => {
                    skip_depth -= 1;
                    *loc
                }
                Token::Words { loc, .. } => *loc,
            };
            out.skipped.push(loc);
            continue;
        }
        match token {
            Token::Words { mut words, raw, loc } => {
                flush(&mut pending, &mut stack, &mut top);
                let keyword = words.remove(0);
                pending = Some(Node { id: out.count, keyword, args: words, raw, loc, block: None });
                out.count += 1;
            }
            Token::Open(loc) => {
                if stack.len() >= MAX_DEPTH {
                    flush(&mut pending, &mut stack, &mut top);
                    out.notes.push(StrayNote {
                        loc,
                        keyword: "{".to_owned(),
                        reason: "blocks nested this deep are not configuration: skipped \
                                 to the matching }",
                        kind: NoteKind::NotCarried,
                    });
                    out.skipped.push(loc);
                    skip_depth = 1;
                    continue;
                }
                let node = match pending.take() {
                    Some(node) => node,
                    // A `{` with no keyword line before it: the converter names it.
                    None => {
                        let node = Node {
                            id: out.count,
                            keyword: "{".to_owned(),
                            args: Vec::new(),
                            raw: "{".to_owned(),
                            loc,
                            block: None,
                        };
                        out.count += 1;
                        node
                    }
                };
                let mut node = node;
                node.block = Some(Block { children: Vec::new(), open: loc, close: None });
                stack.push(Frame { node, children: Vec::new() });
            }
            Token::Close(loc) => {
                flush(&mut pending, &mut stack, &mut top);
                match stack.pop() {
                    Some(frame) => close(frame, Some(loc), &mut stack, &mut top),
                    None => {
                        out.notes.push(StrayNote {
                            loc,
                            keyword: "}".to_owned(),
                            reason: "closes no block: ignored, as keepalived does \
                                     (\"Extra '}' found\")",
                            kind: NoteKind::Cosmetic,
                        });
                        out.skipped.push(loc);
                    }
                }
            }
        }
    }
    flush(&mut pending, &mut stack, &mut top);
    while let Some(frame) = stack.pop() {
        out.notes.push(StrayNote {
            loc: frame.node.block.as_ref().map_or(frame.node.loc, |b| b.open),
            keyword: frame.node.keyword.clone(),
            reason: "block is never closed: read to the end of the input, as keepalived \
                     does (\"missing '}'\")",
            kind: NoteKind::Cosmetic,
        });
        close(frame, None, &mut stack, &mut top);
    }
    out.nodes = top;
    out
}

fn flush(pending: &mut Option<Node>, stack: &mut [Frame], top: &mut Vec<Node>) {
    if let Some(node) = pending.take() {
        match stack.last_mut() {
            Some(frame) => frame.children.push(node),
            None => top.push(node),
        }
    }
}

fn close(frame: Frame, at: Option<Loc>, stack: &mut [Frame], top: &mut Vec<Node>) {
    let Frame { mut node, children } = frame;
    if let Some(block) = &mut node.block {
        block.children = children;
        block.close = at;
    }
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None => top.push(node),
    }
}

#[cfg(test)]
mod tests {
    use super::super::lexer::{lex_text, LexOptions};
    use super::*;
    use proptest::prelude::*;

    fn tree(text: &str) -> Parsed {
        let lexed = lex_text(text, "t.conf", None, &LexOptions::default());
        parse(lexed.tokens)
    }

    /// `keyword(args)[children]` for compact comparisons.
    fn render(nodes: &[Node]) -> String {
        nodes
            .iter()
            .map(|n| {
                let mut s = n.keyword.clone();
                if !n.args.is_empty() {
                    s.push_str(&format!("({})", n.args.join(",")));
                }
                if n.block.is_some() {
                    s.push_str(&format!("[{}]", render(n.children())));
                }
                s
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn blocks_nest_and_own_their_lines() {
        let parsed = tree(
            "vrrp_instance VI_1 {\n state BACKUP\n authentication {\n auth_type PASS\n }\n\
             virtual_ipaddress { 10.0.0.1 }\n}\nvirtual_server 1.2.3.4 80\n{\n}\n",
        );
        assert_eq!(
            render(&parsed.nodes),
            "vrrp_instance(VI_1)[state(BACKUP) authentication[auth_type(PASS)] \
             virtual_ipaddress[10.0.0.1]] virtual_server(1.2.3.4,80)[]"
        );
        assert!(parsed.notes.is_empty());
        let first = &parsed.nodes[0];
        let block = first.block.as_ref().expect("a block");
        assert_eq!((first.loc.line, block.open.line, block.close.map(|l| l.line)), (1, 1, Some(7)));
        assert_eq!(parsed.nodes[1].block.as_ref().map(|b| b.open.line), Some(9));
    }

    #[test]
    fn stray_and_missing_braces_are_named() {
        let parsed = tree("}\na {\n{ b }\n");
        assert_eq!(render(&parsed.nodes), "a[{[b]]");
        let lines: Vec<usize> = parsed.notes.iter().map(|n| n.loc.line).collect();
        assert_eq!(lines, [1, 2]);
    }

    #[test]
    fn deep_nesting_is_cut_not_recursed() {
        let text = format!("{}x{}", "a {\n".repeat(100), "}\n".repeat(100));
        let parsed = tree(&text);
        assert_eq!(parsed.notes.len(), 1);
        let mut depth = 0;
        let mut node = &parsed.nodes[0];
        while let Some(child) = node.children().first() {
            node = child;
            depth += 1;
        }
        assert_eq!(depth, MAX_DEPTH);
    }

    proptest! {
        /// Every token of arbitrary text ends up in the tree or in `skipped`:
        /// the parser loses no line.
        #[test]
        fn no_token_is_lost(text in "[a-z0-9 {}\n]{0,200}") {
            let lexed = lex_text(&text, "t.conf", None, &LexOptions::default());
            let mut want: Vec<Loc> = lexed.tokens.iter().map(|t| match t {
                Token::Words { loc, .. } | Token::Open(loc) | Token::Close(loc) => *loc,
            }).collect();
            let parsed = parse(lexed.tokens);
            let mut got = parsed.skipped.clone();
            for node in &parsed.nodes {
                node.locs(&mut got);
            }
            want.sort();
            want.dedup();
            got.sort();
            got.dedup();
            prop_assert_eq!(want, got);
        }
    }
}
