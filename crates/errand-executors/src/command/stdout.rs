//! A job's stdout as it streams in: the result (kept up to a cap; the rest
//! is read and discarded so the child never blocks) minus the status lines
//! through which the program talks to errand while it runs:
//! `{"errand": "snooze", "seconds": N}` and
//! `{"errand": "progress", "progress": …}` (reported to the worker, which
//! keeps the latest on the job). Only lines that start with
//! `{"errand"` are parsed, so ordinary output costs a prefix comparison.

use errand_core::JobId;
use errand_worker::ProgressSink;
use serde::Deserialize;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

const CHUNK: usize = 16 << 10;
/// How every status line starts.
const PREFIX: &[u8] = b"{\"errand\"";
/// Longest line still considered a status line; longer ones are result.
const STATUS_LINE_MAX: usize = 64 << 10;

/// What a program reported on stdout.
#[derive(Debug, Default)]
pub(super) struct Stdout {
    /// The result bytes (status lines removed), at most the cap.
    pub(super) result: Vec<u8>,
    /// More result than the cap was written and discarded.
    pub(super) truncated: bool,
    /// The last snooze asked for.
    pub(super) snooze: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(tag = "errand", rename_all = "lowercase")]
enum StatusLine {
    Snooze { seconds: f64 },
    Progress { progress: serde_json::Value },
}

/// Reads `pipe` to its end into `out`, keeping at most `cap` bytes of
/// result, and reports progress lines to `progress`.
pub(super) async fn read_stdout<R: AsyncRead + Unpin>(
    pipe: Option<&mut R>,
    cap: usize,
    job: JobId,
    progress: &ProgressSink,
    out: &mut Stdout,
) {
    let Some(pipe) = pipe else { return };
    let mut lines = Lines {
        out,
        cap,
        job,
        progress,
        line: Vec::new(),
        passing: false,
    };
    let mut chunk = vec![0; CHUNK];
    while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
        lines.feed(&chunk[..n]);
    }
    lines.finish();
}

/// Splits stdout into lines without holding more than one candidate
/// status line: a line is result as soon as it stops looking like one.
struct Lines<'a> {
    out: &'a mut Stdout,
    cap: usize,
    job: JobId,
    progress: &'a ProgressSink,
    /// The current line while it may still be a status line.
    line: Vec<u8>,
    /// The current line is known to be result: its bytes go straight through.
    passing: bool,
}

impl Lines<'_> {
    fn feed(&mut self, chunk: &[u8]) {
        for piece in chunk.split_inclusive(|&b| b == b'\n') {
            let line_ends = piece.ends_with(b"\n");
            if self.passing {
                self.keep(piece);
            } else {
                self.line.extend_from_slice(piece);
                let n = self.line.len().min(PREFIX.len());
                if self.line[..n] != PREFIX[..n] || self.line.len() > STATUS_LINE_MAX {
                    self.passing = true;
                    self.keep_line();
                } else if line_ends {
                    self.end_line();
                }
            }
            if line_ends {
                self.passing = false;
            }
        }
    }

    /// A last line without a newline is a line too.
    fn finish(&mut self) {
        if !self.passing && !self.line.is_empty() {
            self.end_line();
        }
    }

    /// The candidate line is complete: act on it if it is a status line,
    /// else it is result.
    fn end_line(&mut self) {
        let status = self
            .line
            .starts_with(PREFIX)
            .then(|| serde_json::from_slice::<StatusLine>(&self.line));
        match status {
            None => self.keep_line(),
            Some(Ok(StatusLine::Snooze { seconds })) => {
                match Duration::try_from_secs_f64(seconds) {
                    Ok(d) => {
                        self.out.snooze = Some(d);
                        self.line.clear();
                    }
                    Err(_) => self.not_a_status_line(),
                }
            }
            Some(Ok(StatusLine::Progress { progress })) => {
                if let Err(e) = self.progress.report(progress) {
                    // Progress is the job's data: its size only, never its content.
                    tracing::warn!(job = self.job, error = %e, "progress not kept");
                }
                self.line.clear();
            }
            Some(Err(_)) => self.not_a_status_line(),
        }
    }

    fn not_a_status_line(&mut self) {
        // The line is the job's data: its size only, never its content.
        tracing::warn!(
            job = self.job,
            bytes = self.line.len(),
            "stdout line looks like a status line but is not a valid one; kept in the result"
        );
        self.keep_line();
    }

    /// Moves the candidate line to the result.
    fn keep_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        self.keep(&line);
        // Reuse the allocation for the next line.
        self.line = line;
        self.line.clear();
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = self.cap.saturating_sub(self.out.result.len());
        self.out
            .result
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.out.truncated |= bytes.len() > room;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(input: &[u8], cap: usize) -> Stdout {
        let mut out = Stdout::default();
        let progress = ProgressSink::discard();
        read_stdout(Some(&mut &input[..]), cap, 1, &progress, &mut out).await;
        out
    }

    /// Feeds `input` one byte at a time, the worst split there is.
    fn read_bytewise(input: &[u8]) -> Stdout {
        let mut out = Stdout::default();
        let mut lines = Lines {
            out: &mut out,
            cap: 1 << 20,
            job: 1,
            progress: &ProgressSink::discard(),
            line: Vec::new(),
            passing: false,
        };
        for b in input {
            lines.feed(std::slice::from_ref(b));
        }
        lines.finish();
        out
    }

    #[tokio::test]
    async fn result_is_capped_and_flagged() {
        let data = vec![b'x'; 100_000];
        let out = read(&data, 1000).await;
        assert_eq!((out.result.len(), out.truncated), (1000, true));
        let out = read(&data[..10], 1000).await;
        assert_eq!((out.result.len(), out.truncated), (10, false));
    }

    #[tokio::test]
    async fn status_lines_are_removed_and_the_last_snooze_wins() {
        let input = b"{\"errand\":\"progress\",\"progress\":{\"done\":1}}\nline one\n{\"errand\": \"snooze\", \"seconds\": 5}\n{\"errand\":\"snooze\",\"seconds\":1.5}\r\n{\"a\":1}";
        for out in [read(input, 1 << 20).await, read_bytewise(input)] {
            assert_eq!(String::from_utf8_lossy(&out.result), "line one\n{\"a\":1}");
            assert_eq!(out.snooze, Some(Duration::from_millis(1500)));
        }
    }

    #[tokio::test]
    async fn lines_that_only_look_like_status_lines_are_result() {
        let input = b"{\"errand\":\"snooze\",\"seconds\":-1}\n{\"errand\":\"dance\"}\n{\"errand\nplain {\"errand\":\"snooze\",\"seconds\":1}\n{\"errand\":\"snooze\",\"seconds\":2}";
        for out in [read(input, 1 << 20).await, read_bytewise(input)] {
            assert_eq!(
                String::from_utf8_lossy(&out.result),
                "{\"errand\":\"snooze\",\"seconds\":-1}\n{\"errand\":\"dance\"}\n{\"errand\nplain {\"errand\":\"snooze\",\"seconds\":1}\n"
            );
            assert_eq!(
                out.snooze,
                Some(Duration::from_secs(2)),
                "a last line without newline counts"
            );
        }
    }

    #[tokio::test]
    async fn an_overlong_candidate_line_is_result() {
        let mut input = PREFIX.to_vec();
        input.extend(std::iter::repeat_n(b' ', STATUS_LINE_MAX));
        input.extend_from_slice(b":\"snooze\",\"seconds\":1}\n");
        let out = read(&input, 1 << 20).await;
        assert_eq!(out.result, input);
        assert_eq!(out.snooze, None);
    }
}
