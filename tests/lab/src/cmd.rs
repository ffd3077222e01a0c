//! Running the lab's helper programs (`ip`, `ethtool`, `sysctl`, `tcpdump` …)
//! with every exit status checked, so a failed step names its command and
//! what the program said instead of surfacing later as a mystery.

use std::ffi::OsStr;
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

/// Runs `argv` to completion in the current namespace and returns its stdout;
/// fails with the command line, exit status and stderr unless it exits 0.
pub fn run<S: AsRef<OsStr>>(argv: &[S]) -> Result<String> {
    let output = output(argv)?;
    check(argv, &output)?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `argv` to completion and returns its output whatever the exit status.
pub fn output<S: AsRef<OsStr>>(argv: &[S]) -> Result<Output> {
    let (program, args) = split(argv)?;
    Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot start `{}`", display(argv)))
}

/// Fails with the command line, exit status and stderr unless `output` is a
/// success.
pub fn check<S: AsRef<OsStr>>(argv: &[S], output: &Output) -> Result<()> {
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said =
        if stderr.trim().is_empty() { String::from_utf8_lossy(&output.stdout) } else { stderr };
    bail!("`{}` failed ({}): {}", display(argv), output.status, said.trim_end())
}

/// The command line as a shell user would read it, for error messages.
pub fn display<S: AsRef<OsStr>>(argv: &[S]) -> String {
    argv.iter().map(|a| a.as_ref().to_string_lossy()).collect::<Vec<_>>().join(" ")
}

/// The program and its arguments, or an error for an empty command line.
pub(crate) fn split<S: AsRef<OsStr>>(argv: &[S]) -> Result<(&OsStr, &[S])> {
    match argv {
        [program, args @ ..] => Ok((program.as_ref(), args)),
        [] => bail!("empty command line"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn run_returns_stdout_and_names_failures() {
        assert_eq!(run(&["echo", "hello"]).unwrap(), "hello\n");
        let err = run(&["sh", "-c", "echo oops >&2; exit 3"]).unwrap_err().to_string();
        assert!(err.contains("sh -c echo oops >&2; exit 3"), "{err}");
        assert!(err.contains("oops"), "{err}");
        assert!(err.contains('3'), "{err}");
        let err = run(&["/nonexistent/program"]).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/program"), "{err:#}");
        assert!(run::<&str>(&[]).is_err());
    }
}
