//! `config_toml`: arbitrary text through `control::config::parse`. Every
//! refusal starts `fuzz.toml:LINE: ` with a line of the input, or
//! `fuzz.toml: ` when no line applies; whatever parses
//! prints (`Config::to_toml`) to text that parses to the same configuration
//! and prints the same again.

/// The label the target parses under.
pub const LABEL: &str = "fuzz.toml";

/// Runs one fuzz input; panics when an invariant breaks.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    check_text(text);
}

/// As [`check`], for text.
pub fn check_text(text: &str) {
    match control::config::parse(text, LABEL) {
        Ok(config) => {
            let printed = config.to_toml();
            match control::config::parse(&printed, "printed.toml") {
                Ok(again) => {
                    assert_eq!(again, config, "printed config reads back equal:\n{printed}");
                    assert_eq!(again.to_toml(), printed, "printing is stable");
                }
                Err(e) => panic!("the printed config is refused: {e}\n{printed}"),
            }
        }
        Err(e) => {
            let message = e.to_string();
            let lines = text.split('\n').count();
            // `FILE:LINE: reason`, or `FILE: reason` for what no line holds
            // (something missing from the whole file), as `ConfigError` says.
            let prefix = match e.line() {
                Some(line) => {
                    assert!((1..=lines).contains(&line), "line {line} of {lines}: {message}");
                    format!("{LABEL}:{line}: ")
                }
                None => format!("{LABEL}: "),
            };
            assert!(message.starts_with(&prefix), "error does not start {prefix:?}: {message}");
        }
    }
}
