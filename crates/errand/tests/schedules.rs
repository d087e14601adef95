//! Cron schedules through the real binary: a bad entry stops `errand serve`
//! at start with a message naming the schedule; a good one enqueues on its
//! ticks, and `errand schedules` lists next runs and last ticks.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

const KIND: &str = "[kinds.cleanup]\ncommand = [\"true\"]\n";

fn entry(name: &str, cron: &str, extra: &str) -> String {
    format!("[[schedules]]\nname = \"{name}\"\ncron = \"{cron}\"\nkind = \"cleanup\"\n{extra}\n")
}

#[test]
fn bad_schedules_stop_serve_with_a_message_naming_the_schedule() {
    let cases = [
        (
            entry("nightly", "0 3 * *", ""),
            "schedule \"nightly\": cron \"0 3 * *\"",
        ),
        (
            entry("nightly", "0 25 * * *", ""),
            "schedule \"nightly\": cron \"0 25 * * *\"",
        ),
        (
            entry("nightly", "0 3 * * *", "timezone = \"Europe/Atlantis\""),
            "schedule \"nightly\": timezone \"Europe/Atlantis\": not a known IANA time zone",
        ),
        (
            entry("nightly", "0 3 * * *", "").replace("\"cleanup\"", "\"vacuum\""),
            "schedule \"nightly\": kind \"vacuum\" is not a configured kind (configured: cleanup)",
        ),
    ];
    for (schedule, expected) in cases {
        let err = refused_config(&format!("{KIND}{schedule}"));
        assert!(err.contains(expected), "expected {expected:?} in: {err}");
    }
}

#[test]
fn schedules_fire_and_are_listed_with_next_run_and_last_tick() {
    let server = Server::start(&format!(
        "{KIND}{}{}",
        entry("every-second", "* * * * * *", ""),
        entry(
            "nightly",
            "0 3 * * *",
            "timezone = \"Europe/Berlin\"\npayload = { days = 30 }"
        )
    ));
    wait_completed(&server, "cleanup", 2, Duration::from_secs(30));

    let out = server.cli(&["schedules"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "NEXT RUN (UTC)",
        "every-second",
        "nightly",
        "0 3 * * *",
        "Europe/Berlin",
        "03:00:00 CE",
    ] {
        assert!(text.contains(expected), "expected {expected:?} in:\n{text}");
    }

    let out = server.cli(&["schedules", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = listed.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["every-second", "nightly"]);
    let every = &listed[0];
    let last: jiff::Timestamp = every["last_tick"].as_str().unwrap().parse().unwrap();
    let next: jiff::Timestamp = every["next_run"].as_str().unwrap().parse().unwrap();
    assert!(next > last, "{every}");
    assert_eq!(listed[1]["last_tick"], Value::Null);
    let next: jiff::Timestamp = listed[1]["next_run"].as_str().unwrap().parse().unwrap();
    let berlin = next.to_zoned(jiff::tz::TimeZone::get("Europe/Berlin").unwrap());
    assert_eq!((berlin.hour(), berlin.minute()), (3, 0));

    // The jobs carry the schedule's tag and are due at their tick.
    let (status, page) = get(&server.url("/v1/jobs?kind=cleanup&limit=1"));
    assert_eq!(status, 200, "{page}");
    let job = &page["jobs"][0];
    assert_eq!(job["tags"], serde_json::json!(["schedule:every-second"]));
    assert!(job["run_at"].as_str().unwrap().ends_with("Z"), "{job}");
}
