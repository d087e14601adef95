//! The audit log: who did which admin action to what, and what it changed.
//! A store writes an entry in the same transaction as the action it
//! describes (docs/decisions/0023-audit-log.md), so there is never an
//! action without its entry, nor an entry for an action that failed or
//! changed nothing. Entries never hold a payload, a result or a secret.

use crate::job::{JobId, ValidationError};
use crate::{JobState, auth::Scopes};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::fmt;
use std::str::FromStr;

/// An entry's id: increasing in the order entries were written.
pub type AuditId = i64;

/// The actor of everything done without a token: a CLI command on the
/// database itself (`errand tokens`), or a request to a server whose auth
/// is off. It contains a space, which no token name can.
pub const LOCAL_ACTOR: &str = "local CLI";

/// Who did an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditActor {
    /// The bearer of the API token of this name.
    Token(String),
    /// No token: see [`LOCAL_ACTOR`].
    Local,
}

impl AuditActor {
    /// The name recorded: the token's, or [`LOCAL_ACTOR`].
    pub fn name(&self) -> &str {
        match self {
            AuditActor::Token(name) => name,
            AuditActor::Local => LOCAL_ACTOR,
        }
    }
}

impl fmt::Display for AuditActor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What was done. A closed list, stored and sent as its dotted name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AuditAction {
    /// A job was cancelled.
    #[serde(rename = "job.cancel")]
    JobCancel,
    /// A failed or cancelled job was made to run again.
    #[serde(rename = "job.retry")]
    JobRetry,
    /// A queue was paused.
    #[serde(rename = "queue.pause")]
    QueuePause,
    /// A paused queue was resumed.
    #[serde(rename = "queue.resume")]
    QueueResume,
    /// An API token was created.
    #[serde(rename = "token.create")]
    TokenCreate,
    /// An API token was revoked.
    #[serde(rename = "token.revoke")]
    TokenRevoke,
    /// A bulk retry was started (one entry for the whole operation).
    #[serde(rename = "bulk.retry")]
    BulkRetry,
    /// A bulk cancel was started.
    #[serde(rename = "bulk.cancel")]
    BulkCancel,
    /// A bulk delete was started.
    #[serde(rename = "bulk.delete")]
    BulkDelete,
    /// A bulk run-now was started.
    #[serde(rename = "bulk.run_now")]
    BulkRunNow,
}

impl AuditAction {
    /// Every action, in the order they are documented.
    pub const ALL: [AuditAction; 10] = [
        AuditAction::JobCancel,
        AuditAction::JobRetry,
        AuditAction::QueuePause,
        AuditAction::QueueResume,
        AuditAction::TokenCreate,
        AuditAction::TokenRevoke,
        AuditAction::BulkRetry,
        AuditAction::BulkCancel,
        AuditAction::BulkDelete,
        AuditAction::BulkRunNow,
    ];

    /// The dotted name, as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::JobCancel => "job.cancel",
            AuditAction::JobRetry => "job.retry",
            AuditAction::QueuePause => "queue.pause",
            AuditAction::QueueResume => "queue.resume",
            AuditAction::TokenCreate => "token.create",
            AuditAction::TokenRevoke => "token.revoke",
            AuditAction::BulkRetry => "bulk.retry",
            AuditAction::BulkCancel => "bulk.cancel",
            AuditAction::BulkDelete => "bulk.delete",
            AuditAction::BulkRunNow => "bulk.run_now",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditAction {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
                ValidationError::new(
                    "action",
                    format!("unknown action {s:?}; use one of {}", names.join(", ")),
                )
            })
    }
}

/// An entry to write, in the transaction of its action; the store adds
/// the id and the time (from its clock).
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    /// Who did it ([`AuditActor::name`]).
    pub actor: String,
    /// What was done.
    pub action: AuditAction,
    /// What it was done to: a job id, a queue or token name, or (for bulk
    /// actions) a description of the filter.
    pub target: String,
    /// What changed: a small JSON object, never a payload or a secret.
    pub change: Value,
}

impl NewAuditEntry {
    /// Job `id` went from state `from` to `to` by `action`.
    pub fn job(
        actor: &AuditActor,
        action: AuditAction,
        id: JobId,
        from: JobState,
        to: JobState,
    ) -> Self {
        NewAuditEntry {
            actor: actor.name().to_string(),
            action,
            target: id.to_string(),
            change: json!({ "from": from.as_str(), "to": to.as_str() }),
        }
    }

    /// Queue `queue` was paused or resumed (only when that changed it).
    pub fn queue(actor: &AuditActor, queue: &str, paused: bool) -> Self {
        let action = if paused {
            AuditAction::QueuePause
        } else {
            AuditAction::QueueResume
        };
        NewAuditEntry {
            actor: actor.name().to_string(),
            action,
            target: queue.to_string(),
            change: json!({ "paused": paused }),
        }
    }

    /// Token `name`, with `scopes`, was created or revoked (never its secret
    /// nor its hash).
    pub fn token(actor: &AuditActor, action: AuditAction, name: &str, scopes: &Scopes) -> Self {
        NewAuditEntry {
            actor: actor.name().to_string(),
            action,
            target: name.to_string(),
            change: json!({ "scopes": scopes }),
        }
    }
}

/// A recorded entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Increasing in the order entries were written.
    pub id: AuditId,
    /// When the action was done (by the store's clock).
    pub at: jiff::Timestamp,
    /// The token's name, or `local CLI` for an action without a token.
    pub actor: String,
    /// What was done.
    pub action: AuditAction,
    /// A job id, a queue or token name, or a bulk operation's target.
    pub target: String,
    /// What changed, e.g. `{"from": "available", "to": "cancelled"}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub change: Value,
}

/// Which entries to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Only entries of this actor (a token's name or `local CLI`).
    pub actor: Option<String>,
    /// Only entries of this action.
    pub action: Option<AuditAction>,
    /// Only entries at or after this time.
    pub since: Option<jiff::Timestamp>,
    /// Only entries with an id below this (the previous page's cursor).
    pub before: Option<AuditId>,
    /// Page size.
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_back_their_names_and_refuse_others() {
        for action in AuditAction::ALL {
            assert_eq!(action.as_str().parse::<AuditAction>().unwrap(), action);
            let json = serde_json::to_value(action).unwrap();
            assert_eq!(json, action.as_str());
        }
        let err = "job.delete".parse::<AuditAction>().unwrap_err();
        assert_eq!(err.field, "action");
        assert!(err.message.contains("job.cancel"), "{err}");
    }

    #[test]
    fn the_local_actor_cannot_be_a_token_name() {
        assert!(crate::job::check_name("name", LOCAL_ACTOR).is_err());
        assert_eq!(AuditActor::Local.name(), LOCAL_ACTOR);
        assert_eq!(AuditActor::Token("ops".into()).name(), "ops");
    }

    #[test]
    fn a_token_entry_holds_its_scopes_not_a_secret() {
        let scopes = Scopes::parse(["enqueue:email", "admin"]).unwrap();
        let entry =
            NewAuditEntry::token(&AuditActor::Local, AuditAction::TokenCreate, "ops", &scopes);
        assert_eq!(
            entry.change,
            json!({ "scopes": ["enqueue:email", "admin"] })
        );
        assert_eq!(entry.actor, LOCAL_ACTOR);
    }
}
