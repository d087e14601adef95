//! The line protocol between errand and a pool process (docs/pool-protocol.md):
//! one JSON object per line on the process's stdin and stdout.

use errand_core::{Job, JobId, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Longest line errand accepts from a process: far above any sane answer
/// (a 1 MiB payload echoed with every character escaped), yet bounded.
pub(super) const MAX_LINE: usize = 64 << 20;

/// What errand sends: one job to run.
#[derive(Serialize)]
struct JobMessage<'a> {
    r#type: &'static str,
    id: JobId,
    kind: &'a str,
    attempt: u32,
    max_attempts: u32,
    payload: &'a Value,
}

/// Writes the line (newline included) that hands `job` to a process into
/// `line`, cleared first (a buffer kept per process: no allocation per job).
pub(super) fn job_line(job: &Job, line: &mut Vec<u8>) {
    let message = JobMessage {
        r#type: "job",
        id: job.id,
        kind: &job.kind,
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        payload: &job.payload,
    };
    // JSON escapes control characters, so the payload's newlines cannot end the line.
    line.clear();
    serde_json::to_writer(&mut *line, &message).expect("a job serializes");
    line.push(b'\n');
}

/// What a process may say. Unknown fields are ignored, for forward compatibility.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(super) enum Message {
    /// Start-up is over; the process takes jobs.
    Ready,
    /// The job succeeded.
    Result {
        id: JobId,
        #[serde(default)]
        result: Option<Value>,
    },
    /// The job failed; retry it with backoff.
    Error { id: JobId, error: String },
    /// The job failed for good.
    Permanent { id: JobId, error: String },
    /// Run the job again later without using an attempt.
    Snooze { id: JobId, seconds: f64 },
    /// Infrastructure is down: hand the job back; the process is restarted.
    Deadly { id: JobId, error: String },
    /// Work in progress.
    Progress { id: JobId, progress: Value },
}

/// Reading one message: the answer to a job, or something else.
pub(super) enum Reply {
    /// The job's outcome.
    Outcome(Outcome),
    /// A progress report for the job.
    Progress(Value),
}

/// Parses `line` as `job`'s answer; the error says how the process broke the protocol.
pub(super) fn parse_reply(line: &[u8], job: JobId) -> Result<Reply, String> {
    let message: Message = serde_json::from_slice(line).map_err(|e| not_protocol(line, e))?;
    let (id, reply) = match message {
        Message::Ready => return Err("sent \"ready\" while running a job".into()),
        Message::Result { id, result } => (id, Reply::Outcome(Outcome::Success(result))),
        Message::Error { id, error } => (id, Reply::Outcome(Outcome::Retry(error))),
        Message::Permanent { id, error } => (id, Reply::Outcome(Outcome::Permanent(error))),
        Message::Deadly { id, error } => (id, Reply::Outcome(Outcome::Deadly(error))),
        Message::Progress { id, progress } => (id, Reply::Progress(progress)),
        Message::Snooze { id, seconds } => {
            let delay = Duration::try_from_secs_f64(seconds).map_err(|_| {
                format!("snooze seconds must be a non-negative number, got {seconds}")
            })?;
            (id, Reply::Outcome(Outcome::Snooze(delay)))
        }
    };
    if id != job {
        return Err(format!("answered job {id} while running job {job}"));
    }
    Ok(reply)
}

/// Checks that `line` is the start-up handshake.
pub(super) fn parse_ready(line: &[u8]) -> Result<(), String> {
    match serde_json::from_slice(line) {
        Ok(Message::Ready) => Ok(()),
        Ok(other) => Err(format!(
            "expected {{\"type\":\"ready\"}} first, got {other:?}"
        )),
        Err(e) => Err(not_protocol(line, e)),
    }
}

fn not_protocol(line: &[u8], error: serde_json::Error) -> String {
    const SHOWN: usize = 200;
    let text = String::from_utf8_lossy(&line[..line.len().min(SHOWN)]);
    format!("wrote a line that is not a protocol message ({error}): {text:?}")
}

/// How reading a line ended.
#[derive(Debug, PartialEq)]
pub(super) enum Line {
    /// A whole line is in the buffer (without its newline).
    Complete,
    /// The stream ended; the buffer holds whatever came after the last newline.
    Eof,
    /// The buffer reached the cap before a newline.
    TooLong,
}

/// Reads up to the next newline into `buf` (cleared first), keeping at most `cap` bytes.
pub(super) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<Line> {
    buf.clear();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        let (taken, complete) = match available.iter().position(|&b| b == b'\n') {
            Some(newline) => (newline, true),
            None => (available.len(), false),
        };
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&available[..taken.min(room)]);
        reader.consume(if complete { taken + 1 } else { taken });
        if taken > room {
            return Ok(Line::TooLong);
        }
        if complete {
            return Ok(Line::Complete);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn lines_are_split_and_capped() {
        let data = b"one\ntwo is longer\nthree".to_vec();
        let mut reader = &data[..];
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut reader, &mut buf, 100).await.unwrap(),
            Line::Complete
        );
        assert_eq!(buf, b"one");
        assert_eq!(
            read_line(&mut reader, &mut buf, 5).await.unwrap(),
            Line::TooLong
        );
        assert_eq!(buf, b"two i");
        let mut reader = &data["one\ntwo is longer\n".len()..];
        assert_eq!(
            read_line(&mut reader, &mut buf, 100).await.unwrap(),
            Line::Eof
        );
        assert_eq!(buf, b"three");
    }

    #[test]
    fn replies_map_to_outcomes() {
        let outcome = |line: serde_json::Value| match parse_reply(line.to_string().as_bytes(), 7) {
            Ok(Reply::Outcome(o)) => o,
            Ok(Reply::Progress(_)) => panic!("progress"),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            outcome(json!({"type":"result","id":7,"result":{"a":1}})),
            Outcome::Success(Some(json!({"a":1})))
        );
        assert_eq!(
            outcome(json!({"type":"result","id":7})),
            Outcome::Success(None)
        );
        assert_eq!(
            outcome(json!({"type":"error","id":7,"error":"x"})),
            Outcome::Retry("x".into())
        );
        assert_eq!(
            outcome(json!({"type":"permanent","id":7,"error":"x"})),
            Outcome::Permanent("x".into())
        );
        assert_eq!(
            outcome(json!({"type":"deadly","id":7,"error":"x"})),
            Outcome::Deadly("x".into())
        );
        assert_eq!(
            outcome(json!({"type":"snooze","id":7,"seconds":1.5})),
            Outcome::Snooze(Duration::from_millis(1500))
        );
    }

    #[test]
    fn protocol_violations_are_errors() {
        for line in [
            "hello",
            r#"{"type":"result","id":8}"#,
            r#"{"type":"snooze","id":7,"seconds":-1}"#,
            r#"{"type":"ready"}"#,
            r#"{"type":"shrug","id":7}"#,
            r#"{"type":"error","id":7}"#,
        ] {
            assert!(parse_reply(line.as_bytes(), 7).is_err(), "{line}");
        }
        assert!(parse_ready(br#"{"type":"ready","version":1}"#).is_ok());
        assert!(parse_ready(b"Loading framework...").is_err());
    }
}
