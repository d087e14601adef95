//! What a webhook's answer (or its absence) means for the job: the status
//! classes, Retry-After, and the capped body kept as the result.

use errand_core::Outcome;
use errand_core::duration;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use std::time::{Duration, SystemTime};

/// Most bytes of a 2xx body kept as the job's result.
pub const RESULT_CAP: usize = 1 << 20;
/// Longest snooze a Retry-After can ask for; a receiver asking for more is
/// asked again after this long.
pub const SNOOZE_CAP: Duration = Duration::from_secs(3600);
/// The snooze after a 429 that gives no Retry-After.
pub const SNOOZE_WITHOUT_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Shortest snooze, so that `Retry-After: 0` cannot spin the job.
const SNOOZE_FLOOR: Duration = Duration::from_secs(1);
/// Most bytes of an error body quoted in the job's error.
const SNIPPET_CAP: usize = 512;

/// The outcome of a request that got an answer.
pub(super) async fn outcome(mut response: reqwest::Response, timeout: Duration) -> Outcome {
    let status = response.status();
    let retry_after = retry_after(response.headers(), SystemTime::now());
    let cap = if status.is_success() {
        RESULT_CAP
    } else {
        SNIPPET_CAP
    };
    match read_capped(&mut response, cap).await {
        Ok(body) => classify(status, retry_after, body),
        Err(e) => failed_request(e, timeout),
    }
}

/// The outcome of a request that got no (complete) answer: always a retry,
/// since the receiver or the network may be back next time. The URL is left
/// out: it may hold credentials, and the job's kind names the webhook.
pub(super) fn failed_request(e: reqwest::Error, timeout: Duration) -> Outcome {
    if e.is_timeout() {
        return Outcome::Retry(format!(
            "webhook timed out after {}",
            duration::format(timeout)
        ));
    }
    let context = if e.is_connect() {
        "cannot connect to the webhook"
    } else {
        "webhook request failed"
    };
    Outcome::Retry(crate::error_chain::describe(context, &e.without_url()))
}

/// A body read up to a cap, and whether more was discarded.
#[derive(Debug, Default)]
struct Body {
    bytes: Vec<u8>,
    truncated: bool,
}

async fn read_capped(response: &mut reqwest::Response, cap: usize) -> reqwest::Result<Body> {
    let mut body = Body::default();
    while let Some(chunk) = response.chunk().await? {
        let room = cap - body.bytes.len();
        if chunk.len() > room {
            body.bytes.extend_from_slice(&chunk[..room]);
            body.truncated = true;
            break;
        }
        body.bytes.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn classify(status: StatusCode, retry_after: Option<Duration>, body: Body) -> Outcome {
    let code = status.as_u16();
    match (code, retry_after) {
        _ if status.is_success() => Outcome::Success(result_of(body)),
        (429 | 503, Some(wait)) => Outcome::Snooze(wait.clamp(SNOOZE_FLOOR, SNOOZE_CAP)),
        (429, None) => Outcome::Snooze(SNOOZE_WITHOUT_RETRY_AFTER),
        (408 | 500..=599, _) => Outcome::Retry(describe(status, &body)),
        _ => Outcome::Permanent(describe(status, &body)),
    }
}

/// "HTTP 502 Bad Gateway: <start of the body>".
fn describe(status: StatusCode, body: &Body) -> String {
    let text = String::from_utf8_lossy(&body.bytes);
    let text = text.trim();
    let ellipsis = if body.truncated { "…" } else { "" };
    if text.is_empty() {
        format!("webhook answered HTTP {status}")
    } else {
        format!("webhook answered HTTP {status}: {text}{ellipsis}")
    }
}

/// The body as JSON when it parses, else as text; nothing when empty.
fn result_of(body: Body) -> Option<serde_json::Value> {
    if !body.truncated
        && let Ok(value) = serde_json::from_slice(&body.bytes)
    {
        return Some(value);
    }
    let mut text = String::from_utf8_lossy(&body.bytes).into_owned();
    if body.truncated {
        tracing::warn!(
            cap = RESULT_CAP,
            "webhook answer exceeded the cap; result truncated"
        );
        text.push_str(&format!(
            "\n[truncated: answer exceeded {RESULT_CAP} bytes]"
        ));
    } else if text.trim().is_empty() {
        return None;
    }
    Some(serde_json::Value::String(text))
}

/// How long `Retry-After` asks to wait: delay-seconds or an HTTP date
/// (a date in the past means now). Unreadable values are ignored.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let at = SystemTime::from(at);
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    fn body(text: &str) -> Body {
        Body {
            bytes: text.as_bytes().to_vec(),
            truncated: false,
        }
    }

    fn go(code: u16, retry_after: Option<u64>, text: &str) -> Outcome {
        classify(
            StatusCode::from_u16(code).unwrap(),
            retry_after.map(Duration::from_secs),
            body(text),
        )
    }

    #[test]
    fn status_classes_map_to_outcomes() {
        assert_eq!(
            go(200, None, r#"{"ok":1}"#),
            Outcome::Success(Some(json!({"ok": 1})))
        );
        assert_eq!(
            go(201, None, "created"),
            Outcome::Success(Some(json!("created")))
        );
        assert_eq!(go(204, None, ""), Outcome::Success(None));
        assert_eq!(
            go(500, None, "oops"),
            Outcome::Retry("webhook answered HTTP 500 Internal Server Error: oops".into())
        );
        assert!(matches!(go(408, None, ""), Outcome::Retry(_)));
        assert!(matches!(go(503, None, ""), Outcome::Retry(_)));
        assert!(matches!(go(502, Some(5), ""), Outcome::Retry(_)));
        assert_eq!(
            go(503, Some(5), ""),
            Outcome::Snooze(Duration::from_secs(5))
        );
        assert_eq!(
            go(429, Some(7), ""),
            Outcome::Snooze(Duration::from_secs(7))
        );
        assert_eq!(
            go(429, None, ""),
            Outcome::Snooze(SNOOZE_WITHOUT_RETRY_AFTER)
        );
        assert_eq!(go(429, Some(86_400), ""), Outcome::Snooze(SNOOZE_CAP));
        assert_eq!(go(429, Some(0), ""), Outcome::Snooze(SNOOZE_FLOOR));
        assert!(matches!(go(400, None, "bad"), Outcome::Permanent(m) if m.ends_with(": bad")));
        assert!(matches!(go(404, Some(5), ""), Outcome::Permanent(_)));
        assert!(matches!(go(301, None, ""), Outcome::Permanent(_)));
    }

    #[test]
    fn truncated_bodies_are_marked() {
        let big = Body {
            bytes: b"{\"cut".to_vec(),
            truncated: true,
        };
        let Some(serde_json::Value::String(text)) = result_of(big) else {
            panic!("a truncated body is text");
        };
        assert!(text.starts_with("{\"cut") && text.contains("[truncated"));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let at = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
            retry_after(&h, now)
        };
        assert_eq!(at("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            at("Sun, 06 Nov 1994 08:50:07 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(at("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(at("soon"), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
