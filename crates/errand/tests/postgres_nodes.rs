//! Many nodes on one PostgreSQL database, with the real binary: one
//! `errand serve` and two `errand work` nodes run 30,000 jobs exactly once
//! between them, and when one node is killed with SIGKILL mid-run (the one
//! holding the maintenance lease) the others take over its maintenance and
//! its running jobs.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// The configuration of node `name`: its jobs append a line made by
/// `script` (a shell fragment; `$NODE` is the node's name) to `log`.
fn node_config(name: &str, worker: &str, concurrency: usize, log: &Path, script: &str) -> String {
    format!(
        r#"
[worker]
name = "{name}"
{worker}
[queues.default]
concurrency = {concurrency}
[kinds.count]
command = ["sh", "-c", "{{ {script}; }} >> {log}"]
env = {{ NODE = "{name}" }}
"#,
        log = log.display()
    )
}

/// `ran.log` as (job id, the rest of the line) pairs, in the order written.
fn ran(log: &Path) -> Vec<(i64, String)> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| {
            let (id, rest) = l.split_once(' ').unwrap_or((l, ""));
            (id.parse().unwrap(), rest.to_string())
        })
        .collect()
}

#[test]
fn three_nodes_run_thirty_thousand_jobs_exactly_once() {
    let (_pg, url) = pg::fresh();
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("ran.log");
    let script = r#"echo \"$ERRAND_JOB_ID $NODE\""#;
    let config = |name| node_config(name, "", 16, &log, script);
    let server = pg::serve(tmp.path(), &url, "s", &config("s"));
    let _a = pg::work(tmp.path(), &url, "a", &config("a"));
    let _b = pg::work(tmp.path(), &url, "b", &config("b"));
    let nodes = eventually(Duration::from_secs(30), "three live nodes", || {
        let (_, body) = get(&server.url("/v1/nodes"));
        let names: BTreeSet<String> = body["nodes"]
            .as_array()?
            .iter()
            .filter_map(|n| Some(n["name"].as_str()?.to_string()))
            .collect();
        (names.len() == 3).then_some(names)
    });
    assert_eq!(nodes, BTreeSet::from(["a", "b", "s"].map(String::from)));

    let ids: BTreeSet<i64> = enqueue_batches(&server, "count", 30_000)
        .into_iter()
        .collect();
    assert_eq!(ids.len(), 30_000);
    wait_completed(&server, "count", 30_000, Duration::from_secs(240));

    let ran = ran(&log);
    let mut by_node = BTreeMap::<String, usize>::new();
    for (_, node) in &ran {
        *by_node.entry(node.clone()).or_default() += 1;
    }
    let unique: BTreeSet<i64> = ran.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ran.len(),
        30_000,
        "some job ran twice; by node: {by_node:?}"
    );
    assert_eq!(unique, ids);
    assert_eq!(
        by_node.len(),
        3,
        "every node ran some of the jobs: {by_node:?}"
    );
    assert_eq!(pg::unclean_jobs(&url), Vec::<String>::new());
}

#[test]
fn kill9_of_the_maintenance_leader_moves_maintenance_and_its_jobs_to_the_others() {
    let (_pg, url) = pg::fresh();
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("ran.log");
    // Short leases (with room for a stall on a loaded box) keep the test
    // quick; each job takes a moment so the killed node is holding some.
    let worker = "lease = \"5s\"\nheartbeat = \"1s\"";
    let script = r#"echo \"$ERRAND_JOB_ID $ERRAND_ATTEMPT $NODE\"; sleep 0.3"#;
    let config = |name| node_config(name, worker, 8, &log, script);
    let leader = || pg::sql(&url, "SELECT node FROM leaders WHERE role = 'maintenance'");

    // The first node up takes the maintenance lease.
    let mut victim = pg::work(tmp.path(), &url, "a", &config("a"));
    eventually(
        Duration::from_secs(30),
        "node a to lead maintenance",
        || (leader() == "a").then_some(()),
    );
    let server = pg::serve(tmp.path(), &url, "s", &config("s"));
    let _b = pg::work(tmp.path(), &url, "b", &config("b"));

    let ids = enqueue_batches(&server, "count", 600);
    let held_by_a = "SELECT id FROM jobs WHERE state = 'running' AND worker = 'a' ORDER BY id";
    eventually(Duration::from_secs(30), "node a to run jobs", || {
        (pg::numbers(&url, held_by_a).len() >= 4).then_some(())
    });
    victim.kill9();
    // Nothing of node a's can change them now: these are the jobs it held.
    let held = pg::numbers(&url, held_by_a);
    assert!(!held.is_empty());

    let new_leader = eventually(
        Duration::from_secs(30),
        "another maintenance leader",
        || {
            let l = leader();
            (l != "a").then_some(l)
        },
    );
    assert!(["s", "b"].contains(&new_leader.as_str()), "{new_leader}");
    wait_completed(&server, "count", ids.len() as u64, Duration::from_secs(90));

    for id in &held {
        let j = job(&server, *id);
        assert_eq!(j["state"], "completed", "{j}");
        assert_eq!(j["attempt"], 2, "job {id} held by the killed node: {j}");
        let error = j["errors"][0]["error"].as_str().unwrap_or_default();
        assert!(error.contains("lease expired"), "{j}");
    }
    // Only the killed node's jobs were run again; each by a surviving node.
    let retried = pg::numbers(&url, "SELECT id FROM jobs WHERE attempt <> 1 ORDER BY id");
    assert_eq!(retried, held);
    let reruns: BTreeMap<i64, String> = ran(&log)
        .into_iter()
        .filter_map(|(id, rest)| Some((id, rest.strip_prefix("2 ")?.to_string())))
        .collect();
    assert_eq!(reruns.keys().copied().collect::<Vec<_>>(), held);
    assert!(reruns.values().all(|node| node != "a"), "{reruns:?}");
}
