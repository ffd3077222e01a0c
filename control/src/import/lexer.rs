//! keepalived.conf as keepalived's `read_line()` sees it: comments cut, lines
//! split at braces, conditional (`@id`) lines and `include` directives
//! resolved, every token stamped with its file and line.
//!
//! Rules, from keepalived's lib/parser.c (2.2.x): `!` and `#` start a comment
//! anywhere outside double quotes (`\!`, `\#` escape them); a line is cut
//! before its first `{` or `}` outside quotes, and the brace and the rest are
//! read as the next line; words are separated by whitespace, and `"…"` is one
//! word without its quotes. An `include FILE` line (exactly two words, also
//! `includer`/`includem`/`includew`/`includeb`/`includea`) is replaced by the
//! files it names: a glob with `{a,b}` braces, relative to the directory of the
//! file that includes it (keepalived chdir()s there while reading a file),
//! matches sorted, directories and executable files skipped, a pattern that
//! matches nothing included as nothing. The top file's own includes are
//! relative to its directory, as with `keepalived -f /etc/keepalived/…`.

use std::path::{Path, PathBuf};

use super::glob;
use super::{ImportError, NoteKind};

/// Includes nested deeper than this are a loop.
const MAX_INCLUDE_DEPTH: usize = 16;
/// keepalived reads lines into a buffer of this size (MAXBUF); longer lines
/// are nonsense in a configuration, and we refuse to hold on to them.
const MAX_FILE_BYTES: u64 = 16 << 20;

/// Index of a file in [`Lexed::files`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct FileId(pub(super) usize);

/// Where a token came from: file and 1-based line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Loc {
    pub(super) file: FileId,
    pub(super) line: usize,
}

/// One piece of a logical line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Token {
    /// A keyword and its arguments; `raw` is the text they were split from.
    Words { words: Vec<String>, raw: String, loc: Loc },
    /// `{`
    Open(Loc),
    /// `}`
    Close(Loc),
}

/// Something the lexer consumed without passing it on: a skipped line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LexNote {
    pub(super) loc: Loc,
    pub(super) keyword: String,
    pub(super) reason: String,
    pub(super) kind: NoteKind,
}

/// The token stream of a file and everything it includes.
#[derive(Debug, Default)]
pub(super) struct Lexed {
    pub(super) tokens: Vec<Token>,
    /// File labels as notes print them: the top file as given, includes
    /// joined to the including file's directory.
    pub(super) files: Vec<String>,
    pub(super) notes: Vec<LexNote>,
    /// Lines consumed whole by the lexer (include directives): carried.
    pub(super) consumed: Vec<Loc>,
}

/// How to treat `include` and `@id` lines.
#[derive(Debug, Clone, Default)]
pub(super) struct LexOptions {
    /// keepalived's `-i` configuration id, for `@id` lines.
    pub(super) config_id: Option<String>,
    /// Follow includes (false for text that has no file behind it).
    pub(super) follow_includes: bool,
}

/// Reads `path` and everything it includes.
pub(super) fn lex_file(path: &Path, options: &LexOptions) -> Result<Lexed, ImportError> {
    let text = read(path)?;
    let mut lexer = Lexer { out: Lexed::default(), options, depth: 0 };
    lexer.file(&text, path.display().to_string(), path.parent().map(Path::to_path_buf));
    Ok(lexer.out)
}

/// Lexes `text` labelled `label`; includes are resolved against `base`, or
/// noted and skipped when there is none.
pub(super) fn lex_text(
    text: &str,
    label: &str,
    base: Option<PathBuf>,
    options: &LexOptions,
) -> Lexed {
    let mut lexer = Lexer { out: Lexed::default(), options, depth: 0 };
    lexer.file(text, label.to_owned(), base);
    lexer.out
}

fn read(path: &Path) -> Result<String, ImportError> {
    let file = path.display().to_string();
    let meta = std::fs::metadata(path)
        .map_err(|source| ImportError::Read { file: file.clone(), source })?;
    if !meta.is_file() {
        return Err(ImportError::NotAFile { file });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(ImportError::TooLarge { file, bytes: meta.len() });
    }
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read { file, source })?;
    // keepalived reads bytes; a stray non-UTF-8 byte only ever lands in a
    // value, where U+FFFD shows it.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

struct Lexer<'o> {
    out: Lexed,
    options: &'o LexOptions,
    depth: usize,
}

impl Lexer<'_> {
    fn file(&mut self, text: &str, label: String, base: Option<PathBuf>) {
        let file = FileId(self.out.files.len());
        self.out.files.push(label);
        for (index, physical) in text.split('\n').enumerate() {
            let loc = Loc { file, line: index + 1 };
            let line = physical.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                continue;
            }
            let (text, unterminated) = decomment(line);
            if unterminated {
                self.note(
                    loc,
                    first_word(&text),
                    NoteKind::NotCarried,
                    "unterminated double quote: keepalived drops the rest of the line from \
                     the quote on, so does the importer",
                );
            }
            self.segment(text, loc, base.as_deref());
        }
    }

    /// One logical line, or the residue after a brace (keepalived's read_line loop).
    fn segment(&mut self, mut buf: String, loc: Loc, base: Option<&Path>) {
        loop {
            if buf.is_empty() {
                return;
            }
            if buf.starts_with('@') {
                match self.conditional(&buf, loc) {
                    Some(rest) => buf = rest,
                    None => return,
                }
                if buf.is_empty() {
                    return;
                }
            }
            if buf.starts_with('$') && is_definition(&buf) {
                self.note(
                    loc,
                    first_word(&buf),
                    NoteKind::NotCarried,
                    "parameter definitions ($NAME=…) are not expanded by the importer: \
                     replace each $NAME by its value, then import again",
                );
                return;
            }
            if buf.starts_with('~') {
                self.note(
                    loc,
                    first_word(&buf),
                    NoteKind::NotCarried,
                    "sequence and list blocks (~SEQ, ~LST) are not expanded by the importer: \
                     write the lines out, then import again",
                );
                return;
            }
            if let Some(pattern) = include_target(&buf) {
                self.include(&pattern, loc, base);
                return;
            }
            let Some(brace) = first_brace(&buf) else {
                self.words(buf.trim_end(), loc);
                return;
            };
            if brace == 0 {
                let close = buf.starts_with('}');
                self.out.tokens.push(if close { Token::Close(loc) } else { Token::Open(loc) });
                buf = buf[1..].trim_start_matches([' ', '\t']).trim_end().to_owned();
            } else {
                self.words(buf[..brace].trim_end(), loc);
                buf = buf[brace..].trim_end().to_owned();
            }
        }
    }

    fn words(&mut self, raw: &str, loc: Loc) {
        let words = split_words(raw);
        if !words.is_empty() {
            self.out.tokens.push(Token::Words { words, raw: raw.to_owned(), loc });
        }
    }

    /// `@id rest` / `@^id rest`: the rest when this configuration id keeps it.
    fn conditional(&mut self, buf: &str, loc: Loc) -> Option<String> {
        let (negated, body) = match buf[1..].strip_prefix('^') {
            Some(body) => (true, body),
            None => (false, &buf[1..]),
        };
        let Some(split) = body.find([' ', '\t']) else {
            self.note(
                loc,
                buf.to_owned(),
                NoteKind::Cosmetic,
                "a configuration id with nothing after it: keepalived ignores the line",
            );
            return None;
        };
        let id = &body[..split];
        let rest = body[split..].trim_start_matches([' ', '\t']).to_owned();
        let ours = self.options.config_id.as_deref() == Some(id);
        if ours != negated {
            return Some(rest);
        }
        let (kind, reason) = match &self.options.config_id {
            // Without an id only `@id` lines are skipped (`@^id` ones are kept).
            None => (
                NoteKind::NotCarried,
                format!(
                    "only for configuration id {id:?} (keepalived -i {id}): skipped, as keepalived \
                     without -i does; give the importer the id this host runs with"
                ),
            ),
            Some(ours) if negated => (
                NoteKind::Cosmetic,
                format!(
                    "for every configuration id but {id:?}: skipped, as keepalived -i {ours} does"
                ),
            ),
            Some(ours) => (
                NoteKind::Cosmetic,
                format!("only for configuration id {id:?}: skipped, as keepalived -i {ours} does"),
            ),
        };
        self.note(loc, format!("@{}{id}", if negated { "^" } else { "" }), kind, reason);
        None
    }

    fn include(&mut self, pattern: &str, loc: Loc, base: Option<&Path>) {
        let Some(base) = base.filter(|_| self.options.follow_includes) else {
            self.note(
                loc,
                "include".to_owned(),
                NoteKind::NotCarried,
                format!("{pattern:?} is not followed: this text has no file to resolve it from"),
            );
            return;
        };
        if self.depth >= MAX_INCLUDE_DEPTH {
            self.note(
                loc,
                "include".to_owned(),
                NoteKind::NotCarried,
                format!(
                    "{pattern:?} is nested more than {MAX_INCLUDE_DEPTH} includes deep \
                     (a file that includes itself?): not followed"
                ),
            );
            return;
        }
        let matched = glob::glob(base, pattern);
        let files: Vec<PathBuf> = matched.into_iter().filter(|p| p.is_file()).collect();
        if files.is_empty() {
            self.note(
                loc,
                "include".to_owned(),
                NoteKind::NotCarried,
                format!(
                    "{pattern:?} matches no file (looked in {}): nothing included, as with \
                     keepalived; copy the files it names next to this one and import again",
                    if pattern.starts_with('/') {
                        "/".to_owned()
                    } else {
                        base.display().to_string()
                    }
                ),
            );
            return;
        }
        self.out.consumed.push(loc);
        for path in files {
            if is_executable(&path) {
                self.note(
                    loc,
                    "include".to_owned(),
                    NoteKind::Cosmetic,
                    format!(
                        "{} is executable: skipped, as keepalived skips executable files",
                        path.display()
                    ),
                );
                continue;
            }
            match read(&path) {
                Ok(text) => {
                    self.depth += 1;
                    let base = path.parent().map(Path::to_path_buf);
                    self.file(&text, path.display().to_string(), base);
                    self.depth -= 1;
                }
                Err(e) => self.note(
                    loc,
                    "include".to_owned(),
                    NoteKind::NotCarried,
                    format!("{e}: not included"),
                ),
            }
        }
    }

    fn note(&mut self, loc: Loc, keyword: String, kind: NoteKind, reason: impl Into<String>) {
        self.out.notes.push(LexNote { loc, keyword, reason: reason.into(), kind });
    }
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(_: &Path) -> bool {
    false
}

/// The first word of a line, for naming it in a note.
fn first_word(text: &str) -> String {
    text.split_whitespace().next().unwrap_or("").to_owned()
}

/// keepalived's decomment(): leading blanks and the comment removed,
/// `\!`/`\#` unescaped outside quotes, trailing blanks removed. The flag says
/// whether a double quote was left open.
pub(super) fn decomment(line: &str) -> (String, bool) {
    let line = line.trim_start_matches([' ', '\t']);
    let mut out = String::with_capacity(line.len());
    let mut quote = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quote = !quote;
                out.push(c);
            }
            '\\' => match chars.peek() {
                Some(&next) if !quote && (next == '#' || next == '!') => {
                    out.push(next);
                    chars.next();
                }
                Some(&next) => {
                    out.push('\\');
                    out.push(next);
                    chars.next();
                }
                None => out.push('\\'),
            },
            '!' | '#' if !quote => break,
            _ => out.push(c),
        }
    }
    let trimmed = out.trim_end_matches([' ', '\t']).to_owned();
    (trimmed, quote)
}

/// Byte offset of the first `{` or `}` outside double quotes.
fn first_brace(buf: &str) -> Option<usize> {
    if buf.starts_with(['{', '}']) {
        return Some(0);
    }
    let mut in_quote = false;
    for (i, c) in buf.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            '{' | '}' if !in_quote => return Some(i),
            _ => {}
        }
    }
    None
}

/// keepalived's alloc_strvec(): whitespace-separated words, `"…"` one word
/// without its quotes; an unmatched quote ends the line.
pub(super) fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(is_space);
        if rest.is_empty() {
            return words;
        }
        if let Some(quoted) = rest.strip_prefix('"') {
            let Some(end) = quoted.find('"') else { return words };
            words.push(quoted[..end].to_owned());
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find(|c: char| is_space(c) || c == '"').unwrap_or(rest.len());
            words.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// The file pattern of an include directive.
fn include_target(buf: &str) -> Option<String> {
    if !buf.contains("include") {
        return None;
    }
    let words = split_words(buf);
    let [keyword, target] = words.as_slice() else { return None };
    matches!(
        keyword.as_str(),
        "include" | "includer" | "includem" | "includew" | "includeb" | "includea"
    )
    .then(|| target.clone())
}

/// `$NAME=…`: a parameter definition (check_definition(): no blank before `=`).
fn is_definition(buf: &str) -> bool {
    let body = &buf[1..];
    let name_len =
        body.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(body.len());
    name_len > 0
        && !body.starts_with(|c: char| c.is_ascii_digit())
        && body[name_len..].starts_with('=')
}

/// keepalived's alloc_strvec_quoted_escaped(), used for script command lines:
/// `"` and `'` quote (and may join text into one word), `\` escapes.
pub(super) fn split_script_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|&c| is_space(c)) {
            chars.next();
        }
        if chars.peek().is_none() {
            return words;
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(&c) = chars.peek() {
            match (quote, c) {
                (None, c) if is_space(c) => break,
                (_, '\\') => {
                    chars.next();
                    match chars.next() {
                        Some('n') => word.push('\n'),
                        Some('t') => word.push('\t'),
                        Some('r') => word.push('\r'),
                        Some(other) => word.push(other),
                        None => {}
                    }
                    continue;
                }
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (_, c) => word.push(c),
            }
            chars.next();
        }
        words.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lex(text: &str) -> Lexed {
        lex_text(text, "t.conf", None, &LexOptions::default())
    }

    /// The tokens as compact strings: words joined by `|`, braces as themselves.
    fn shape(lexed: &Lexed) -> Vec<String> {
        lexed
            .tokens
            .iter()
            .map(|t| match t {
                Token::Words { words, loc, .. } => format!("{}:{}", loc.line, words.join("|")),
                Token::Open(loc) => format!("{}:{{", loc.line),
                Token::Close(loc) => format!("{}:}}", loc.line),
            })
            .collect()
    }

    #[test]
    fn comments_quotes_and_braces_split_as_keepalived() {
        let text = "! comment\n\
                    global_defs {   # trailing\n\
                    \x20 router_id \"LVS DEVEL\" ! not this\n\
                    \x20 notify \"a # b\" x\\#y\n\
                    }\n\
                    real_server 1.2.3.4 80 { weight 1 }\n\
                    foo#bar baz\n\
                    \x20\t\n\
                    vrrp_instance VI_1\n\
                    {\n\
                    }";
        assert_eq!(
            shape(&lex(text)),
            [
                "2:global_defs",
                "2:{",
                "3:router_id|LVS DEVEL",
                "4:notify|a # b|x#y",
                "5:}",
                "6:real_server|1.2.3.4|80",
                "6:{",
                "6:weight|1",
                "6:}",
                "7:foo",
                "9:vrrp_instance|VI_1",
                "10:{",
                "11:}",
            ]
        );
    }

    #[test]
    fn words_split_like_alloc_strvec() {
        assert_eq!(split_words("a \"b c\" d"), ["a", "b c", "d"]);
        assert_eq!(split_words("ab\"cd\"ef"), ["ab", "cd", "ef"]);
        assert_eq!(split_words("a \"open"), ["a"]);
        assert_eq!(split_words("  "), Vec::<String>::new());
    }

    #[test]
    fn script_words_split_like_alloc_strvec_quoted_escaped() {
        assert_eq!(split_script_words("abcd\" efg h jkl \"mnop"), ["abcd efg h jkl mnop"]);
        assert_eq!(split_script_words("abcd \"efg h jkl\" mnop"), ["abcd", "efg h jkl", "mnop"]);
        assert_eq!(split_script_words("a 'b \"c' d\\ e"), ["a", "b \"c", "d e"]);
    }

    #[test]
    fn conditional_lines_follow_the_configuration_id() {
        let text = "@high priority 170\n@low priority 85\n@^high weight 1\n@alone\n";
        let none = lex(text);
        assert_eq!(shape(&none), ["3:weight|1"]);
        assert_eq!(
            none.notes.iter().map(|n| (n.loc.line, n.kind)).collect::<Vec<_>>(),
            [(1, NoteKind::NotCarried), (2, NoteKind::NotCarried), (4, NoteKind::Cosmetic)]
        );
        let options = LexOptions { config_id: Some("high".into()), follow_includes: false };
        let high = lex_text(text, "t.conf", None, &options);
        assert_eq!(shape(&high), ["1:priority|170"]);
        assert_eq!(
            high.notes.iter().map(|n| (n.loc.line, n.kind)).collect::<Vec<_>>(),
            [(2, NoteKind::Cosmetic), (3, NoteKind::Cosmetic), (4, NoteKind::Cosmetic)]
        );
    }

    #[test]
    fn definitions_and_sequences_are_named_not_expanded() {
        let lexed = lex("$IF=eth0\n~SEQ(i,1,3) x\ninterface $IF\n$NOT A DEF\n");
        assert_eq!(shape(&lexed), ["3:interface|$IF", "4:$NOT|A|DEF"]);
        assert_eq!(lexed.notes.iter().map(|n| n.loc.line).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn includes_resolve_relative_to_the_including_file() {
        let dir = std::env::temp_dir().join(format!("xdplb-lex-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).expect("temp dir");
        std::fs::write(
            dir.join("main.conf"),
            "a 1\ninclude sub/x.conf\ninclude nothing*.conf\nz 26\n",
        )
        .expect("write");
        // Relative to sub/, where x.conf is, not to main.conf's directory.
        std::fs::write(dir.join("sub/x.conf"), "b 2\ninclude {y,w}.conf\n").expect("write");
        std::fs::write(dir.join("sub/y.conf"), "c {\n").expect("write");
        std::fs::write(dir.join("sub/w.conf"), "}\n").expect("write");
        std::fs::write(dir.join("y.conf"), "wrong 0\n").expect("write");
        let options = LexOptions { config_id: None, follow_includes: true };
        let lexed = lex_file(&dir.join("main.conf"), &options).expect("reads");
        let files = |t: &Token| match t {
            Token::Words { loc, .. } | Token::Open(loc) | Token::Close(loc) => {
                Path::new(&lexed.files[loc.file.0])
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }
        };
        assert_eq!(shape(&lexed), ["1:a|1", "1:b|2", "1:c", "1:{", "1:}", "4:z|26"]);
        assert_eq!(
            lexed.tokens.iter().map(files).collect::<Vec<_>>(),
            ["main.conf", "x.conf", "y.conf", "y.conf", "w.conf", "main.conf"]
        );
        assert_eq!(lexed.notes.len(), 1, "{:?}", lexed.notes);
        assert_eq!(lexed.notes[0].loc.line, 3);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn a_file_that_includes_itself_stops() {
        let dir = std::env::temp_dir().join(format!("xdplb-loop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("loop.conf"), "x 1\ninclude loop.conf\n").expect("write");
        let options = LexOptions { config_id: None, follow_includes: true };
        let lexed = lex_file(&dir.join("loop.conf"), &options).expect("reads");
        assert_eq!(lexed.tokens.len(), MAX_INCLUDE_DEPTH + 1);
        assert_eq!(lexed.notes.len(), 1);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    proptest! {
        /// Any text lexes without panicking, and every token points at a line
        /// of the text that is not blank.
        #[test]
        fn arbitrary_text_lexes(text in "[ -~\t\n{}\"!#@$~\\\\é]{0,200}") {
            let lexed = lex(&text);
            let lines: Vec<&str> = text.split('\n').collect();
            for token in &lexed.tokens {
                let loc = match token {
                    Token::Words { loc, .. } | Token::Open(loc) | Token::Close(loc) => loc,
                };
                prop_assert!(loc.line >= 1 && loc.line <= lines.len());
                prop_assert!(!lines[loc.line - 1].trim().is_empty());
            }
        }
    }
}
