//! A node claims no more jobs of a pool kind than it has processes for, so
//! a crash costs an attempt only to the jobs that had really started: with
//! 2 processes and 6 long jobs, 2 run, 4 stay `available` for any node, and
//! after kill -9 and restart only the 2 are rescued with "lease expired".

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

/// A pool worker that sleeps for the job's `sleep` seconds, then answers.
const SLEEPER: &str = r#"
import json, sys, time
print(json.dumps({"type": "ready"}), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    time.sleep(job["payload"]["sleep"])
    print(json.dumps({"type": "result", "id": job["id"]}), flush=True)
"#;

fn config() -> String {
    let script = serde_json::to_string(SLEEPER).unwrap();
    format!(
        r#"
[worker]
lease = "2s"
heartbeat = "500ms"

[queues.default]
concurrency = 16

[kinds.slow]
pool = {{ command = ["python3", "-c", {script}], processes = 2 }}
"#
    )
}

#[test]
fn a_crash_costs_an_attempt_only_to_the_jobs_that_started() {
    let config = config();
    let mut server = Server::start(&config);
    let ids: Vec<i64> = (0..6)
        .map(|_| {
            let (status, body) = post(
                &server.url("/v1/jobs"),
                &json!({"kind": "slow", "payload": {"sleep": 30}}),
            );
            assert_eq!(status, 201, "{body}");
            body["id"].as_i64().unwrap()
        })
        .collect();
    eventually(Duration::from_secs(30), "two jobs running", || {
        (kind_count(&server, "slow", "running") == 2).then_some(())
    });
    // Time for an over-eager claim to show.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(kind_count(&server, "slow", "running"), 2);
    assert_eq!(kind_count(&server, "slow", "available"), 4);

    server.kill9();
    let dir = server.dir.clone();
    let _keep = server;
    let restarted = Server::start_in(&dir, &config);
    // The lease (2 s) runs out and the restarted node rescues the two.
    let rescued = eventually(
        Duration::from_secs(30),
        "the two started jobs rescued",
        || {
            let rescued: Vec<i64> = ids
                .iter()
                .copied()
                .filter(|&id| {
                    job(&restarted, id)["errors"]
                        .as_array()
                        .is_some_and(|errors| !errors.is_empty())
                })
                .collect();
            (rescued.len() >= 2).then_some(rescued)
        },
    );
    assert_eq!(rescued.len(), 2, "only the started jobs: {rescued:?}");
    for &id in &ids {
        let job = job(&restarted, id);
        let errors = job["errors"].as_array().unwrap();
        // Refunds (hand-backs at shutdown) give the attempt back and leave
        // max_attempts as enqueued.
        assert_eq!(job["max_attempts"], 25, "{job}");
        let used = job["attempt"].as_i64().unwrap();
        if rescued.contains(&id) {
            assert!(
                errors[0]["error"]
                    .as_str()
                    .unwrap()
                    .contains("lease expired"),
                "{job}"
            );
        } else {
            assert!(errors.is_empty(), "never started, never rescued: {job}");
            assert!(used <= 1, "at most the attempt running now: {job}");
        }
    }
}
