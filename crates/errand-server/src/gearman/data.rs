//! How Gearman's opaque bytes become errand's JSON payloads and results and
//! back: UTF-8 bytes are a JSON string (readable in the API and dashboard);
//! other bytes are kept as `{"gearman_base64": "…"}` so nothing is lost.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::Value;

/// The key of a non-UTF-8 workload or result kept as base64.
pub(crate) const BASE64_KEY: &str = "gearman_base64";

/// The JSON errand stores for Gearman bytes.
pub(crate) fn to_json(data: &[u8]) -> Value {
    match std::str::from_utf8(data) {
        Ok(text) => Value::String(text.to_string()),
        Err(_) => serde_json::json!({ BASE64_KEY: STANDARD.encode(data) }),
    }
}

/// The bytes a Gearman worker or client gets for a stored value: a string
/// as its text, a base64 object decoded, `null` as nothing, and any other
/// JSON (a job enqueued over HTTP) as its JSON text.
pub(crate) fn to_bytes(value: &Value) -> Bytes {
    match value {
        Value::Null => Bytes::new(),
        Value::String(s) => Bytes::from(s.clone()),
        Value::Object(map) if map.len() == 1 => match map.get(BASE64_KEY) {
            Some(Value::String(b64)) => match STANDARD.decode(b64) {
                Ok(raw) => Bytes::from(raw),
                Err(_) => Bytes::from(value.to_string()),
            },
            _ => Bytes::from(value.to_string()),
        },
        other => Bytes::from(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip() {
        for data in [&b""[..], b"hello", b"\xff\x00binary", "h\u{e9}".as_bytes()] {
            let json = to_json(data);
            assert_eq!(&to_bytes(&json)[..], data);
        }
        assert_eq!(to_json(b"x"), Value::String("x".into()));
        assert_eq!(&to_bytes(&serde_json::json!({"a": 1}))[..], br#"{"a":1}"#);
    }
}
