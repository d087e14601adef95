//! `GET /v1/schedules` over HTTP: each configured schedule with its next
//! run (in its time zone) and the last tick any node recorded.

mod common;

use common::{Server, catalog, config};
use errand_core::Store;
use errand_core::schedule::ScheduleSpec;
use jiff::Timestamp;
use std::sync::Arc;

fn schedule(name: &str, cron: &str, timezone: Option<&str>) -> ScheduleSpec {
    ScheduleSpec {
        name: name.into(),
        cron: cron.into(),
        kind: "send_email".into(),
        payload: serde_json::Value::Null,
        queue: None,
        timezone: timezone.map(str::to_string),
        catch_up: false,
    }
}

#[tokio::test]
async fn schedules_are_listed_with_next_run_and_last_tick() {
    let mut cfg = config();
    cfg.catalog = Arc::new(catalog(
        &[],
        vec![
            schedule("nightly", "30 2 * * *", Some("Europe/Berlin")),
            schedule("feb30", "0 0 30 2 *", None),
        ],
    ));
    let server = Server::with(cfg).await;
    let tick: Timestamp = "2025-06-02T00:30:00Z".parse().unwrap();
    server
        .store
        .record_tick("nightly", tick, None)
        .await
        .unwrap();

    let before = Timestamp::now();
    let listed = server.client.schedules().await.unwrap();
    assert_eq!(listed.len(), 2);
    let nightly = &listed[0];
    assert_eq!(
        (
            nightly.name.as_str(),
            nightly.cron.as_str(),
            nightly.timezone.as_str()
        ),
        ("nightly", "30 2 * * *", "Europe/Berlin")
    );
    // The queue is the kind's, as no queue is set on the schedule.
    assert_eq!(
        (nightly.kind.as_str(), nightly.queue.as_str()),
        ("send_email", "mail")
    );
    assert_eq!(nightly.last_tick, Some(tick));
    let next = nightly.next_run.expect("a daily schedule has a next run");
    let local = next.to_zoned(jiff::tz::TimeZone::get("Europe/Berlin").unwrap());
    assert_eq!((local.hour(), local.minute(), local.second()), (2, 30, 0));
    assert!(next > before && next.duration_since(before).as_secs() <= 24 * 3600);
    // February 30th never comes; nothing recorded yet.
    assert_eq!((listed[1].next_run, listed[1].last_tick), (None, None));

    let raw = server.get("/v1/schedules").await;
    assert_eq!(raw.status, 200);
    assert_eq!(
        raw.body["schedules"][0]["last_tick"],
        "2025-06-02T00:30:00Z"
    );
    server.stop().await;
}
