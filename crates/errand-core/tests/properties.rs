//! Property tests of the input parsers in errand-core: whatever text or JSON
//! arrives, parsing and resolving answer Ok or a named error, never a panic,
//! and every duration accepted lies within `duration::MAX`.

use errand_core::api::{BatchRequest, NewBatchRequest};
use errand_core::duration::{self, MAX};
use errand_core::schedule::{Schedule, ScheduleSpec};
use errand_core::{Backoff, EnqueueRequest, KindPolicy, NewEvent, Rate};
use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::time::Duration;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1000,
        ..ProptestConfig::default()
    }
}

/// Text shaped like durations, numbers and dates, and plain noise.
fn duration_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "-?[0-9]{1,25}(\\.[0-9]{0,20})?(e[+-]?[0-9]{1,4})?",
        "[0-9]{1,20} ?(ns|us|ms|s|m|h|d|w|mo|y|secs|hours|days)",
        "([0-9]{1,15}[hms] ?){1,4}",
        "-?P(T)?[0-9]{1,15}[YMWDHS]",
        "(NaN|nan|inf|-inf|infinity|\\+inf|-0|0x10|1_000)",
        any::<f64>().prop_map(|f| f.to_string()),
        any::<u64>().prop_map(|n| format!("{n}s")),
    ]
}

/// JSON values as a caller might send in any field.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        duration_like().prop_map(Value::from),
        "(9999|0001|1969|1970|2030|-009999)-(01|12)-(01|31)T00:00:00Z".prop_map(Value::from),
        "[a-z_.]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An enqueue body: the known fields, each either absent or any JSON.
fn enqueue_body() -> impl Strategy<Value = Value> {
    let fields = [
        "kind",
        "payload",
        "queue",
        "priority",
        "run_at",
        "delay",
        "max_attempts",
        "timeout",
        "unique_key",
        "unique_for",
        "tags",
    ];
    prop::collection::vec(prop::option::of(any_json()), fields.len()).prop_map(move |values| {
        let mut body = serde_json::Map::new();
        body.insert("kind".into(), json!("k"));
        for (name, v) in fields.iter().zip(values) {
            if let Some(v) = v {
                body.insert(name.to_string(), v);
            }
        }
        Value::Object(body)
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parse_never_panics_and_stays_in_range(s in duration_like()) {
        if let Ok(d) = duration::parse(&s) {
            prop_assert!(d <= MAX, "{s:?} gave {d:?}");
        }
    }

    #[test]
    fn format_then_parse_round_trips(nanos in 0..=MAX.as_nanos() as u64) {
        let d = Duration::from_nanos(nanos);
        prop_assert_eq!(duration::parse(&duration::format(d)).unwrap(), d);
    }

    #[test]
    fn beyond_max_is_refused(extra in 1u64..u64::MAX / 2) {
        let d = MAX + Duration::from_nanos(extra);
        let err = duration::parse(&duration::format(d)).unwrap_err().to_string();
        prop_assert!(err.contains("must be at most 36500d (100 years)"), "{err}");
        let secs = d.as_secs_f64();
        if secs > MAX.as_secs_f64() {
            prop_assert!(duration::parse(&secs.to_string()).is_err());
        }
    }

    #[test]
    fn from_secs_accepts_exactly_the_range(secs in any::<f64>()) {
        let ok = duration::from_secs(secs).is_ok();
        prop_assert_eq!(ok, secs >= 0.0 && secs <= MAX.as_secs_f64(), "{}", secs);
    }

    #[test]
    fn rate_parse_never_panics(s in prop_oneof![any::<String>(), "[0-9]{1,12}/[smhdw]{1,3}"]) {
        let _ = s.parse::<Rate>();
    }

    #[test]
    fn enqueue_requests_never_panic(body in enqueue_body(), policy in policy()) {
        if let Ok(req) = serde_json::from_value::<EnqueueRequest>(body)
            && let Ok(job) = req.resolve(&policy, jiff::Timestamp::now())
        {
            prop_assert!(job.timeout.is_none_or(|t| t <= MAX));
            prop_assert!(job.unique_for.is_none_or(|t| t <= MAX));
        }
    }

    #[test]
    fn batch_and_event_requests_never_panic(
        jobs in prop::collection::vec(enqueue_body(), 0..3),
        on_complete in prop::option::of(enqueue_body()),
        event in any_json(),
        policy in policy(),
    ) {
        let batch = json!({"jobs": jobs});
        if let Ok(b) = serde_json::from_value::<BatchRequest>(batch.clone()) {
            for job in b.jobs {
                let _ = job.resolve(&policy, jiff::Timestamp::now());
            }
        }
        let mut new_batch = batch;
        if let Some(c) = on_complete {
            new_batch["on_complete"] = c;
        }
        if let Ok(b) = serde_json::from_value::<NewBatchRequest>(new_batch) {
            for job in b.jobs.into_iter().chain(b.on_complete) {
                let _ = job.resolve(&policy, jiff::Timestamp::now());
            }
        }
        if let Ok(e) = serde_json::from_value::<NewEvent>(event) {
            let _ = e.validate();
        }
    }

    #[test]
    fn backoff_delay_never_panics(
        base in any::<u64>(), max in any::<u64>(), jitter in any::<f64>(),
        attempt in any::<u32>(), draw in any::<f64>(),
    ) {
        let b = Backoff { base: Duration::from_nanos(base), max: Duration::from_nanos(max), jitter };
        let d = b.delay_with(attempt, draw);
        prop_assert!(d <= MAX);
        if b.validate().is_ok() {
            prop_assert!(d <= b.max);
        }
    }
}

/// Any representable time.
fn timestamp() -> impl Strategy<Value = Timestamp> {
    let (min, max) = (Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    prop_oneof![
        Just(Timestamp::MIN),
        Just(Timestamp::MAX),
        (min..=max).prop_map(|s| Timestamp::from_second(s).unwrap()),
        (0i64..4_102_444_800).prop_map(|s| Timestamp::from_second(s).unwrap()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn schedules_never_panic_at_any_time(
        cron in prop_oneof![
            any::<String>(),
            "([0-9*/,-]{1,6} ){4,5}[0-9*/,A-Za-z-]{1,6}",
            "(@yearly|@daily|@hourly|0 0 30 2 \\*|0 0 29 2 \\*|59 23 31 12 \\*)",
        ],
        tz in prop::sample::select(vec!["UTC", "Europe/Berlin", "Pacific/Kiritimati", "America/St_Johns"]),
        last in prop::option::of(timestamp()),
        now in timestamp(),
        grace in any::<u64>(),
        catch_up in any::<bool>(),
    ) {
        let spec = ScheduleSpec {
            name: "s".into(),
            cron,
            kind: "k".into(),
            payload: Value::Null,
            queue: None,
            timezone: Some(tz.into()),
            catch_up,
        };
        if let Ok(s) = Schedule::parse(spec) {
            let _ = s.next_after(now);
            let _ = s.decide(last, now, Duration::from_nanos(grace));
        }
    }
}

/// Policies as a configuration could describe them, valid or not.
fn policy() -> impl Strategy<Value = KindPolicy> {
    (
        prop::option::of(any::<u64>()),
        prop::option::of(any::<u64>()),
        any::<u32>(),
    )
        .prop_map(|(timeout, unique_for, max_attempts)| KindPolicy {
            timeout: timeout.map(Duration::from_millis),
            unique_for: unique_for.map(Duration::from_millis),
            max_attempts,
            ..KindPolicy::default()
        })
}
