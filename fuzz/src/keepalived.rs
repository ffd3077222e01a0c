//! `keepalived_import`: arbitrary text through the keepalived.conf importer
//! (`control::import::import_text`), with and without a data-plane
//! interface given. Every note names FILE:LINE with a line that exists;
//! the output is TOML; a complete import loads with `control::config::parse`.

use control::import::{import_text, ImportOptions, ImportReport};

/// The label the target imports under.
pub const LABEL: &str = "fuzz.conf";

/// The file name notes about the converted TOML itself carry.
const CONVERTED: &str = "<converted>";

/// Runs one fuzz input; panics when an invariant breaks.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    check_text(text);
}

/// As [`check`], for text.
pub fn check_text(text: &str) {
    let with_interface =
        ImportOptions { dataplane_interface: Some("eth0".to_owned()), ..ImportOptions::default() };
    for options in [ImportOptions::default(), with_interface] {
        // No base directory: `include` lines are noted, not followed.
        let report = import_text(text, LABEL, None, &options);
        check_report(text, &report);
    }
}

fn check_report(text: &str, report: &ImportReport) {
    let input_lines = text.split('\n').count();
    let toml_lines = report.toml.split('\n').count();
    for note in &report.notes {
        let lines = match note.file.as_str() {
            LABEL => input_lines,
            CONVERTED => toml_lines,
            other => panic!("note about a file that was never read ({other}): {note}"),
        };
        assert!((1..=lines).contains(&note.line), "line {} of {lines}: {note}", note.line);
        let prefix = format!("{}:{}: ", note.file, note.line);
        assert!(note.to_string().starts_with(&prefix), "{note}");
    }
    if let Err(e) = report.toml.parse::<toml::Table>() {
        panic!("the output is not TOML: {e}\n{}", report.toml);
    }
    let all_cosmetic = report.notes.iter().all(|n| !n.kind.changes_behaviour());
    assert_eq!(report.complete, all_cosmetic, "complete exactly when every note is cosmetic");
    if report.complete {
        if let Err(e) = control::config::parse(&report.toml, "imported.toml") {
            panic!("complete import does not load: {e}\n{}", report.toml);
        }
    }
}
