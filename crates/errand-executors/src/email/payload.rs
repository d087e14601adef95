//! The job payload of an email kind, checked field by field and turned into
//! a message:
//!
//! `{"to", "cc"?, "bcc"?, "reply_to"?, "subject", "text"?, "html"?, "headers"?}`
//!
//! Address fields take one address (`"Ann <ann@example.com>"`) or a list;
//! at least one of `text` and `html` is required (both make a
//! multipart/alternative message); `headers` adds custom headers but cannot
//! replace the ones built from the other fields. Bcc recipients are in the
//! envelope only, never in the headers.

use errand_core::{Job, ValidationError};
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use serde_json::{Map, Value};

const FIELDS: [&str; 8] = [
    "to", "cc", "bcc", "reply_to", "subject", "text", "html", "headers",
];

/// Headers the executor writes itself (lowercase).
const RESERVED_HEADERS: [&str; 13] = [
    "from",
    "sender",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "message-id",
    "date",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
];

/// The message for `job` from `from`, and its Message-ID.
///
/// The Message-ID is derived from the job, so every attempt of one job
/// sends the same one and receivers can drop a duplicate delivery.
pub(super) fn message(job: &Job, from: &Mailbox) -> Result<(Message, String), ValidationError> {
    let fields = job
        .payload
        .as_object()
        .ok_or_else(|| ValidationError::new("payload", "must be a JSON object"))?;
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ValidationError::new(
            unknown.as_str(),
            format!("unknown field; expected {}", FIELDS.join(", ")),
        ));
    }
    let message_id = format!(
        "<errand.{}.{}@{}>",
        job.id,
        job.created_at.as_nanosecond(),
        from.email.domain()
    );
    let mut builder = Message::builder()
        .from(from.clone())
        .message_id(Some(message_id.clone()))
        .subject(
            text(fields, "subject")?
                .ok_or_else(|| ValidationError::new("subject", "is required"))?,
        );
    let to = mailboxes(fields, "to")?;
    if to.is_empty() {
        return Err(ValidationError::new(
            "to",
            "at least one address is required",
        ));
    }
    for mailbox in to {
        builder = builder.to(mailbox);
    }
    for mailbox in mailboxes(fields, "cc")? {
        builder = builder.cc(mailbox);
    }
    for mailbox in mailboxes(fields, "bcc")? {
        builder = builder.bcc(mailbox);
    }
    for mailbox in mailboxes(fields, "reply_to")? {
        builder = builder.reply_to(mailbox);
    }
    for header in headers(fields)? {
        builder = builder.raw_header(header);
    }
    let built = match (text(fields, "text")?, text(fields, "html")?) {
        (Some(text), Some(html)) => builder.multipart(MultiPart::alternative_plain_html(
            text.to_string(),
            html.to_string(),
        )),
        (Some(text), None) => builder.singlepart(SinglePart::plain(text.to_string())),
        (None, Some(html)) => builder.singlepart(SinglePart::html(html.to_string())),
        (None, None) => {
            return Err(ValidationError::new("text", "give text, html or both"));
        }
    };
    let message = built.map_err(|e| ValidationError::new("payload", e.to_string()))?;
    Ok((message, message_id))
}

/// An optional string field.
fn text<'a>(
    fields: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, ValidationError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ValidationError::new(name, "must be a string")),
    }
}

/// An address field: absent, one address, or a list of them.
fn mailboxes(fields: &Map<String, Value>, name: &str) -> Result<Vec<Mailbox>, ValidationError> {
    let parse = |field: String, value: &Value| {
        let text = value
            .as_str()
            .ok_or_else(|| ValidationError::new(&field, "must be an address string"))?;
        text.parse::<Mailbox>()
            .map_err(|e| ValidationError::new(&field, format!("invalid address {text:?}: {e}")))
    };
    match fields.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| parse(format!("{name}[{i}]"), item))
            .collect(),
        Some(value) => Ok(vec![parse(name.to_string(), value)?]),
    }
}

/// The custom headers, refusing names the executor sets and any line break
/// (which would let a payload inject headers).
fn headers(fields: &Map<String, Value>) -> Result<Vec<HeaderValue>, ValidationError> {
    let headers = match fields.get("headers") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(headers)) => headers,
        Some(_) => {
            return Err(ValidationError::new(
                "headers",
                "must be an object of header names to strings",
            ));
        }
    };
    headers
        .iter()
        .map(|(name, value)| {
            let field = format!("headers.{name}");
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(ValidationError::new(
                    field,
                    "is set from the other fields and the configuration",
                ));
            }
            let printable = name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
            let header_name = HeaderName::new_from_ascii(name.clone())
                .ok()
                .filter(|_| printable)
                .ok_or_else(|| {
                    ValidationError::new(&field, "invalid header name (printable ASCII, no colon)")
                })?;
            let value = value
                .as_str()
                .ok_or_else(|| ValidationError::new(&field, "must be a string"))?;
            if value.contains(['\r', '\n']) {
                return Err(ValidationError::new(field, "must not contain line breaks"));
            }
            Ok(HeaderValue::new(header_name, value.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(payload: Value) -> Job {
        let mut job: Job = serde_json::from_value(json!({
            "id": 7, "kind": "email", "queue": "default", "payload": null,
            "priority": 0, "state": "running", "attempt": 1, "max_attempts": 3,
            "run_at": "2030-01-01T00:00:00Z", "created_at": "2030-01-01T00:00:00Z",
        }))
        .unwrap();
        job.payload = payload;
        job
    }

    fn field_of(payload: Value) -> String {
        let from: Mailbox = "App <noreply@example.com>".parse().unwrap();
        message(&job(payload), &from).unwrap_err().field
    }

    #[test]
    fn bad_payloads_name_the_field() {
        let ok = json!({"to": "a@example.com", "subject": "s", "text": "t"});
        let with = |key: &str, value: Value| {
            let mut p = ok.clone();
            p[key] = value;
            p
        };
        assert_eq!(field_of(json!("hello")), "payload");
        assert_eq!(field_of(with("bc", json!("x@example.com"))), "bc");
        assert_eq!(field_of(json!({"subject": "s", "text": "t"})), "to");
        assert_eq!(field_of(with("to", json!([]))), "to");
        assert_eq!(field_of(with("to", json!("not an address"))), "to");
        assert_eq!(field_of(with("cc", json!(["a@example.com", 3]))), "cc[1]");
        assert_eq!(
            field_of(with("bcc", json!(["a@example.com", "@@"]))),
            "bcc[1]"
        );
        assert_eq!(field_of(with("reply_to", json!({"x": 1}))), "reply_to");
        assert_eq!(
            field_of(json!({"to": "a@example.com", "text": "t"})),
            "subject"
        );
        assert_eq!(
            field_of(json!({"to": "a@example.com", "subject": "s"})),
            "text"
        );
        assert_eq!(field_of(with("html", json!(1))), "html");
        assert_eq!(field_of(with("headers", json!(["X: y"]))), "headers");
        assert_eq!(
            field_of(with("headers", json!({"Bcc": "spy@example.com"}))),
            "headers.Bcc"
        );
        assert_eq!(
            field_of(with(
                "headers",
                json!({"X-Tag": "a\r\nBcc: spy@example.com"})
            )),
            "headers.X-Tag"
        );
        assert_eq!(
            field_of(with("headers", json!({"X Tag": "a"}))),
            "headers.X Tag"
        );
        assert_eq!(
            field_of(with("headers", json!({"X-Tag": 3}))),
            "headers.X-Tag"
        );
    }

    #[test]
    fn message_id_is_stable_per_job() {
        let from: Mailbox = "noreply@example.com".parse().unwrap();
        let payload = json!({"to": ["a@example.com"], "subject": "s", "html": "<p>h</p>"});
        let (_, first) = message(&job(payload.clone()), &from).unwrap();
        let (_, again) = message(&job(payload), &from).unwrap();
        assert_eq!(first, again);
        assert!(first.starts_with("<errand.7.") && first.ends_with("@example.com>"));
    }
}
