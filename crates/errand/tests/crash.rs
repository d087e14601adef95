//! Crash safety, done for real: kill -9 the server in the middle of
//! concurrent and of sequential enqueues and of running jobs, kill -9 a
//! job's process tree, SIGTERM a busy server, and push 20,000 jobs through
//! 64 concurrent workers.

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn kill9_during_concurrent_enqueues_loses_no_acknowledged_job() {
    let config = "[worker]\nenabled = false\n[kinds.noop]\ncommand = [\"true\"]\n";
    let mut server = Server::start(config);
    let acked = Arc::new(Mutex::new(Vec::<i64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let url = server.url("/v1/jobs");
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let (acked, stop, url) = (acked.clone(), stop.clone(), url.clone());
            std::thread::spawn(move || {
                let client = http();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let resp = client
                        .post(&url)
                        .json(&json!({"kind": "noop", "payload": {"t": t, "n": n}}))
                        .send();
                    match resp {
                        Ok(r) if r.status() == 201 => {
                            let body: Value = r.json().unwrap();
                            acked.lock().unwrap().push(body["id"].as_i64().unwrap());
                        }
                        // The server died mid-request: not acknowledged.
                        _ => break,
                    }
                }
            })
        })
        .collect();
    eventually(Duration::from_secs(60), "500 acknowledged enqueues", || {
        (acked.lock().unwrap().len() >= 500).then_some(())
    });
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let dir = server.dir.clone();
    let _keep = server; // keeps the temp dir alive
    let restarted = Server::start_in(&dir, config);
    let total: u64 = stats(&restarted)["total"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(
        total >= acked.len() as u64,
        "{total} jobs stored, {} acknowledged",
        acked.len()
    );
    for id in &acked {
        let (status, body) = get(&restarted.url(&format!("/v1/jobs/{id}")));
        assert_eq!(status, 200, "acknowledged job {id} lost: {body}");
    }
}

/// The sequential-enqueue benchmark's pattern (bench/peers.sh: one client,
/// one keep-alive connection, one `POST /v1/jobs` at a time, the shipped
/// `synchronous = full`) killed mid-run: every job answered 201 is there
/// after the restart with its own payload, and at most the one request in
/// flight at the kill was added besides. Issue 15 asks for it: a faster
/// single enqueue must still be committed before it is acknowledged.
#[test]
fn kill9_during_sequential_enqueues_loses_no_acknowledged_job() {
    let config = "[worker]\nenabled = false\n[kinds.noop]\ncommand = [\"true\"]\n";
    let mut server = Server::start(config);
    let url = server.url("/v1/jobs");
    // (id, seq) of every acknowledged enqueue, in the order answered.
    let acked = Arc::new(Mutex::new(Vec::<(i64, u64)>::new()));
    let client = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            let client = http();
            for seq in 0u64.. {
                let resp = client
                    .post(&url)
                    .json(&json!({"kind": "noop", "payload": {"seq": seq}}))
                    .send();
                // A 201 whose body the kill cut short is not an acknowledgement.
                let body = match resp {
                    Ok(r) if r.status() == 201 => r.json::<Value>().ok(),
                    _ => None,
                };
                let Some(body) = body else { return seq };
                let id = body["id"].as_i64().expect("an enqueued job's id");
                acked.lock().unwrap().push((id, seq));
            }
            unreachable!("the client stops at the kill")
        })
    };
    eventually(Duration::from_secs(60), "300 acknowledged enqueues", || {
        (acked.lock().unwrap().len() >= 300).then_some(())
    });
    server.kill9();
    let in_flight = client.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert_eq!(
        in_flight,
        acked.len() as u64,
        "one client, one request at a time: the unanswered one follows the answered ones"
    );
    assert!(
        acked.windows(2).all(|w| w[0].0 < w[1].0),
        "ids grow with each sequential enqueue: {acked:?}"
    );
    let dir = server.dir.clone();
    let _keep = server; // keeps the temp dir alive
    let restarted = Server::start_in(&dir, config);
    for (id, seq) in &acked {
        let (status, body) = get(&restarted.url(&format!("/v1/jobs/{id}")));
        assert_eq!(
            status, 200,
            "acknowledged job {id} (seq {seq}) lost: {body}"
        );
        assert_eq!(
            body["payload"]["seq"], *seq,
            "job {id} stored another payload"
        );
    }
    let total: u64 = stats(&restarted)["total"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let n = acked.len() as u64;
    assert!(
        total == n || total == n + 1,
        "{total} jobs stored after {n} acknowledged enqueues and one in flight"
    );
}

#[test]
fn kill9_of_the_server_mid_job_reruns_it_after_the_lease_with_default_settings() {
    let config = r#"
[kinds.slow]
command = ["sh", "-c", "if [ \"$ERRAND_ATTEMPT\" = 1 ]; then echo $$ > started; sleep 3; fi; echo done"]
"#;
    let mut server = Server::start(config);
    let (status, body) = post(&server.url("/v1/jobs"), &json!({"kind": "slow"}));
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    let marker = server.dir.join("started");
    eventually(
        Duration::from_secs(30),
        "the first attempt to start",
        || marker.exists().then_some(()),
    );
    server.kill9();
    let dir = server.dir.clone();
    let _keep = server;
    let restarted = Server::start_in(&dir, config);
    let back = Instant::now();
    let job = wait_state(&restarted, id, "completed", Duration::from_secs(30));
    assert!(
        back.elapsed() < Duration::from_secs(30),
        "rescued after {:?}",
        back.elapsed()
    );
    assert_eq!(job["attempt"], 2, "{job}");
    assert_eq!(job["result"], "done");
    assert!(
        job["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("lease expired"),
        "{job}"
    );
}

#[test]
fn kill9_of_a_jobs_process_tree_retries_the_job() {
    let config = r#"
[kinds.victim]
command = ["sh", "-c", "echo $$ > pid.$ERRAND_ATTEMPT; if [ \"$ERRAND_ATTEMPT\" = 1 ]; then sleep 1000 & wait; fi; echo survived"]
backoff = { base = "100ms", max = "1s" }
"#;
    let server = Server::start(config);
    let (_, body) = post(&server.url("/v1/jobs"), &json!({"kind": "victim"}));
    let id = body["id"].as_i64().unwrap();
    let pid_file = server.dir.join("pid.1");
    let pgid: i32 = eventually(Duration::from_secs(30), "the job's process", || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    });
    // The whole group: the shell and its sleeping child.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let job = wait_state(&server, id, "completed", Duration::from_secs(30));
    assert_eq!(job["attempt"], 2, "{job}");
    assert_eq!(job["result"], "survived");
    let error = job["errors"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("signal") || error.contains("SIGKILL"),
        "{error}"
    );
}

#[test]
fn sigterm_lets_running_jobs_finish_starts_nothing_new_and_exits_zero() {
    let config = r#"
[queues.default]
concurrency = 2
[kinds.work]
command = ["sh", "-c", "sleep 2; echo finished"]
"#;
    let mut server = Server::start(config);
    let ids: Vec<i64> = (0..5)
        .map(|_| {
            post(&server.url("/v1/jobs"), &json!({"kind": "work"})).1["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    eventually(Duration::from_secs(30), "two running jobs", || {
        (stats(&server)["total"]["running"] == 2).then_some(())
    });
    server.signal("TERM");
    assert_eq!(
        server.wait_exit(Duration::from_secs(40)),
        0,
        "log:\n{}",
        server.log_text()
    );

    let dir = server.dir.clone();
    let _keep = server;
    let inspect = Server::start_in(&dir, &format!("{config}\n[worker]\nenabled = false\n"));
    let states: Vec<(String, u64)> = ids
        .iter()
        .map(|id| {
            let j = job(&inspect, *id);
            (
                j["state"].as_str().unwrap().to_string(),
                j["attempt"].as_u64().unwrap(),
            )
        })
        .collect();
    let completed = states.iter().filter(|(s, _)| s == "completed").count();
    let untouched = states
        .iter()
        .filter(|(s, a)| s == "available" && *a == 0)
        .count();
    assert_eq!((completed, untouched), (2, 3), "{states:?}");
}

#[test]
fn twenty_thousand_jobs_through_64_workers_each_run_exactly_once() {
    let config = r#"
[queues.default]
concurrency = 64
[kinds.count]
command = ["sh", "-c", "echo $ERRAND_JOB_ID >> ran.log"]
"#;
    let server = Server::start(config);
    let mut ids = BTreeSet::new();
    for chunk in 0..20 {
        let jobs: Vec<Value> = (0..1000)
            .map(|i| json!({"kind": "count", "payload": {"n": chunk * 1000 + i}}))
            .collect();
        let (status, body) = post(&server.url("/v1/jobs/batch"), &json!({ "jobs": jobs }));
        assert_eq!(status, 201, "{body}");
        ids.extend(
            body["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_i64().unwrap()),
        );
    }
    assert_eq!(ids.len(), 20_000);
    eventually(Duration::from_secs(600), "20,000 completed jobs", || {
        (stats(&server)["kinds"]["count"]["completed"] == 20_000).then_some(())
    });
    let log = std::fs::read_to_string(server.dir.join("ran.log")).unwrap();
    let ran: Vec<i64> = log.lines().map(|l| l.trim().parse().unwrap()).collect();
    let unique: BTreeSet<i64> = ran.iter().copied().collect();
    assert_eq!(ran.len(), 20_000, "some job ran twice");
    assert_eq!(unique, ids);
}
