//! The catalogue of work a deployment knows: its kinds (each with its
//! policy), its events (each with its listener kinds) and its cron
//! schedules, checked together once.
//!
//! The HTTP API, the scheduler and the worker all receive the same
//! [`Catalog`], so what an enqueue of a kind, a publication of an event or
//! a schedule's tick turns into is decided here, in one place.

use crate::job::check_name;
use crate::schedule::{Schedule, ScheduleSpec};
use crate::{EnqueueRequest, KindPolicy, NewJob, ValidationError};
use jiff::Timestamp;
use std::collections::BTreeMap;

/// Kinds, events and schedules, checked to refer to one another correctly.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    kinds: BTreeMap<String, KindPolicy>,
    events: BTreeMap<String, Vec<String>>,
    schedules: Vec<Schedule>,
    record_unknown_events: bool,
}

/// Why a catalogue was refused; the message names the section and key as
/// the configuration file spells them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CatalogError {
    /// A kind's name or policy is wrong.
    #[error("[kinds.{kind}] {problem}")]
    Kind {
        /// The kind as written.
        kind: String,
        /// What is wrong, starting with the key at fault.
        problem: String,
    },
    /// An event's name or listeners are wrong.
    #[error("[events.{event:?}] {problem}")]
    Event {
        /// The event as written.
        event: String,
        /// What is wrong, starting with the key at fault.
        problem: String,
    },
    /// A schedule is wrong.
    #[error("[[schedules]] {0}")]
    Schedule(String),
}

impl Catalog {
    /// Checks and builds a catalogue: valid kind and event names, valid
    /// policies, listeners that are configured kinds each listed once, and
    /// schedules that parse, name a configured kind and are named once.
    pub fn new(
        kinds: BTreeMap<String, KindPolicy>,
        events: BTreeMap<String, Vec<String>>,
        schedules: Vec<ScheduleSpec>,
    ) -> Result<Catalog, CatalogError> {
        for (kind, policy) in &kinds {
            let bad = |e: ValidationError| CatalogError::Kind {
                kind: kind.clone(),
                problem: e.to_string(),
            };
            check_name("kind", kind).map_err(|e| CatalogError::Kind {
                kind: kind.clone(),
                problem: format!("name: {}", e.message),
            })?;
            policy.validate().map_err(bad)?;
        }
        let mut catalog = Catalog {
            kinds,
            events: BTreeMap::new(),
            schedules: Vec::with_capacity(schedules.len()),
            record_unknown_events: false,
        };
        for (event, listeners) in events {
            catalog.check_event(&event, &listeners)?;
            catalog.events.insert(event, listeners);
        }
        for spec in schedules {
            let schedule = catalog.check_schedule(spec)?;
            catalog.schedules.push(schedule);
        }
        Ok(catalog)
    }

    /// The same catalogue, recording events it does not name (with no
    /// listeners) instead of refusing them.
    pub fn record_unknown_events(mut self, record: bool) -> Catalog {
        self.record_unknown_events = record;
        self
    }

    fn check_event(&self, event: &str, listeners: &[String]) -> Result<(), CatalogError> {
        let bad = |problem: String| CatalogError::Event {
            event: event.to_string(),
            problem,
        };
        check_name("event", event).map_err(|e| bad(format!("name: {}", e.message)))?;
        for (i, kind) in listeners.iter().enumerate() {
            if !self.kinds.contains_key(kind) {
                return Err(bad(format!(
                    "listeners: {kind:?} is not a configured kind (configured: {})",
                    self.kind_list()
                )));
            }
            if listeners[..i].contains(kind) {
                return Err(bad(format!("listeners: {kind:?} is listed twice")));
            }
        }
        Ok(())
    }

    fn check_schedule(&self, spec: ScheduleSpec) -> Result<Schedule, CatalogError> {
        let s = Schedule::parse(spec).map_err(|e| CatalogError::Schedule(e.to_string()))?;
        if !self.kinds.contains_key(&s.kind) {
            return Err(CatalogError::Schedule(format!(
                "schedule {:?}: kind {:?} is not a configured kind (configured: {})",
                s.name,
                s.kind,
                self.kind_list()
            )));
        }
        if self.schedules.iter().any(|p| p.name == s.name) {
            return Err(CatalogError::Schedule(format!(
                "schedule {:?}: the name is used twice",
                s.name
            )));
        }
        Ok(s)
    }

    /// The configured kinds for a message: "a, b", or "none".
    fn kind_list(&self) -> String {
        if self.kinds.is_empty() {
            return "none".to_string();
        }
        self.kinds.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// The policy of `kind`, if it is configured.
    pub fn policy(&self, kind: &str) -> Option<&KindPolicy> {
        self.kinds.get(kind)
    }

    /// Every kind with its policy, by name.
    pub fn kinds(&self) -> &BTreeMap<String, KindPolicy> {
        &self.kinds
    }

    /// The kinds remote workers run (`remote = true`), sorted.
    pub fn remote_kinds(&self) -> impl Iterator<Item = &str> {
        self.kinds
            .iter()
            .filter(|(_, policy)| policy.remote)
            .map(|(name, _)| name.as_str())
    }

    /// Every configured event name, sorted.
    pub fn event_names(&self) -> impl Iterator<Item = &str> {
        self.events.keys().map(String::as_str)
    }

    /// The cron schedules, in configuration order.
    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }

    /// The same catalogue without its schedules (for a node that leaves
    /// them to others).
    pub fn without_schedules(mut self) -> Catalog {
        self.schedules.clear();
        self
    }

    /// The same catalogue with only the kinds `keep` accepts; events keep
    /// only the remaining listeners and schedules only the remaining kinds.
    pub fn retain_kinds(mut self, keep: impl Fn(&str, &KindPolicy) -> bool) -> Catalog {
        self.kinds.retain(|name, policy| keep(name, policy));
        let kinds = &self.kinds;
        for listeners in self.events.values_mut() {
            listeners.retain(|k| kinds.contains_key(k));
        }
        self.schedules.retain(|s| kinds.contains_key(&s.kind));
        self
    }

    /// The job an enqueue request becomes: its kind's policy fills what the
    /// request leaves unset. An unknown kind is refused, naming the
    /// configured ones.
    pub fn resolve(&self, req: EnqueueRequest, now: Timestamp) -> Result<NewJob, ValidationError> {
        let Some(policy) = self.kinds.get(&req.kind) else {
            let configured = if self.kinds.is_empty() {
                "no kinds are configured".to_string()
            } else {
                format!("configured: {}", self.kind_list())
            };
            return Err(ValidationError::new(
                "kind",
                format!("unknown kind {:?} ({configured})", req.kind),
            ));
        };
        req.resolve(policy, now)
    }

    /// One job per listener of event `name` published at `now`, in
    /// configured order. An event the catalogue does not name is refused
    /// (field `name`) unless unknown events are recorded, which gives it no
    /// listeners.
    pub fn listener_jobs(
        &self,
        name: &str,
        now: Timestamp,
    ) -> Result<Vec<NewJob>, ValidationError> {
        let Some(kinds) = self.events.get(name) else {
            if self.record_unknown_events {
                return Ok(Vec::new());
            }
            let configured = if self.events.is_empty() {
                "no events are configured".to_string()
            } else {
                format!(
                    "configured: {}",
                    self.event_names().collect::<Vec<_>>().join(", ")
                )
            };
            return Err(ValidationError::new(
                "name",
                format!("unknown event {name:?} ({configured})"),
            ));
        };
        // Listeners are configured kinds with checked policies (see `new`),
        // and a request with only a kind resolves under a valid policy.
        kinds
            .iter()
            .map(|kind| {
                self.resolve(
                    EnqueueRequest {
                        kind: kind.clone(),
                        ..Default::default()
                    },
                    now,
                )
            })
            .collect()
    }

    /// The job a schedule's `tick` enqueues, with its kind's policy.
    pub fn schedule_job(
        &self,
        schedule: &Schedule,
        tick: Timestamp,
    ) -> Result<NewJob, ValidationError> {
        let policy = self.kinds.get(&schedule.kind).cloned().unwrap_or_default();
        schedule.job(&policy, tick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(names: &[&str]) -> BTreeMap<String, KindPolicy> {
        names
            .iter()
            .map(|n| (n.to_string(), KindPolicy::default()))
            .collect()
    }

    fn spec(name: &str, kind: &str) -> ScheduleSpec {
        ScheduleSpec {
            name: name.into(),
            cron: "*/5 * * * *".into(),
            kind: kind.into(),
            payload: serde_json::Value::Null,
            queue: None,
            timezone: None,
            catch_up: false,
        }
    }

    #[test]
    fn listeners_become_one_job_each_in_order() {
        let events = BTreeMap::from([("c.new".to_string(), vec!["b".into(), "a".into()])]);
        let c = Catalog::new(kinds(&["a", "b"]), events, vec![]).unwrap();
        let jobs = c.listener_jobs("c.new", Timestamp::UNIX_EPOCH).unwrap();
        let names: Vec<_> = jobs.iter().map(|j| j.kind.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        let e = c.listener_jobs("other", Timestamp::UNIX_EPOCH).unwrap_err();
        assert_eq!(e.field, "name");
        assert!(e.message.contains("configured: c.new"), "{e}");
        let c = c.record_unknown_events(true);
        assert!(
            c.listener_jobs("other", Timestamp::UNIX_EPOCH)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn unknown_kinds_are_refused_naming_the_configured_ones() {
        let c = Catalog::new(kinds(&["a", "b"]), BTreeMap::new(), vec![]).unwrap();
        let req = |kind: &str| EnqueueRequest {
            kind: kind.into(),
            ..Default::default()
        };
        assert_eq!(
            c.resolve(req("a"), Timestamp::UNIX_EPOCH).unwrap().kind,
            "a"
        );
        let e = c.resolve(req("z"), Timestamp::UNIX_EPOCH).unwrap_err();
        assert_eq!(e.field, "kind");
        assert!(e.message.contains("configured: a, b"), "{e}");
        let empty = Catalog::default();
        assert!(
            empty
                .resolve(req("a"), Timestamp::UNIX_EPOCH)
                .unwrap_err()
                .message
                .contains("no kinds")
        );
    }

    #[test]
    fn references_are_checked() {
        let err = |events: Vec<(&str, Vec<&str>)>, schedules: Vec<ScheduleSpec>| {
            let events = events
                .into_iter()
                .map(|(e, l)| (e.to_string(), l.into_iter().map(String::from).collect()))
                .collect();
            Catalog::new(kinds(&["a"]), events, schedules)
                .unwrap_err()
                .to_string()
        };
        let e = err(vec![("x", vec!["zz"])], vec![]);
        assert_eq!(
            e,
            "[events.\"x\"] listeners: \"zz\" is not a configured kind (configured: a)"
        );
        let e = err(vec![("x", vec!["a", "a"])], vec![]);
        assert!(e.contains("listed twice"), "{e}");
        let e = err(vec![("bad name", vec![])], vec![]);
        assert!(e.starts_with("[events.\"bad name\"] name:"), "{e}");
        let e = err(vec![], vec![spec("s", "zz")]);
        assert!(e.contains("kind \"zz\" is not a configured kind"), "{e}");
        let e = err(vec![], vec![spec("s", "a"), spec("s", "a")]);
        assert!(e.contains("used twice"), "{e}");
        let bad_policy = BTreeMap::from([(
            "k".to_string(),
            KindPolicy {
                max_attempts: 0,
                ..Default::default()
            },
        )]);
        let e = Catalog::new(bad_policy, BTreeMap::new(), vec![]).unwrap_err();
        assert!(e.to_string().starts_with("[kinds.k] max_attempts"), "{e}");
    }

    #[test]
    fn retaining_kinds_drops_their_listeners_and_schedules() {
        let events = BTreeMap::from([("e".to_string(), vec!["a".into(), "b".into()])]);
        let c = Catalog::new(kinds(&["a", "b"]), events, vec![spec("s", "b")])
            .unwrap()
            .retain_kinds(|name, _| name == "a");
        assert_eq!(c.kinds().len(), 1);
        assert_eq!(
            c.listener_jobs("e", Timestamp::UNIX_EPOCH).unwrap().len(),
            1
        );
        assert!(c.schedules().is_empty());
    }
}
