//! What the SMTP server's answer means for the job:
//!
//! | what happened | outcome |
//! | --- | --- |
//! | 2xx after DATA | success, `{"message_id", "response"}` |
//! | 4xx reply (e.g. 451 greylisting, mailbox busy) | retry |
//! | 5xx reply (e.g. 550 no such user) | permanent |
//! | 530/534/535/538: the server refuses our login or our security | deadly |
//! | connection refused, timeout, TLS failure, connection lost | deadly |
//! | server lacks STARTTLS or every AUTH mechanism we know | deadly |
//! | message needs SMTPUTF8/8BITMIME the server lacks | permanent |
//! | unreadable reply | retry |
//!
//! Deadly means the mail system, not this message, is at fault: the job is
//! handed back without using an attempt and the kind's breaker opens.

use errand_core::Outcome;
use lettre::transport::smtp::Error;
use lettre::transport::smtp::response::Response;
use serde_json::json;

/// Replies that reject the client's credentials or security level rather
/// than the message: every message would fail the same way.
const LOGIN_REFUSED: [u16; 4] = [530, 534, 535, 538];

/// A message the server accepted.
pub(super) fn delivered(message_id: &str, response: &Response) -> Outcome {
    let text = response.message().collect::<Vec<_>>().join(" ");
    Outcome::Success(Some(json!({
        "message_id": message_id,
        "response": format!("{} {text}", response.code()),
    })))
}

/// A message that was not sent.
pub(super) fn failed(e: &Error) -> Outcome {
    let message = describe(e);
    if e.is_transient() {
        Outcome::Retry(message)
    } else if let Some(code) = e.status().filter(|_| e.is_permanent()) {
        if LOGIN_REFUSED.contains(&u16::from(code)) {
            Outcome::Deadly(message)
        } else {
            Outcome::Permanent(message)
        }
    } else if e.is_response() {
        Outcome::Retry(message)
    } else if e.is_client() && message.contains("non-ascii") {
        // lettre's words for a message the server cannot carry; the other
        // client errors are about the server's abilities.
        Outcome::Permanent(message)
    } else {
        Outcome::Deadly(message)
    }
}

/// The error with its causes ("Connection refused" is a few levels down).
fn describe(e: &Error) -> String {
    let mut message = format!("SMTP: {e}");
    let mut source = std::error::Error::source(e);
    // lettre's Display already includes the first cause.
    if let Some(first) = source {
        source = first.source();
    }
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
