use super::*;

fn spec(cron: &str) -> ScheduleSpec {
    ScheduleSpec {
        name: "nightly".into(),
        cron: cron.into(),
        kind: "cleanup".into(),
        payload: Value::Null,
        queue: None,
        timezone: None,
        catch_up: false,
    }
}

fn schedule(cron: &str) -> Schedule {
    Schedule::parse(spec(cron)).unwrap()
}

fn zoned(cron: &str, tz: &str) -> Schedule {
    Schedule::parse(ScheduleSpec {
        timezone: Some(tz.into()),
        ..spec(cron)
    })
    .unwrap()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// The first `n` ticks after `from`.
fn ticks(s: &Schedule, from: &str, n: usize) -> Vec<Timestamp> {
    std::iter::successors(s.next_after(ts(from)), |t| s.next_after(*t))
        .take(n)
        .collect()
}

fn ticks_text(s: &Schedule, from: &str, n: usize) -> Vec<String> {
    ticks(s, from, n).iter().map(|t| t.to_string()).collect()
}

fn refused(spec: ScheduleSpec) -> String {
    Schedule::parse(spec).unwrap_err().to_string()
}

#[test]
fn five_fields_fire_on_minutes() {
    // 2025-06-02 is a Monday.
    assert_eq!(
        ticks_text(&schedule("*/15 9-10 * * *"), "2025-06-02T09:50:00Z", 4),
        [
            "2025-06-02T10:00:00Z",
            "2025-06-02T10:15:00Z",
            "2025-06-02T10:30:00Z",
            "2025-06-02T10:45:00Z"
        ]
    );
    assert_eq!(
        ticks_text(&schedule("0 8,12,18 * * *"), "2025-06-02T12:00:00Z", 2),
        ["2025-06-02T18:00:00Z", "2025-06-03T08:00:00Z"]
    );
}

#[test]
fn a_sixth_leading_field_is_seconds() {
    assert_eq!(
        ticks_text(&schedule("*/20 * * * * *"), "2025-06-02T09:00:05Z", 3),
        [
            "2025-06-02T09:00:20Z",
            "2025-06-02T09:00:40Z",
            "2025-06-02T09:01:00Z"
        ]
    );
    // Sub-second start: the tick in that same second is still ahead.
    let s = schedule("* * * * * *");
    assert_eq!(
        s.next_after(ts("2025-06-02T09:00:05.5Z")),
        Some(ts("2025-06-02T09:00:06Z"))
    );
}

#[test]
fn day_of_week_counts_from_sunday_and_seven_is_sunday_too() {
    // 2025-06-07 is a Saturday.
    for cron in ["0 0 * * 0", "0 0 * * 7", "0 0 * * SUN", "0 0 * * sun"] {
        assert_eq!(
            ticks_text(&schedule(cron), "2025-06-07T12:00:00Z", 2),
            ["2025-06-08T00:00:00Z", "2025-06-15T00:00:00Z"],
            "{cron}"
        );
    }
    assert_eq!(
        ticks_text(&schedule("30 6 * * MON-FRI"), "2025-06-06T07:00:00Z", 2),
        ["2025-06-09T06:30:00Z", "2025-06-10T06:30:00Z"]
    );
    assert_eq!(
        ticks_text(&schedule("0 0 * * 1"), "2025-06-07T00:00:00Z", 1),
        ["2025-06-09T00:00:00Z"]
    );
}

#[test]
fn nicknames_and_stepped_ranges_are_read() {
    assert_eq!(
        ticks_text(&schedule("@daily"), "2025-06-02T09:00:00Z", 1),
        ["2025-06-03T00:00:00Z"]
    );
    assert_eq!(
        ticks_text(&schedule("0-30/10 9 * * *"), "2025-06-02T09:00:00Z", 4),
        [
            "2025-06-02T09:10:00Z",
            "2025-06-02T09:20:00Z",
            "2025-06-02T09:30:00Z",
            "2025-06-03T09:00:00Z"
        ]
    );
}

#[test]
fn month_names_are_read() {
    assert_eq!(
        ticks_text(&schedule("0 0 1 JAN,jul *"), "2025-02-01T00:00:00Z", 2),
        ["2025-07-01T00:00:00Z", "2026-01-01T00:00:00Z"]
    );
}

#[test]
fn restricted_day_of_month_and_week_fire_on_either() {
    // Vixie cron: the 13th OR any Friday. 2025-06-13 is a Friday; from
    // June 1st: Fri 6th, Fri 13th (both), Fri 20th, Fri 27th, then July
    // 4th (Fri), 11th (Fri), 13th (Sunday, by day of month).
    assert_eq!(
        ticks_text(&schedule("0 0 13 * FRI"), "2025-06-01T00:00:00Z", 7),
        [
            "2025-06-06T00:00:00Z",
            "2025-06-13T00:00:00Z",
            "2025-06-20T00:00:00Z",
            "2025-06-27T00:00:00Z",
            "2025-07-04T00:00:00Z",
            "2025-07-11T00:00:00Z",
            "2025-07-13T00:00:00Z"
        ]
    );
    // Only one restricted: that one alone decides.
    assert_eq!(
        ticks_text(&schedule("0 0 13 * *"), "2025-06-01T00:00:00Z", 2),
        ["2025-06-13T00:00:00Z", "2025-07-13T00:00:00Z"]
    );
}

#[test]
fn ticks_follow_the_time_zone() {
    let s = zoned("0 9 * * *", "Europe/Berlin");
    assert_eq!(s.timezone(), "Europe/Berlin");
    // Summer (UTC+2), then winter (UTC+1).
    assert_eq!(
        ticks_text(&s, "2025-06-02T00:00:00Z", 1),
        ["2025-06-02T07:00:00Z"]
    );
    assert_eq!(
        ticks_text(&s, "2025-12-02T00:00:00Z", 1),
        ["2025-12-02T08:00:00Z"]
    );
    assert_eq!(schedule("0 9 * * *").timezone(), "UTC");
}

#[test]
fn a_tick_in_the_spring_forward_gap_fires_once_at_the_shifted_instant() {
    // New York, 2025-03-09: 02:00 EST jumps to 03:00 EDT; 02:30 never happens.
    let s = zoned("30 2 * * *", "America/New_York");
    assert_eq!(
        ticks_text(&s, "2025-03-08T00:00:00Z", 3),
        [
            "2025-03-08T07:30:00Z", // 02:30 EST, the day before
            "2025-03-09T07:00:00Z", // the 9th's one tick: 03:00 EDT, when the gap ends
            "2025-03-10T06:30:00Z"  // 02:30 EDT
        ]
    );
}

#[test]
fn a_tick_in_the_repeated_fall_back_hour_fires_once() {
    // New York, 2025-11-02: 01:00-02:00 happens twice (EDT, then EST).
    let s = zoned("30 1 * * *", "America/New_York");
    assert_eq!(
        ticks_text(&s, "2025-11-01T12:00:00Z", 3),
        [
            "2025-11-02T05:30:00Z", // 01:30 EDT, the first pass
            "2025-11-03T06:30:00Z", // the next day, 01:30 EST
            "2025-11-04T06:30:00Z"
        ]
    );
    // Berlin, 2025-10-26: 02:00-03:00 happens twice.
    let s = zoned("15 2 * * *", "Europe/Berlin");
    assert_eq!(
        ticks_text(&s, "2025-10-25T12:00:00Z", 2),
        ["2025-10-26T00:15:00Z", "2025-10-27T01:15:00Z"]
    );
}

#[test]
fn a_bad_cron_names_its_field() {
    let cases = [
        ("30 25 * * *", "hour: 25 is out of range 0-23"),
        ("61 * * * *", "minute: 61 is out of range 0-59"),
        ("0 0 0 * *", "day of month: 0 is out of range 1-31"),
        ("0 0 1-32 * *", "day of month: 32 is out of range 1-31"),
        ("0 0 * 13 *", "month: 13 is out of range 1-12"),
        ("0 0 * * 1,8", "day of week: 8 is out of range 0-7"),
        ("0 0 * * 9L", "day of week: 9 is out of range 0-7"),
        ("60 0 0 * * *", "second: 60 is out of range 0-59"),
        ("0 60 0 * * *", "minute: 60 is out of range 0-59"),
    ];
    for (cron, why) in cases {
        assert_eq!(
            refused(spec(cron)),
            format!("schedule \"nightly\": cron {cron:?}: {why}")
        );
    }
    // Faults other than a number out of range still name the field.
    let e = refused(spec("0 0 * * FUNDAY"));
    assert!(e.contains("cron \"0 0 * * FUNDAY\": day of week: "), "{e}");
    let e = refused(spec("0 x * * *"));
    assert!(e.contains("cron \"0 x * * *\": hour: "), "{e}");
}

#[test]
fn bad_entries_are_refused_naming_the_schedule_and_key() {
    let e = refused(spec("61 * * * *"));
    assert!(
        e.starts_with("schedule \"nightly\": cron \"61 * * * *\""),
        "{e}"
    );
    let e = refused(spec("every day"));
    assert!(
        e.contains("schedule \"nightly\": cron") && e.contains("found 2"),
        "{e}"
    );
    let e = refused(spec("0 0 0 1 1 * 2030"));
    assert!(e.contains("found 7"), "{e}");
    let e = refused(spec("0 0 * * FUNDAY"));
    assert!(e.contains("schedule \"nightly\": cron"), "{e}");
    let e = refused(ScheduleSpec {
        timezone: Some("Mars/Olympus".into()),
        ..spec("0 0 * * *")
    });
    assert!(
        e.contains("schedule \"nightly\": timezone \"Mars/Olympus\": not a known IANA time zone"),
        "{e}"
    );
    let e = refused(ScheduleSpec {
        name: "bad name".into(),
        ..spec("0 0 * * *")
    });
    assert!(e.contains("schedule \"bad name\": name:"), "{e}");
    let e = refused(ScheduleSpec {
        name: "n".repeat(MAX_SCHEDULE_NAME + 1),
        ..spec("0 0 * * *")
    });
    assert!(e.contains("name: must be at most 55 bytes"), "{e}");
    let e = refused(ScheduleSpec {
        queue: Some(String::new()),
        ..spec("0 0 * * *")
    });
    assert!(e.contains("queue: must not be empty"), "{e}");
}

#[test]
fn the_config_shape_has_defaults_and_refuses_unknown_keys() {
    let spec: ScheduleSpec = serde_json::from_value(serde_json::json!({
        "name": "digest", "cron": "0 7 * * MON", "kind": "send_digest",
    }))
    .unwrap();
    assert_eq!(
        (&spec.payload, &spec.queue, &spec.timezone, spec.catch_up),
        (&Value::Null, &None, &None, false)
    );
    let err = serde_json::from_value::<ScheduleSpec>(serde_json::json!({
        "name": "a", "cron": "* * * * *", "kind": "k", "cathc_up": true
    }))
    .unwrap_err();
    assert!(err.to_string().contains("cathc_up"), "{err}");
}

const GRACE: Duration = Duration::from_secs(60);

fn minutely(catch_up: bool) -> Schedule {
    Schedule::parse(ScheduleSpec {
        catch_up,
        ..spec("0 * * * * *")
    })
    .unwrap()
}

#[test]
fn a_due_tick_is_enqueued_once_then_the_next_is_awaited() {
    let s = minutely(false);
    let last = Some(ts("2025-06-02T09:00:00Z"));
    assert_eq!(
        s.decide(last, ts("2025-06-02T09:00:30Z"), GRACE),
        Decision::Wait(Some(ts("2025-06-02T09:01:00Z")))
    );
    assert_eq!(
        s.decide(last, ts("2025-06-02T09:01:00Z"), GRACE),
        Decision::Enqueue(ts("2025-06-02T09:01:00Z"))
    );
    // Late, but within the grace: still on time.
    assert_eq!(
        s.decide(last, ts("2025-06-02T09:01:59Z"), GRACE),
        Decision::Enqueue(ts("2025-06-02T09:01:00Z"))
    );
}

#[test]
fn on_time_ticks_are_each_enqueued_oldest_first() {
    let s = schedule("* * * * * *");
    let last = Some(ts("2025-06-02T09:00:00Z"));
    // A scheduler that woke 3 s late still owes 09:00:01, :02 and :03.
    assert_eq!(
        s.decide(last, ts("2025-06-02T09:00:03.2Z"), GRACE),
        Decision::Enqueue(ts("2025-06-02T09:00:01Z"))
    );
}

#[test]
fn missed_ticks_are_skipped_by_default() {
    let s = minutely(false);
    let last = Some(ts("2025-06-02T09:00:00Z"));
    // Down from 09:00 to 09:10:30: 09:01..09:09 are missed (more than 60 s
    // ago), 09:10 is on time.
    let now = ts("2025-06-02T09:10:30Z");
    assert_eq!(
        s.decide(last, now, GRACE),
        Decision::Skip(ts("2025-06-02T09:09:00Z"))
    );
    assert_eq!(
        s.decide(Some(ts("2025-06-02T09:09:00Z")), now, GRACE),
        Decision::Enqueue(ts("2025-06-02T09:10:00Z"))
    );
}

#[test]
fn missed_ticks_run_once_with_catch_up() {
    let s = minutely(true);
    let now = ts("2025-06-02T09:10:30Z");
    assert_eq!(
        s.decide(Some(ts("2025-06-02T09:00:00Z")), now, GRACE),
        Decision::Enqueue(ts("2025-06-02T09:09:00Z"))
    );
    // Once recorded, only the on-time tick remains.
    assert_eq!(
        s.decide(Some(ts("2025-06-02T09:09:00Z")), now, GRACE),
        Decision::Enqueue(ts("2025-06-02T09:10:00Z"))
    );
}

#[test]
fn a_new_schedule_fires_only_on_time_ticks() {
    for catch_up in [false, true] {
        let s = minutely(catch_up);
        assert_eq!(
            s.decide(None, ts("2025-06-02T09:00:30Z"), GRACE),
            Decision::Enqueue(ts("2025-06-02T09:00:00Z"))
        );
        // 09:00 is more than the grace ago: not history, just the past.
        assert_eq!(
            s.decide(
                None,
                ts("2025-06-02T09:01:00.5Z"),
                Duration::from_millis(100)
            ),
            Decision::Wait(Some(ts("2025-06-02T09:02:00Z")))
        );
    }
}

#[test]
fn a_new_schedule_starts_with_its_latest_tick_not_a_backlog() {
    let s = schedule("* * * * * *");
    assert_eq!(
        s.decide(None, ts("2025-06-02T09:00:03.2Z"), GRACE),
        Decision::Enqueue(ts("2025-06-02T09:00:03Z"))
    );
}

#[test]
fn an_expression_that_never_fires_again_waits_forever() {
    // February 30th does not exist.
    let s = schedule("0 0 30 2 *");
    assert_eq!(
        s.decide(None, ts("2025-06-02T09:00:00Z"), GRACE),
        Decision::Wait(None)
    );
}

#[test]
fn jobs_carry_the_schedule_tag_payload_and_queue() {
    let policy = KindPolicy {
        queue: "maintenance".into(),
        max_attempts: 3,
        ..KindPolicy::default()
    };
    let s = schedule("0 0 * * *");
    let tick = ts("2025-06-02T00:00:00Z");
    let job = s.job(&policy, tick).unwrap();
    assert_eq!(
        (job.kind.as_str(), job.queue.as_str(), job.max_attempts),
        ("cleanup", "maintenance", 3)
    );
    assert_eq!(job.tags, ["schedule:nightly"]);
    assert_eq!(job.run_at, Some(tick));
    let s = Schedule::parse(ScheduleSpec {
        queue: Some("low".into()),
        payload: serde_json::json!({"days": 30}),
        ..spec("0 0 * * *")
    })
    .unwrap();
    let job = s.job(&policy, tick).unwrap();
    assert_eq!(
        (job.queue.as_str(), &job.payload),
        ("low", &serde_json::json!({"days": 30}))
    );
    let view = s.view(&policy, ts("2025-06-02T09:00:00Z"), None);
    assert_eq!(view.queue, "low");
    assert_eq!(view.next_run, Some(ts("2025-06-03T00:00:00Z")));
}
