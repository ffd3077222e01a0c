//! The file names an `include` pattern matches, as keepalived's `glob(3)` call
//! (`GLOB_MARK | GLOB_BRACE`) finds them: `{a,b}` alternatives first, then
//! `*`, `?`, `[...]` per path component, hidden names only by a leading `.`.

use std::path::{Path, PathBuf};

/// More alternatives than this from one pattern is a mistake, not a config.
const MAX_EXPANSIONS: usize = 256;
/// More matches than this from one pattern is a mistake, not a config.
const MAX_MATCHES: usize = 4096;

/// Expands `pattern` relative to `base` (the including file's directory).
/// Each `{}` alternative is matched on its own and the results appended in
/// alternative order, each group sorted by name, as glibc does. Directories
/// and missing paths are part of the result; the caller skips what is not a
/// regular file.
pub(super) fn glob(base: &Path, pattern: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for alternative in expand_braces(pattern) {
        let (start, rest) = match alternative.strip_prefix('/') {
            Some(rest) => (PathBuf::from("/"), rest.to_owned()),
            None => (base.to_path_buf(), alternative.clone()),
        };
        let components: Vec<&str> = rest.split('/').filter(|c| !c.is_empty()).collect();
        let mut found = Vec::new();
        walk(&start, &components, &mut found);
        found.sort();
        for path in found {
            if out.len() >= MAX_MATCHES {
                return out;
            }
            out.push(path);
        }
    }
    out
}

/// Follows `components` from `dir`, pushing every existing path they match.
fn walk(dir: &Path, components: &[&str], found: &mut Vec<PathBuf>) {
    let Some((first, rest)) = components.split_first() else {
        if dir.exists() {
            found.push(dir.to_path_buf());
        }
        return;
    };
    if found.len() >= MAX_MATCHES {
        return;
    }
    if !has_magic(first) {
        walk(&dir.join(unescape(first)), rest, found);
        return;
    }
    // An unreadable directory matches nothing, as with glob(3) without GLOB_ERR.
    let read_from = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let Ok(entries) = std::fs::read_dir(read_from) else { return };
    let mut names: Vec<String> =
        entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    names.sort();
    for name in names {
        if name.starts_with('.') && !first.starts_with('.') {
            continue;
        }
        if matches(first, &name) {
            walk(&dir.join(&name), rest, found);
        }
    }
}

/// Whether `component` has a wildcard that is not escaped.
fn has_magic(component: &str) -> bool {
    let mut chars = component.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// `component` with its backslash escapes resolved.
fn unescape(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    let mut chars = component.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            } else {
                out.push('\\');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `{a,b}c` → `ac`, `bc`, nested braces included; an unbalanced brace is literal.
pub(super) fn expand_braces(pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    expand_into(pattern, &mut out, 0);
    out
}

fn expand_into(pattern: &str, out: &mut Vec<String>, depth: usize) {
    if out.len() >= MAX_EXPANSIONS {
        return;
    }
    let Some((open, close, commas)) = (depth < 32).then(|| first_brace_group(pattern)).flatten()
    else {
        out.push(pattern.to_owned());
        return;
    };
    let prefix = &pattern[..open];
    let suffix = &pattern[close + 1..];
    let mut start = open + 1;
    for end in commas.into_iter().chain(std::iter::once(close)) {
        let alternative = format!("{prefix}{}{suffix}", &pattern[start..end]);
        expand_into(&alternative, out, depth + 1);
        start = end + 1;
    }
}

/// The byte offsets of the first `{` that has a matching `}` and a top-level
/// comma, its `}`, and those commas. glibc leaves `{}` and `{a}` alone.
fn first_brace_group(pattern: &str) -> Option<(usize, usize, Vec<usize>)> {
    let bytes = pattern.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'{' => {
                let mut depth = 0usize;
                let mut commas = Vec::new();
                let mut j = i + 1;
                while j < bytes.len() {
                    match bytes[j] {
                        b'\\' => j += 1,
                        b'{' => depth += 1,
                        b'}' if depth == 0 => {
                            if !commas.is_empty() {
                                return Some((i, j, commas));
                            }
                            break;
                        }
                        b'}' => depth -= 1,
                        b',' if depth == 0 => commas.push(j),
                        _ => {}
                    }
                    j += 1;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

/// fnmatch(3) without flags for one path component: `*`, `?`, `[...]` with
/// `!`/`^` negation and ranges, `\` escapes.
pub(super) fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // Where to resume after the last `*`: (pattern index after it, name index).
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi + 1, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => match class(&p[pi..], n[ni]) {
                Some((true, len)) => Some(len),
                Some((false, _)) => None,
                // No closing `]`: the `[` is an ordinary character.
                None => (n[ni] == '[').then_some(1),
            },
            Some('\\') => match p.get(pi + 1) {
                Some(&c) => (c == n[ni]).then_some(2),
                None => (n[ni] == '\\').then_some(1),
            },
            Some(&c) => (c == n[ni]).then_some(1),
            None => None,
        };
        match (step, star) {
            (Some(len), _) => {
                pi += len;
                ni += 1;
            }
            (None, Some((after, from))) => {
                pi = after;
                ni = from + 1;
                star = Some((after, from + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the bracket expression at the start of `p`; returns
/// (matched, length of the expression) or `None` when it is not closed.
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        let lo = if lo == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            lo
        };
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&hi| hi != ']') {
            let hi = *p.get(i + 2)?;
            if lo <= c && c <= hi {
                matched = true;
            }
            i += 3;
        } else {
            if lo == c {
                matched = true;
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wildcards_match_as_fnmatch() {
        for (pattern, name, want) in [
            ("*.conf", "web_servers.conf", true),
            ("*.conf", "web_servers.conf.bak", false),
            ("web_?.conf", "web_1.conf", true),
            ("web_[0-9].conf", "web_7.conf", true),
            ("web_[!0-9].conf", "web_7.conf", false),
            ("web_[^a].conf", "web_b.conf", true),
            ("[]]", "]", true),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("[a", "[a", true),
            ("*a*b", "xxaxxb", true),
            ("*a*b", "xxaxxc", false),
            ("", "", true),
            ("*", "", true),
        ] {
            assert_eq!(matches(pattern, name), want, "{pattern} vs {name}");
        }
    }

    #[test]
    fn braces_expand_in_order_and_nest() {
        assert_eq!(expand_braces("a{b,c}d"), ["abd", "acd"]);
        assert_eq!(expand_braces("{x,y{1,2}}.conf"), ["x.conf", "y1.conf", "y2.conf"]);
        assert_eq!(expand_braces("{}{a}"), ["{}{a}"]);
        assert_eq!(expand_braces("{a,b"), ["{a,b"]);
    }

    #[test]
    fn finds_files_relative_to_base_sorted_per_alternative() {
        let dir = std::env::temp_dir().join(format!("xdplb-glob-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).expect("temp dir");
        for name in ["b.conf", "a.conf", ".hidden.conf", "c.txt"] {
            std::fs::write(dir.join("conf.d").join(name), "").expect("write");
        }
        let names = |found: Vec<PathBuf>| -> Vec<String> {
            found
                .iter()
                .map(|p| p.strip_prefix(&dir).expect("under base").display().to_string())
                .collect()
        };
        assert_eq!(names(glob(&dir, "conf.d/*.conf")), ["conf.d/a.conf", "conf.d/b.conf"]);
        assert_eq!(
            names(glob(&dir, "conf.d/{c.txt,*.conf}")),
            ["conf.d/c.txt", "conf.d/a.conf", "conf.d/b.conf"]
        );
        assert_eq!(names(glob(&dir, "conf.d/.h*")), ["conf.d/.hidden.conf"]);
        assert!(glob(&dir, "conf.d/missing.conf").is_empty());
        assert_eq!(names(glob(&dir, "conf.d/c.txt")), ["conf.d/c.txt"]);
        let absolute = format!("{}/conf.d/a.conf", dir.display());
        assert_eq!(glob(Path::new("/nonexistent"), &absolute), [dir.join("conf.d/a.conf")]);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    proptest! {
        /// A name always matches itself written with every character escaped,
        /// and `*` matches everything.
        #[test]
        fn escaped_name_matches_itself(name in "\\PC{0,12}") {
            let escaped: String = name.chars().flat_map(|c| ['\\', c]).collect();
            prop_assert!(matches(&escaped, &name));
            prop_assert!(matches("*", &name));
        }

        /// Arbitrary patterns never panic, and expansion is bounded.
        #[test]
        fn arbitrary_patterns_are_safe(pattern in "[{},a*?\\[\\]!^\\\\-]{0,24}", name in "[a-z\\[\\]-]{0,8}") {
            let _ = matches(&pattern, &name);
            prop_assert!(expand_braces(&pattern).len() <= MAX_EXPANSIONS);
        }
    }
}
