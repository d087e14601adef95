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
    let message = crate::error_chain::describe("SMTP", e);
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

/// A delivery that did not finish in time: the server is not answering.
pub(super) fn timed_out(limit: std::time::Duration) -> Outcome {
    Outcome::Deadly(format!(
        "SMTP: the server did not complete the delivery within {}",
        errand_core::duration::format(limit)
    ))
}
