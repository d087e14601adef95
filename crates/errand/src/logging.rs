//! Logging set-up: the filter from `--log-level` with the directives that
//! keep user data out of the log, and a stderr writer that can never take
//! the process down. A closed or full log pipe costs log lines, not the
//! server: lines that cannot be written are dropped and counted, and the
//! count is reported in the first line written once stderr works again.

use crate::cli::LogFormat;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Log targets that would print payloads or results at debug level
/// (tokio_postgres logs every query's parameters), held at `info` unless
/// the filter names them itself.
const QUIET_TARGETS: &[&str] = &["tokio_postgres"];

/// Installs the global subscriber: `filter` (e.g. `info`, `errand=debug`)
/// with [`QUIET_TARGETS`] held at `info`, to stderr.
pub fn init(format: LogFormat, filter: &str) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter(filter))
        .with_writer(LossyStderr)
        // Its own report of a failed write is an `eprintln!`, which
        // panics when stderr is gone; LossyStderr never fails instead.
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The filter for `--log-level`: `info` when it does not parse; each of
/// [`QUIET_TARGETS`] at `info` unless the text names it.
fn env_filter(text: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_new(text).unwrap_or_else(|_| EnvFilter::new("info"));
    for target in QUIET_TARGETS {
        if !text.contains(target) {
            let directive = format!("{target}=info").parse().expect("a valid directive");
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Log lines that could not be written since the last one that could.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Writes each formatted event to stderr in one go; a failed write drops
/// the line and counts it instead of failing.
#[derive(Clone, Copy)]
struct LossyStderr;

impl<'a> MakeWriter<'a> for LossyStderr {
    type Writer = LossyStderr;

    fn make_writer(&'a self) -> Self::Writer {
        LossyStderr
    }
}

impl Write for LossyStderr {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut stderr = std::io::stderr().lock();
        let dropped = DROPPED.swap(0, Ordering::Relaxed);
        if dropped > 0
            && writeln!(
                stderr,
                "errand: {dropped} log lines dropped: stderr was not writable"
            )
            .is_err()
        {
            DROPPED.fetch_add(dropped + 1, Ordering::Relaxed);
        } else if stderr.write_all(line).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes `text` to stdout; a reader that went away (`errand jobs list |
/// head -1`) is not an error.
pub fn print(text: &str) -> std::io::Result<()> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Writes one line to stderr, ignoring failure: for the last words of a
/// failing command, which have nowhere else to go.
pub fn print_error(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_targets_stay_at_info_unless_named() {
        assert_eq!(env_filter("debug").to_string(), "tokio_postgres=info,debug");
        assert_eq!(
            env_filter("debug,tokio_postgres=debug").to_string(),
            "tokio_postgres=debug,debug"
        );
    }
}
