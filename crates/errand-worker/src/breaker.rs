//! Per-kind circuit breakers of this node: after a run of deadly outcomes
//! (the infrastructure a kind needs is down) the node stops claiming the
//! kind, waits with capped exponential backoff, then lets one probe job
//! through; the probe's success closes the breaker, its deadly failure
//! reopens it for longer. Jobs stay queued meanwhile instead of cycling
//! through the outage.

use errand_core::{BreakerPhase, BreakerState, Clock, Outcome};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// When a kind's breaker opens and how long it stays open
/// (`[worker.breaker]` in the configuration file).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive deadly outcomes of a kind that open its breaker.
    pub threshold: u32,
    /// The first wait before a probe; doubled after each failed probe.
    #[serde(with = "errand_core::duration::serde_human")]
    pub base: Duration,
    /// The longest wait before a probe.
    #[serde(with = "errand_core::duration::serde_human")]
    pub max: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            threshold: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl BreakerConfig {
    /// Refuses settings that cannot be meant; the message starts with the
    /// key at fault (`threshold`, `base` or `max`).
    pub fn validate(&self) -> Result<(), String> {
        if self.threshold == 0 {
            return Err("threshold: must be at least 1".into());
        }
        if self.base.is_zero() {
            return Err("base: must be greater than zero".into());
        }
        if self.max < self.base {
            return Err(format!(
                "max: must be at least base ({}), got {}",
                errand_core::duration::format(self.base),
                errand_core::duration::format(self.max)
            ));
        }
        Ok(())
    }

    /// The wait before the next probe after `failed_probes` failed ones,
    /// without jitter: `base * 2^failed_probes`, capped at `max`.
    fn backoff(&self, failed_probes: u32) -> Duration {
        let factor = 2u32.saturating_pow(failed_probes.min(31));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The backoff with up to a quarter taken off at random, so nodes that
    /// opened together do not all probe at the same instant.
    fn jittered(&self, failed_probes: u32) -> Duration {
        self.backoff(failed_probes)
            .mul_f64(1.0 - fastrand::f64() * 0.25)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Closed,
    /// Not claimed before `retry_at`; half-open from then until a probe is taken.
    Open {
        retry_at: Instant,
    },
    /// One probe job is claimed or running.
    Probing,
}

#[derive(Debug)]
struct Breaker {
    phase: Phase,
    consecutive: u32,
    failed_probes: u32,
    last_error: String,
    since: jiff::Timestamp,
}

impl Breaker {
    fn closed(since: jiff::Timestamp) -> Breaker {
        Breaker {
            phase: Phase::Closed,
            consecutive: 0,
            failed_probes: 0,
            last_error: String::new(),
            since,
        }
    }
}

/// Which kinds a claim may ask for now.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Plan {
    /// Kinds whose breaker is closed: claimed as usual.
    pub(crate) closed: Vec<String>,
    /// A kind whose next probe is due (take it with [`Breakers::take_probe`]).
    pub(crate) probe: Option<String>,
    /// The earliest time an open kind becomes due for a probe.
    pub(crate) wake_at: Option<Instant>,
}

/// The breakers of every kind this node runs.
#[derive(Debug)]
pub(crate) struct Breakers {
    config: BreakerConfig,
    kinds: Mutex<HashMap<String, Breaker>>,
    /// The store's clock, for the wall-clock times the registry shows.
    clock: Clock,
}

impl Breakers {
    pub(crate) fn new(config: BreakerConfig, clock: Clock) -> Breakers {
        Breakers {
            config,
            kinds: Mutex::new(HashMap::new()),
            clock,
        }
    }

    /// Counts the outcome of an attempt of `kind`: a deadly one towards
    /// opening (or reopens after a failed probe), any other real outcome
    /// closes. A hand-back says nothing about the kind's health.
    pub(crate) fn record(&self, kind: &str, outcome: &Outcome, now: Instant) {
        match outcome {
            Outcome::Deadly(error) => self.deadly(kind, error, now),
            Outcome::Handback | Outcome::LeaseExpired => {}
            _ => self.healthy(kind),
        }
    }

    fn deadly(&self, kind: &str, error: &str, now: Instant) {
        let mut kinds = self.kinds.lock().expect("breaker lock");
        let b = kinds
            .entry(kind.to_string())
            .or_insert_with(|| Breaker::closed(self.clock.now()));
        b.consecutive = b.consecutive.saturating_add(1);
        b.last_error = error.to_string();
        match b.phase {
            Phase::Closed if b.consecutive >= self.config.threshold => {
                let wait = self.config.jittered(0);
                b.phase = Phase::Open {
                    retry_at: now + wait,
                };
                b.failed_probes = 0;
                b.since = self.clock.now();
                tracing::warn!(
                    kind,
                    consecutive = b.consecutive,
                    ?wait,
                    last_error = error,
                    "breaker open: not claiming this kind until a probe succeeds"
                );
            }
            Phase::Probing => {
                b.failed_probes = b.failed_probes.saturating_add(1);
                let wait = self.config.jittered(b.failed_probes);
                b.phase = Phase::Open {
                    retry_at: now + wait,
                };
                tracing::warn!(
                    kind,
                    failed_probes = b.failed_probes,
                    ?wait,
                    last_error = error,
                    "breaker probe failed; open again"
                );
            }
            // Attempts that were already running when it opened.
            Phase::Closed | Phase::Open { .. } => {}
        }
    }

    fn healthy(&self, kind: &str) {
        let mut kinds = self.kinds.lock().expect("breaker lock");
        let Some(b) = kinds.get_mut(kind) else {
            return;
        };
        if b.phase != Phase::Closed {
            tracing::info!(kind, last_error = b.last_error, "breaker closed");
        }
        *b = Breaker::closed(self.clock.now());
    }

    /// Splits `kinds` into those claimable as usual and at most one whose
    /// probe is due; open kinds are left out.
    pub(crate) fn plan(&self, kinds: &[String], now: Instant) -> Plan {
        let states = self.kinds.lock().expect("breaker lock");
        let mut plan = Plan::default();
        for kind in kinds {
            match states.get(kind).map(|b| b.phase) {
                None | Some(Phase::Closed) => plan.closed.push(kind.clone()),
                Some(Phase::Open { retry_at }) if retry_at <= now => {
                    plan.probe.get_or_insert_with(|| kind.clone());
                }
                Some(Phase::Open { retry_at }) => {
                    plan.wake_at = Some(plan.wake_at.map_or(retry_at, |w| w.min(retry_at)));
                }
                Some(Phase::Probing) => {}
            }
        }
        plan
    }

    /// Takes `kind`'s single probe if it is due: true when the caller may
    /// claim one job of the kind.
    pub(crate) fn take_probe(&self, kind: &str, now: Instant) -> bool {
        let mut kinds = self.kinds.lock().expect("breaker lock");
        match kinds.get_mut(kind) {
            Some(b) if matches!(b.phase, Phase::Open { retry_at } if retry_at <= now) => {
                b.phase = Phase::Probing;
                tracing::info!(kind, "breaker half-open: letting one probe job through");
                true
            }
            _ => false,
        }
    }

    /// The probe claim found no job of `kind`: probe again at `retry_at`.
    pub(crate) fn probe_unused(&self, kind: &str, retry_at: Instant) {
        let mut kinds = self.kinds.lock().expect("breaker lock");
        if let Some(b) = kinds.get_mut(kind)
            && b.phase == Phase::Probing
        {
            b.phase = Phase::Open { retry_at };
        }
    }

    /// The non-closed breakers, for the node registry.
    pub(crate) fn snapshot(&self, now: Instant) -> BTreeMap<String, BreakerState> {
        let kinds = self.kinds.lock().expect("breaker lock");
        let wall = self.clock.now();
        kinds
            .iter()
            .filter_map(|(kind, b)| {
                let (state, retry_at) = match b.phase {
                    Phase::Closed => return None,
                    Phase::Open { retry_at } if retry_at > now => {
                        let wait = jiff::SignedDuration::try_from(retry_at - now).ok()?;
                        (BreakerPhase::Open, wall.checked_add(wait).ok())
                    }
                    Phase::Open { .. } => (BreakerPhase::HalfOpen, Some(wall)),
                    Phase::Probing => (BreakerPhase::HalfOpen, None),
                };
                let state = BreakerState {
                    state,
                    since: b.since,
                    retry_at,
                    last_error: b.last_error.clone(),
                    consecutive: b.consecutive,
                };
                Some((kind.clone(), state))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers() -> Breakers {
        Breakers::new(
            BreakerConfig {
                threshold: 3,
                base: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
            Clock::system(),
        )
    }

    fn deadly() -> Outcome {
        Outcome::Deadly("connection refused".into())
    }

    fn kinds() -> Vec<String> {
        vec!["email".into(), "report".into()]
    }

    #[test]
    fn opens_after_threshold_consecutive_deadly_outcomes() {
        let b = breakers();
        let now = Instant::now();
        b.record("email", &deadly(), now);
        b.record("email", &deadly(), now);
        assert_eq!(b.plan(&kinds(), now).closed, kinds());
        assert!(b.snapshot(now).is_empty());
        b.record("email", &deadly(), now);
        let plan = b.plan(&kinds(), now);
        assert_eq!(plan.closed, vec!["report".to_string()]);
        assert_eq!(plan.probe, None);
        let wake = plan.wake_at.expect("open kind has a wake time");
        assert!(wake > now && wake <= now + Duration::from_secs(1));
        let snap = b.snapshot(now);
        assert_eq!(snap["email"].state, BreakerPhase::Open);
        assert_eq!(snap["email"].consecutive, 3);
        assert_eq!(snap["email"].last_error, "connection refused");
        assert!(snap["email"].retry_at.is_some());
    }

    #[test]
    fn a_non_deadly_outcome_resets_the_count() {
        let b = breakers();
        let now = Instant::now();
        for outcome in [
            Outcome::Success(None),
            Outcome::Retry("x".into()),
            Outcome::Permanent("x".into()),
        ] {
            b.record("email", &deadly(), now);
            b.record("email", &deadly(), now);
            b.record("email", &outcome, now);
        }
        b.record("email", &deadly(), now);
        b.record("email", &deadly(), now);
        assert_eq!(b.plan(&kinds(), now).closed, kinds());
        // A hand-back neither counts nor resets.
        b.record("email", &Outcome::Handback, now);
        b.record("email", &deadly(), now);
        assert!(b.plan(&kinds(), now).wake_at.is_some());
    }

    #[test]
    fn half_open_lets_exactly_one_probe_through() {
        let b = breakers();
        let start = Instant::now();
        for _ in 0..3 {
            b.record("email", &deadly(), start);
        }
        let due = start + Duration::from_secs(1);
        let plan = b.plan(&kinds(), due);
        assert_eq!(plan.probe.as_deref(), Some("email"));
        assert_eq!(b.snapshot(due)["email"].state, BreakerPhase::HalfOpen);
        assert!(b.take_probe("email", due));
        assert!(!b.take_probe("email", due), "a second probe while one runs");
        let plan = b.plan(&kinds(), due);
        assert_eq!((plan.probe, plan.closed.len()), (None, 1));
        assert_eq!(b.snapshot(due)["email"].retry_at, None);
        b.record("email", &Outcome::Success(None), due);
        assert_eq!(b.plan(&kinds(), due).closed, kinds());
        assert!(b.snapshot(due).is_empty());
    }

    #[test]
    fn an_unused_probe_is_retried_later() {
        let b = breakers();
        let start = Instant::now();
        for _ in 0..3 {
            b.record("email", &deadly(), start);
        }
        let due = start + Duration::from_secs(1);
        assert!(b.take_probe("email", due));
        b.probe_unused("email", due + Duration::from_millis(100));
        assert_eq!(b.plan(&kinds(), due).probe, None);
        assert!(b.take_probe("email", due + Duration::from_millis(100)));
    }

    #[test]
    fn failed_probes_back_off_exponentially_up_to_the_cap() {
        let config = BreakerConfig::default();
        let secs: Vec<u64> = (0..9).map(|n| config.backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(config.backoff(u32::MAX), config.max);
        for n in 0..8 {
            let j = config.jittered(n);
            assert!(j <= config.backoff(n) && j >= config.backoff(n).mul_f64(0.75));
        }

        let b = breakers();
        let mut now = Instant::now();
        for _ in 0..3 {
            b.record("email", &deadly(), now);
        }
        let mut waits = Vec::new();
        for _ in 0..4 {
            let wake = b.plan(&kinds(), now).wake_at.expect("open");
            waits.push(wake - now);
            now = wake;
            assert!(b.take_probe("email", now));
            b.record("email", &deadly(), now);
        }
        for (n, wait) in waits.iter().enumerate() {
            let full = config.backoff(n as u32);
            assert!(
                *wait <= full && *wait >= full.mul_f64(0.75),
                "{n}: {wait:?}"
            );
        }
        assert_eq!(b.snapshot(now)["email"].consecutive, 7);
    }
}
