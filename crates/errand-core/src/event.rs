//! Events: a named fact a caller publishes once, which becomes one job per
//! listener kind in the same transaction, so each listener retries on its
//! own. The store keeps the event and the ids of the jobs it made.

use crate::job::{JobId, MAX_NAME_LEN, ValidationError, check_name};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// An event's id: increasing in publish order.
pub type EventId = i64;

/// An event as a caller publishes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// What happened, e.g. `comment.created`.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::name))]
    pub name: String,
    /// Facts about it, handed to every listener.
    #[serde(default)]
    pub data: Value,
    /// A second publish with the same name and key returns the first event
    /// and makes no jobs.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_key))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
}

impl NewEvent {
    /// Checks the name and key.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_name("name", &self.name)?;
        match &self.unique_key {
            Some(key) if key.is_empty() || key.len() > MAX_NAME_LEN => Err(ValidationError::new(
                "unique_key",
                format!("must be 1 to {MAX_NAME_LEN} bytes"),
            )),
            _ => Ok(()),
        }
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Its id.
    pub id: EventId,
    /// What happened.
    pub name: String,
    /// Facts about it.
    pub data: Value,
    /// Its deduplication key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// When it was published.
    pub published_at: Timestamp,
    /// The listener jobs it made, in listener order.
    pub jobs: Vec<JobId>,
}

impl Event {
    /// The payload each listener job receives: the event without its jobs.
    pub fn listener_payload(&self) -> Value {
        json!({
            "event": {
                "id": self.id,
                "name": self.name,
                "data": self.data,
                "published_at": self.published_at,
            }
        })
    }
}

/// What publishing did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// The event stored (or the earlier one with the same unique key).
    pub event: Event,
    /// True when nothing was stored because of the unique key.
    pub duplicate: bool,
}

/// Filters for listing events, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventFilter {
    /// Only events with this name.
    pub name: Option<String>,
    /// Only events with an id below this (the cursor of the previous page).
    pub before: Option<EventId>,
    /// Page size.
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys_are_checked() {
        let ok = NewEvent {
            name: "comment.created".into(),
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        let bad_name = NewEvent {
            name: "comment created".into(),
            ..Default::default()
        };
        assert_eq!(bad_name.validate().unwrap_err().field, "name");
        let bad_key = NewEvent {
            unique_key: Some(String::new()),
            ..ok
        };
        assert_eq!(bad_key.validate().unwrap_err().field, "unique_key");
    }

    #[test]
    fn listeners_see_the_event_but_not_its_jobs() {
        let event = Event {
            id: 7,
            name: "comment.created".into(),
            data: json!({"post": 3}),
            unique_key: None,
            published_at: Timestamp::UNIX_EPOCH,
            jobs: vec![1, 2],
        };
        let payload = event.listener_payload();
        assert_eq!(payload["event"]["id"], 7);
        assert_eq!(payload["event"]["data"]["post"], 3);
        assert!(payload["event"].get("jobs").is_none());
    }
}
