//! `xdplb import-keepalived`: keepalived.conf (with its includes) to xdplb's
//! TOML, with every line either carried over or named in a [`Note`] with its
//! FILE:LINE and the reason it was not carried.
//!
//! Reading follows keepalived 2.2's parser (lexer.rs): `!`/`#` comments,
//! quoted words, braces anywhere on a line, `@id` conditional lines (as with
//! `keepalived -i ID`, see [`ImportOptions`]), and `include` globs resolved
//! relative to the directory of the including file. Parameter definitions
//! (`$NAME=…`) and `~SEQ` blocks are named, not expanded.
//! Converting follows keepalived.conf(5) and keepalived's own defaults where
//! they differ from xdplb's: a virtual_server without `protocol` is UDP, one
//! without `lvs_method` is NAT (refused), one without `lvs_sched` is `wlc`
//! (refused); a real server's port in DR is the virtual port (keepalived resets
//! it too) while its health check keeps the written port. VIPs a vrrp_instance
//! lists stay owned by that instance; VIPs no instance lists become xdplb's
//! unconditional VIPs, which keepalived never adds, and that is noted.
//!
//! A note has a [`NoteKind`]; the result is [`ImportReport::complete`] when
//! every note is [`NoteKind::Cosmetic`]. Cosmetic keywords are those that do
//! not change what is forwarded, which director is master or how servers are
//! checked: e-mail alerts (`notification_email`, `notification_email_from`,
//! `smtp_server`, `smtp_helo_name`, `smtp_connect_timeout`, `smtp_alert*`,
//! `no_email_faults`, `no_checker_emails`), SNMP and D-Bus (`snmp_*`,
//! `enable_snmp_*`, `enable_traps`, `enable_dbus`, `dbus_service_name`),
//! process names, priorities, CPU affinity and socket buffer sizes of
//! keepalived's own processes, logging switches (`log_unknown_vrids`,
//! `checker_log_all_failures`, `log_all_failures`), IPv6 neighbour advert
//! settings (`vrrp_gna_interval`, `vrrp_mcast_group6`: xdplb is IPv4 only),
//! IPVS housekeeping (`lvs_flush`, `lvs_flush_on_stop`: no IPVS here), address
//! labels, `warmup`, `debug`, `preempt` and `accept` (both keepalived's
//! defaults), and whatever keepalived itself ignores (nopreempt with state
//! MASTER, a duplicated real server, a stray `}`).

mod convert;
mod emit;
mod glob;
mod lexer;
mod parser;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

/// How a noted line was treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NoteKind {
    /// xdplb cannot run it (NAT, TUN, fwmark, IPv6, an unsupported scheduler):
    /// what it belongs to was left out.
    Refused,
    /// A feature xdplb does not have (yet): left out, so behaviour differs.
    NotCarried,
    /// Carried with a different value or meaning, said in the reason.
    Approximated,
    /// Left out without changing behaviour (see the module docs).
    Cosmetic,
}

impl NoteKind {
    /// Whether a note of this kind means the TOML behaves differently from the input.
    pub const fn changes_behaviour(self) -> bool {
        !matches!(self, Self::Cosmetic)
    }
}

/// One line that was not carried over as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The file, as given or as an include resolved it (`<converted>` for the
    /// TOML itself when it fails xdplb's validation).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The keyword (or the first word) of the line.
    pub keyword: String,
    /// Why, and what was done instead.
    pub reason: String,
    /// How it was treated.
    pub kind: NoteKind,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: {}", self.file, self.line, self.keyword, self.reason)
    }
}

/// The result of an import: TOML text and what it does not carry.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// xdplb's TOML, for stdout.
    pub toml: String,
    /// Every line not carried as written, by file (in the order files were
    /// read) and line; a note about the converted TOML itself comes last.
    pub notes: Vec<Note>,
    /// True when every note is cosmetic: the TOML does what the input did.
    pub complete: bool,
}

impl ImportReport {
    /// The CLI's exit status: 0 complete, 1 something was left out or changed.
    pub fn exit_code(&self) -> i32 {
        if self.complete {
            0
        } else {
            1
        }
    }
}

/// Choices keepalived takes from its command line or the host.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// keepalived's `-i ID` (configuration id): which `@ID` lines apply.
    pub config_id: Option<String>,
    /// `[dataplane] interface`, when the file cannot say (no vrrp_instance).
    pub dataplane_interface: Option<String>,
}

/// An input the importer cannot read at all (the CLI exits 2).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file as given.
        file: String,
        /// What reading it said.
        #[source]
        source: std::io::Error,
    },
    /// The path is a directory or a device, not a configuration file.
    #[error("{file}: not a regular file")]
    NotAFile {
        /// The path as given.
        file: String,
    },
    /// Larger than any configuration (16 MiB).
    #[error("{file}: {bytes} bytes is too large for a configuration file")]
    TooLarge {
        /// The path as given.
        file: String,
        /// Its size.
        bytes: u64,
    },
}

/// Converts the keepalived configuration at `path` (and its includes) to xdplb TOML.
pub fn import(path: &Path) -> Result<ImportReport, ImportError> {
    import_with(path, &ImportOptions::default())
}

/// As [`import`], with keepalived's `-i` and a data-plane interface given.
pub fn import_with(path: &Path, options: &ImportOptions) -> Result<ImportReport, ImportError> {
    let lex_options =
        lexer::LexOptions { config_id: options.config_id.clone(), follow_includes: true };
    let lexed = lexer::lex_file(path, &lex_options)?;
    Ok(finish(lexed, options))
}

/// Converts configuration text labelled `label`; `include` lines resolve
/// against `base`, or are noted and skipped without one.
pub fn import_text(
    text: &str,
    label: &str,
    base: Option<&Path>,
    options: &ImportOptions,
) -> ImportReport {
    let lex_options =
        lexer::LexOptions { config_id: options.config_id.clone(), follow_includes: base.is_some() };
    let lexed = lexer::lex_text(text, label, base.map(PathBuf::from), &lex_options);
    finish(lexed, options)
}

fn finish(lexed: lexer::Lexed, options: &ImportOptions) -> ImportReport {
    let converted = convert::convert(lexed, options);
    let complete = converted.notes.iter().all(|n| !n.kind.changes_behaviour());
    ImportReport { toml: converted.toml, notes: converted.notes, complete }
}
