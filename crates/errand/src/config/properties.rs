//! Property tests of the configuration loader: arbitrary text, and arbitrary
//! values under every known key, are read and checked without a panic, and
//! every duration a loaded file holds lies within `duration::MAX`.

use super::ConfigFile;
use crate::plan::{NodePlan, Overrides};
use errand_core::duration::MAX;
use proptest::prelude::*;
use toml::{Table, Value};

/// The keys of each section, as the file reference documents them.
const SECTIONS: [(&str, &[&str]); 10] = [
    ("", &["database", "listen"]),
    (
        "server",
        &["body_limit", "max_wait", "record_unknown_events"],
    ),
    (
        "worker",
        &[
            "enabled",
            "name",
            "lease",
            "heartbeat",
            "poll_interval",
            "shutdown_timeout",
            "maintenance_interval",
        ],
    ),
    ("worker.breaker", &["threshold", "base", "max"]),
    ("gearman", &["listen"]),
    ("sqlite", &["synchronous"]),
    (
        "postgres",
        &["pool_size", "connect_timeout", "verify_connections"],
    ),
    ("retention", &["completed", "failed", "cancelled", "audit"]),
    ("queues.q", &["concurrency"]),
    (
        "kinds.k",
        &[
            "command",
            "queue",
            "priority",
            "max_attempts",
            "timeout",
            "backoff",
            "max_running",
            "rate",
            "unique_for",
            "cwd",
            "env",
            "permanent_exit_codes",
            "deadly_exit_codes",
            "retry_exit_codes",
            "max_processes",
            "env_allow",
            "pool",
            "webhook",
            "smtp",
        ],
    ),
];

/// Keys of the inline tables a kind may hold.
const INNER_KEYS: [&str; 14] = [
    "base",
    "max",
    "jitter",
    "command",
    "processes",
    "max_jobs",
    "max_rss",
    "url",
    "secret",
    "timeout",
    "from",
    "tls",
    "headers",
    "env",
];

/// Text a person might write as a value: durations, sizes, rates, noise.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "-?[0-9]{1,22}(\\.[0-9]{1,5})?(e[+-]?[0-9]{1,3})? ?(ms|s|m|h|d|w|y|MiB|/s|/m)?",
        "(NaN|inf|-1|0|1s|10s|1h|36500d|36501d|9999999999999d|PT1S|true|full)",
        "[a-z/:.@]{0,20}",
    ]
}

/// A TOML value of any type, nested a little.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Integer),
        any::<f64>().prop_map(Value::Float),
        any::<bool>().prop_map(Value::Boolean),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(&INNER_KEYS[..]), inner), 0..4).prop_map(
                |kv| Value::Table(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            ),
        ]
    })
}

/// A document setting a random subset of the known keys to random values.
fn document() -> impl Strategy<Value = String> {
    let all: Vec<(&str, &str)> = SECTIONS
        .iter()
        .flat_map(|(section, keys)| keys.iter().map(move |k| (*section, *k)))
        .collect();
    prop::collection::vec((prop::sample::select(all), value()), 0..8).prop_map(|entries| {
        let mut root = Table::new();
        for ((section, key), v) in entries {
            let mut table = &mut root;
            for part in section.split('.').filter(|p| !p.is_empty()) {
                let entry = table
                    .entry(part.to_string())
                    .or_insert_with(|| Value::Table(Table::new()));
                table = match entry {
                    Value::Table(t) => t,
                    _ => unreachable!("sections are tables"),
                };
            }
            table.insert(key.to_string(), v);
        }
        toml::to_string(&root).unwrap_or_default()
    })
}

/// Parses and resolves `text` the way a node does into its plan; a
/// refusal is fine, a panic is not.
fn load(text: &str) -> Option<NodePlan> {
    let file = ConfigFile::parse(text).ok()?;
    NodePlan::resolve(file, std::path::Path::new("."), Overrides::default()).ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in prop_oneof![any::<String>(), "(\\[[a-z.]{1,12}\\]\n)?[a-z_]{1,12} = [-0-9a-z\".e{}=, ]{0,30}\n"]) {
        let _ = load(&text);
    }

    #[test]
    fn arbitrary_values_never_panic_and_stay_in_range(text in document()) {
        if let Some(c) = load(&text) {
            let w = &c.worker;
            for d in [w.lease, w.heartbeat, w.poll_interval, w.shutdown_timeout, w.maintenance_interval,
                      w.breaker.base, w.breaker.max, c.server.max_wait, c.postgres.connect_timeout,
                      c.retention.completed, c.retention.failed, c.retention.cancelled,
                      c.retention.audit] {
                prop_assert!(d <= MAX, "{text}");
            }
            for p in c.catalog.kinds().values() {
                prop_assert!(p.backoff.validate().is_ok(), "{text}");
                prop_assert!(p.timeout.is_none_or(|t| t <= MAX) && p.unique_for.is_none_or(|t| t <= MAX));
            }
        }
    }
}
