//! Cron schedules: a `[[schedules]]` entry as configured ([`ScheduleSpec`]),
//! checked and parsed ([`Schedule`]), its tick times in its time zone, and
//! the rule that says what a scheduler does when it wakes ([`Decision`]).
//! Pure: the scheduler loop and the store's `record_tick` do the I/O.
//!
//! Cron syntax is standard (Vixie) cron, parsed by the `croner` crate: five
//! fields, or six with leading seconds; day of week 0-7 (0 and 7 are
//! Sunday); names (`MON`, `JAN`); a day matching either a restricted
//! day of month or a restricted day of week fires.

use crate::KindPolicy;
use crate::job::{EnqueueRequest, NewJob, ValidationError, check_name};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// Longest schedule name: its jobs carry the tag `schedule:<name>`, and a
/// tag is at most 64 bytes.
pub const MAX_SCHEDULE_NAME: usize = 64 - TAG_PREFIX.len();

const TAG_PREFIX: &str = "schedule:";

/// The time zone of a schedule that names none.
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// One `[[schedules]]` entry as written in the configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Unique name; ticks are recorded under it.
    pub name: String,
    /// Cron expression: 5 fields, or 6 with leading seconds.
    pub cron: String,
    /// The kind each tick enqueues.
    pub kind: String,
    /// Payload of each job (JSON `null` when absent).
    #[serde(default)]
    pub payload: Value,
    /// Queue of each job; default from the kind.
    #[serde(default)]
    pub queue: Option<String>,
    /// IANA time zone the expression is read in; default UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// After downtime, run missed ticks once (true) or skip them (false).
    #[serde(default)]
    pub catch_up: bool,
}

/// Why a schedule entry was refused; the message names the schedule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("schedule {name:?}: {problem}")]
pub struct ScheduleError {
    /// The schedule's name as written.
    pub name: String,
    /// What is wrong with it, starting with the key at fault.
    pub problem: String,
}

/// A checked schedule: its cron expression parsed, its time zone found.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Unique name; ticks are recorded under it.
    pub name: String,
    /// The cron expression as written.
    pub cron_text: String,
    /// Time zone the expression is read in.
    pub tz: TimeZone,
    /// The kind each tick enqueues.
    pub kind: String,
    /// Queue override for its jobs.
    pub queue: Option<String>,
    /// Payload of each job.
    pub payload: Value,
    /// Run missed ticks once after downtime instead of skipping them.
    pub catch_up: bool,
    cron: Cron,
}

/// What a scheduler does about one schedule when it wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is due; the next tick is at this time (`None`: never again).
    Wait(Option<Timestamp>),
    /// Enqueue a job for this tick.
    Enqueue(Timestamp),
    /// Record this missed tick without a job, skipping it and those before.
    Skip(Timestamp),
}

impl Schedule {
    /// Checks a configured entry: name, kind and queue spelling, the cron
    /// expression and the time zone.
    pub fn parse(spec: ScheduleSpec) -> Result<Schedule, ScheduleError> {
        let bad = |problem: String| ScheduleError {
            name: spec.name.clone(),
            problem,
        };
        let field = |e: ValidationError| bad(e.to_string());
        check_name("name", &spec.name).map_err(field)?;
        if spec.name.len() > MAX_SCHEDULE_NAME {
            return Err(bad(format!(
                "name: must be at most {MAX_SCHEDULE_NAME} bytes"
            )));
        }
        check_name("kind", &spec.kind).map_err(field)?;
        if let Some(queue) = &spec.queue {
            check_name("queue", queue).map_err(field)?;
        }
        let cron = parse_cron(&spec.cron).map_err(|e| bad(format!("cron {:?}: {e}", spec.cron)))?;
        let zone = spec.timezone.as_deref().unwrap_or(DEFAULT_TIMEZONE);
        let tz = TimeZone::get(zone).map_err(|_| {
            bad(format!(
                "timezone {zone:?}: not a known IANA time zone (e.g. \"Europe/Berlin\", \"America/New_York\", \"UTC\")"
            ))
        })?;
        Ok(Schedule {
            name: spec.name,
            cron_text: spec.cron,
            tz,
            kind: spec.kind,
            queue: spec.queue,
            payload: spec.payload,
            catch_up: spec.catch_up,
            cron,
        })
    }

    /// The time zone's IANA name.
    pub fn timezone(&self) -> &str {
        self.tz.iana_name().unwrap_or(DEFAULT_TIMEZONE)
    }

    /// The first tick strictly after `ts`.
    pub fn next_after(&self, ts: Timestamp) -> Option<Timestamp> {
        // Checked: past the end of time there is no next tick.
        self.first_from(
            floor_second(ts)
                .checked_add(SignedDuration::from_secs(1))
                .ok()?,
        )
    }

    /// The first tick at or after `ts` (ticks fall on whole seconds).
    fn first_from(&self, ts: Timestamp) -> Option<Timestamp> {
        let from = ceil_second(ts).to_zoned(self.tz.clone());
        self.cron
            .find_next_occurrence(&from, true)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The last tick strictly before `ts`.
    fn last_before(&self, ts: Timestamp) -> Option<Timestamp> {
        let until = ceil_second(ts)
            .checked_sub(SignedDuration::from_secs(1))
            .ok()?
            .to_zoned(self.tz.clone());
        self.cron
            .find_previous_occurrence(&until, true)
            .ok()
            .map(|z| z.timestamp())
    }

    /// What to do at `now`, given the last tick recorded for this schedule.
    ///
    /// A tick is on time while `now` is at most `grace` past it: each such
    /// tick is enqueued, oldest first. Ticks further back were missed (the
    /// scheduler was down): the newest missed one is enqueued with
    /// `catch_up`, else recorded as skipped. With no recorded tick (a new
    /// schedule) only its latest tick counts, if on time: earlier ones are
    /// not history.
    pub fn decide(&self, last: Option<Timestamp>, now: Timestamp, grace: Duration) -> Decision {
        let grace = SignedDuration::try_from(grace).unwrap_or(SignedDuration::MAX);
        let on_time_from = now.checked_sub(grace).unwrap_or(Timestamp::MIN);
        let first = match last {
            Some(last) => self.next_after(last),
            // A new schedule starts with its latest tick, if on time.
            None => self
                .last_before(
                    floor_second(now)
                        .checked_add(SignedDuration::from_secs(1))
                        .unwrap_or(now),
                )
                .filter(|t| *t >= on_time_from)
                .or_else(|| self.next_after(now)),
        };
        let Some(first) = first.filter(|t| *t <= now) else {
            return Decision::Wait(first);
        };
        if first >= on_time_from {
            return Decision::Enqueue(first);
        }
        let missed = self.last_before(on_time_from).unwrap_or(first);
        if self.catch_up {
            Decision::Enqueue(missed)
        } else {
            Decision::Skip(missed)
        }
    }

    /// The job `tick` enqueues, with the kind's policy for what the
    /// schedule leaves unset; tagged `schedule:<name>`, and due at the tick
    /// (so a late or caught-up job still says which tick it is for).
    pub fn job(&self, policy: &KindPolicy, tick: Timestamp) -> Result<NewJob, ValidationError> {
        EnqueueRequest {
            kind: self.kind.clone(),
            payload: self.payload.clone(),
            queue: self.queue.clone(),
            run_at: Some(tick),
            tags: vec![format!("{TAG_PREFIX}{}", self.name)],
            ..EnqueueRequest::default()
        }
        // The tick is the time this job is for.
        .resolve(policy, tick)
    }

    /// How the API lists this schedule at `now`.
    pub fn view(
        &self,
        policy: &KindPolicy,
        now: Timestamp,
        last_tick: Option<Timestamp>,
    ) -> ScheduleView {
        ScheduleView {
            name: self.name.clone(),
            cron: self.cron_text.clone(),
            timezone: self.timezone().to_string(),
            kind: self.kind.clone(),
            queue: self.queue.clone().unwrap_or_else(|| policy.queue.clone()),
            catch_up: self.catch_up,
            next_run: self.next_after(now),
            last_tick,
        }
    }
}

/// One schedule as `GET /v1/schedules` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleView {
    /// Its name.
    pub name: String,
    /// The cron expression as configured.
    pub cron: String,
    /// IANA time zone the expression is read in.
    pub timezone: String,
    /// The kind each tick enqueues.
    pub kind: String,
    /// The queue its jobs go to.
    pub queue: String,
    /// Whether missed ticks run once after downtime.
    pub catch_up: bool,
    /// The next tick (`None` when the expression never fires again).
    pub next_run: Option<Timestamp>,
    /// The latest tick recorded (enqueued or skipped), on any node.
    pub last_tick: Option<Timestamp>,
}

/// The body of `GET /v1/schedules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleList {
    /// Every configured schedule, in configuration order.
    pub schedules: Vec<ScheduleView>,
}

/// Parses standard cron: 5 fields or 6 with seconds, no year field. An
/// error names the field at fault, which croner's own messages do not.
fn parse_cron(text: &str) -> Result<Cron, String> {
    let fields = text.split_whitespace().count();
    if !text.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with leading seconds, found {fields}"
        ));
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build();
    parser
        .parse(text)
        .map_err(|e| explain_cron_error(&parser, text, e.to_string()))
}

/// The cron fields with seconds first, each with its allowed values.
const CRON_FIELDS: [(&str, u32, u32); 6] = [
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

/// Turns croner's `error` for `text` into one that names the field: a
/// number out of its field's range is reported with the range; any other
/// fault is pinned on the first field that croner refuses on its own
/// (every other field `*`).
fn explain_cron_error(parser: &CronParser, text: &str, error: String) -> String {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if text.trim_start().starts_with('@') || !(5..=6).contains(&fields.len()) {
        return error;
    }
    let names = &CRON_FIELDS[6 - fields.len()..];
    for (field, &(name, low, high)) in fields.iter().zip(names) {
        if let Some(n) = field_numbers(field).find(|n| !(low..=high).contains(n)) {
            return format!("{name}: {n} is out of range {low}-{high}");
        }
    }
    for (i, (name, ..)) in names.iter().enumerate() {
        let alone: Vec<&str> = (0..fields.len())
            .map(|j| if j == i { fields[i] } else { "*" })
            .collect();
        if parser.parse(&alone.join(" ")).is_err() {
            return format!("{name}: {error}");
        }
    }
    error
}

/// The values a cron field names as numbers (`5`, `1-5`, `10-20/5`, `5L`,
/// `1#2`), steps excepted; names such as `MON` are left to croner.
fn field_numbers(field: &str) -> impl Iterator<Item = u32> + '_ {
    field
        .split(',')
        .flat_map(|part| part.split('/').next().unwrap_or("").split('-'))
        .filter_map(|value| {
            let value = value.split('#').next().unwrap_or("");
            value.trim_end_matches(['L', 'W', 'l', 'w']).parse().ok()
        })
}

fn floor_second(ts: Timestamp) -> Timestamp {
    Timestamp::from_second(ts.as_second()).unwrap_or(ts)
}

fn ceil_second(ts: Timestamp) -> Timestamp {
    let floor = floor_second(ts);
    if floor == ts {
        ts
    } else {
        // At the very end of time there is no next second: stay on this one.
        floor
            .checked_add(SignedDuration::from_secs(1))
            .unwrap_or(floor)
    }
}

#[cfg(test)]
mod tests;
