//! The remote worker protocol (docs/worker-protocol.md) over loopback
//! against the real `errand serve`, on an SQLite file and on PostgreSQL:
//! claim/heartbeat/finish, fencing after a lost lease, the long poll woken
//! by an enqueue (on another node for PostgreSQL), auth, bad input, paused
//! queues, kind limits across local and remote workers, breakers and drain.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Remote kinds with short leases, so lost leases are rescued quickly.
const CONFIG: &str = r#"
[server]
auth = "required"

[worker]
lease = "2s"
heartbeat = "500ms"

[worker.breaker]
threshold = 3
base = "1s"
max = "2s"

[kinds.resize]
remote = true
timeout = "1m"

[kinds.other]
remote = true
queue = "other"

[kinds.limited]
remote = true
queue = "lim"
max_running = 2

[kinds.local]
command = ["cat"]
"#;

/// The tokens a test uses.
struct Tokens {
    work: String,
    resize_only: String,
    admin: String,
    enqueue: String,
}

fn tokens(server: &Server) -> Tokens {
    Tokens {
        work: server.create_token("workers", &["work"]),
        resize_only: server.create_token("resizers", &["work:resize"]),
        admin: server.create_token("ops", &["admin"]),
        enqueue: server.create_token("app", &["enqueue"]),
    }
}

/// POSTs `body` with `token`; answers status and body.
fn call(server: &Server, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let resp = http()
        .post(server.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// GETs `path` with `token`.
fn read(server: &Server, token: &str, path: &str) -> (u16, Value) {
    let resp = http()
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn worker(id: &str) -> Value {
    json!({"id": id, "host": "web1", "pid": 4242, "library": "errand-test", "version": "1.0"})
}

fn enqueue(server: &Server, t: &Tokens, kind: &str, payload: Value) -> i64 {
    let (status, body) = call(
        server,
        &t.enqueue,
        "/v1/jobs",
        &json!({"kind": kind, "payload": payload}),
    );
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

fn claim(server: &Server, token: &str, id: &str, kinds: &[&str], max: u32, wait: &str) -> Value {
    let (status, body) = call(
        server,
        token,
        "/v1/worker/claim",
        &json!({"worker": worker(id), "kinds": kinds, "max_jobs": max, "wait": wait}),
    );
    assert_eq!(status, 200, "{body}");
    body
}

fn finish(server: &Server, token: &str, id: &str, jobs: Value) -> (u16, Value) {
    call(
        server,
        token,
        "/v1/worker/finish",
        &json!({"worker": {"id": id}, "jobs": jobs}),
    )
}

fn heartbeat(server: &Server, token: &str, id: &str, jobs: Value) -> (u16, Value) {
    call(
        server,
        token,
        "/v1/worker/heartbeat",
        &json!({"worker": worker(id), "jobs": jobs}),
    )
}

fn job_of(server: &Server, t: &Tokens, id: i64) -> Value {
    let (status, body) = read(server, &t.admin, &format!("/v1/jobs/{id}"));
    assert_eq!(status, 200, "{body}");
    body
}

/// Claim, heartbeat with progress, finish; the worker in the node list;
/// a repeated finish and a heartbeat of an ended job refused (409).
fn round_trip(server: &Server, t: &Tokens) {
    let id = enqueue(server, t, "resize", json!({"image": "cat.jpg"}));
    let answer = claim(server, &t.work, "w-round", &["resize"], 5, "0");
    assert_eq!(answer["lease_ms"], 2000, "{answer}");
    assert_eq!(answer["heartbeat_ms"], 500, "{answer}");
    assert_eq!(answer["stop"], false);
    let jobs = answer["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{answer}");
    let job = &jobs[0];
    assert_eq!(job["id"], id);
    assert_eq!(job["payload"], json!({"image": "cat.jpg"}));
    assert_eq!(job["attempt"], 1);
    assert_eq!(job["timeout_ms"], 60_000);
    let fence = job["fence"].as_i64().unwrap();
    assert!(fence >= 1);

    let (status, beat) = heartbeat(
        server,
        &t.work,
        "w-round",
        json!([{"id": id, "fence": fence, "progress": {"done": 3}}]),
    );
    assert_eq!(status, 200, "{beat}");
    assert_eq!(beat["lost"], json!([]));
    let running = job_of(server, t, id);
    assert_eq!(running["state"], "running");
    assert_eq!(running["worker"], "w-round");
    assert_eq!(running["progress"], json!({"done": 3}));

    let (status, nodes) = read(server, &t.admin, "/v1/nodes");
    assert_eq!(status, 200);
    let me = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "w-round")
        .unwrap_or_else(|| panic!("remote worker not listed: {nodes}"))
        .clone();
    assert_eq!(me["remote"]["library"], "errand-test", "{me}");
    assert_eq!(me["remote"]["host"], "web1");
    assert_eq!(me["running"], 1, "{me}");
    // `errand nodes` and the dashboard's Nodes page show it with its library.
    let out = std::process::Command::new(errand_bin())
        .args(["nodes"])
        .env("ERRAND_SERVER", &server.base)
        .env("ERRAND_TOKEN", &t.admin)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = table
        .lines()
        .find(|l| l.starts_with("w-round"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(line.contains("remote errand-test 1.0 web1:4242"), "{line}");
    let page = http()
        .get(server.url("/nodes"))
        .bearer_auth(&t.admin)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains("remote: errand-test 1.0 web1 pid 4242"),
        "{page}"
    );
    assert!(page.contains("/v1/nodes/w-round/drain"), "a drain button");

    let (status, done) = finish(
        server,
        &t.work,
        "w-round",
        json!([{"id": id, "fence": fence, "outcome": "success", "result": {"url": "small.jpg"}}]),
    );
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["results"][0]["applied"], true);
    let ended = job_of(server, t, id);
    assert_eq!(ended["state"], "completed");
    assert_eq!(ended["result"], json!({"url": "small.jpg"}));

    let (status, again) = finish(
        server,
        &t.work,
        "w-round",
        json!([{"id": id, "fence": fence, "outcome": "retry", "error": "late"}]),
    );
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["results"][0]["reason"], "finished", "{again}");
    assert_eq!(again["results"][0]["state"], "completed");
    let (status, beat) = heartbeat(
        server,
        &t.work,
        "w-round",
        json!([{"id": id, "fence": fence}]),
    );
    assert_eq!(status, 409, "{beat}");
    assert_eq!(beat["lost"][0]["reason"], "finished", "{beat}");
    assert_eq!(job_of(server, t, id)["result"], json!({"url": "small.jpg"}));
}

/// A worker that stops heartbeating loses its job after the lease; the job
/// runs again elsewhere; the late finish is refused and the result is the
/// re-runner's.
fn lease_expiry_fences_the_late_finish(server: &Server, t: &Tokens) {
    let id = enqueue(server, t, "resize", json!({"n": 2}));
    let a = claim(server, &t.work, "w-dies", &["resize"], 1, "0");
    let fence_a = a["jobs"][0]["fence"].as_i64().unwrap();
    assert_eq!(a["jobs"][0]["id"], id);
    // w-dies never heartbeats: within lease (2 s) + a rescue sweep the job
    // is back and another worker takes it.
    let started = Instant::now();
    let b = eventually(
        Duration::from_secs(15),
        "the job to be rescued and re-claimed",
        || {
            let b = claim(server, &t.work, "w-reruns", &["resize"], 1, "1s");
            (!b["jobs"].as_array().unwrap().is_empty()).then_some(b)
        },
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let fence_b = b["jobs"][0]["fence"].as_i64().unwrap();
    assert_eq!(b["jobs"][0]["id"], id);
    assert!(fence_b > fence_a);
    assert_eq!(b["jobs"][0]["attempt"], 2, "the rescue used the attempt");

    let (status, late) = heartbeat(
        server,
        &t.work,
        "w-dies",
        json!([{"id": id, "fence": fence_a}]),
    );
    assert_eq!(status, 409, "{late}");
    assert_eq!(late["lost"][0]["reason"], "reclaimed", "{late}");
    let (status, late) = finish(
        server,
        &t.work,
        "w-dies",
        json!([{"id": id, "fence": fence_a, "outcome": "success", "result": "from the dead"}]),
    );
    assert_eq!(status, 409, "{late}");
    assert_eq!(late["results"][0]["applied"], false);
    assert_eq!(late["results"][0]["reason"], "reclaimed");
    let running = job_of(server, t, id);
    assert_eq!(running["state"], "running", "nothing changed");
    assert_eq!(running["worker"], "w-reruns");

    let (status, done) = finish(
        server,
        &t.work,
        "w-reruns",
        json!([{"id": id, "fence": fence_b, "outcome": "success", "result": "re-run"}]),
    );
    assert_eq!(status, 200, "{done}");
    let ended = job_of(server, t, id);
    assert_eq!(ended["result"], "re-run");
    assert_eq!(ended["state"], "completed");
}

/// Tokens: no `work` is 403 on every worker route, `work:resize` cannot
/// claim `other`, and `work` opens nothing else.
fn auth(server: &Server, t: &Tokens) {
    let claim_body = json!({"worker": worker("w-auth"), "kinds": ["resize"]});
    let beat_body = json!({"worker": worker("w-auth"), "jobs": []});
    let finish_body =
        json!({"worker": worker("w-auth"), "jobs": [{"id": 1, "fence": 1, "outcome": "handback"}]});
    for (path, body) in [
        ("/v1/worker/claim", &claim_body),
        ("/v1/worker/heartbeat", &beat_body),
        ("/v1/worker/finish", &finish_body),
    ] {
        for token in [&t.admin, &t.enqueue] {
            let (status, problem) = call(server, token, path, body);
            assert_eq!(status, 403, "{path}: {problem}");
            assert_eq!(problem["required_scope"], "work", "{problem}");
        }
        let resp = http().post(server.url(path)).json(body).send().unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path} without a token");
    }
    let (status, problem) = call(
        server,
        &t.resize_only,
        "/v1/worker/claim",
        &json!({"worker": worker("w-auth"), "kinds": ["resize", "other"]}),
    );
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["field"], "kinds[1]", "{problem}");
    let ok = claim(server, &t.resize_only, "w-auth", &["resize"], 1, "0");
    assert_eq!(ok["jobs"], json!([]));
    let (status, _) = read(server, &t.work, "/v1/jobs");
    assert_eq!(status, 403, "a work token reads no jobs");
    let (status, _) = call(server, &t.work, "/v1/jobs", &json!({"kind": "resize"}));
    assert_eq!(status, 403, "a work token enqueues nothing");
}

/// Bad input: a clear 4xx/409 problem naming the field, nothing changed.
fn bad_input(server: &Server, t: &Tokens) {
    let id = enqueue(server, t, "resize", json!({"n": 3}));
    let held = claim(server, &t.work, "w-bad", &["resize"], 1, "0");
    let fence = held["jobs"][0]["fence"].as_i64().unwrap();
    let before = job_of(server, t, id);

    let refused = |body: Value, path: &str, status: u16, field: &str| {
        let (got, problem) = call(server, &t.work, path, &body);
        assert_eq!(got, status, "{body} -> {problem}");
        if !field.is_empty() {
            assert_eq!(problem["field"], field, "{problem}");
        }
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()));
        problem
    };
    let claim_with = |extra: Value| {
        let mut body = json!({"worker": worker("w-bad"), "kinds": ["resize"]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    refused(
        claim_with(json!({"max_jobs": 0})),
        "/v1/worker/claim",
        422,
        "max_jobs",
    );
    refused(
        claim_with(json!({"max_jobs": 100000})),
        "/v1/worker/claim",
        422,
        "max_jobs",
    );
    refused(
        claim_with(json!({"wait": "5m"})),
        "/v1/worker/claim",
        422,
        "wait",
    );
    refused(
        claim_with(json!({"kinds": []})),
        "/v1/worker/claim",
        422,
        "kinds",
    );
    refused(claim_with(json!({"sauce": 1})), "/v1/worker/claim", 422, "");
    let unknown = refused(
        claim_with(json!({"kinds": ["nope"]})),
        "/v1/worker/claim",
        422,
        "kinds[0]",
    );
    assert_eq!(
        unknown["known_kinds"],
        json!(["limited", "other", "resize"]),
        "{unknown}"
    );
    refused(
        claim_with(json!({"kinds": ["local"]})),
        "/v1/worker/claim",
        422,
        "kinds[0]",
    );
    refused(
        json!({"worker": {"id": "has space"}, "kinds": ["resize"]}),
        "/v1/worker/claim",
        422,
        "worker.id",
    );
    // The name of one of errand's own nodes is not a worker's to take.
    let (_, nodes) = read(server, &t.admin, "/v1/nodes");
    let own = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n.get("remote").is_none())
        .unwrap_or_else(|| panic!("no errand node listed: {nodes}"));
    refused(
        json!({"worker": {"id": own["name"]}, "kinds": ["resize"]}),
        "/v1/worker/claim",
        422,
        "worker.id",
    );
    let resp = http()
        .post(server.url("/v1/worker/finish"))
        .bearer_auth(&t.work)
        .header("content-type", "application/json")
        .body("{\"worker\": ")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400, "malformed JSON");

    let finish_one = |job: Value| json!({"worker": {"id": "w-bad"}, "jobs": [job]});
    refused(
        finish_one(json!({"id": id, "fence": fence, "outcome": "maybe"})),
        "/v1/worker/finish",
        422,
        "jobs[0].outcome",
    );
    refused(
        finish_one(json!({"id": id, "fence": fence, "outcome": "retry"})),
        "/v1/worker/finish",
        422,
        "jobs[0].error",
    );
    refused(
        finish_one(json!({"id": id, "fence": fence, "outcome": "snooze"})),
        "/v1/worker/finish",
        422,
        "jobs[0].delay",
    );
    let wrong = refused(
        finish_one(json!({"id": id, "fence": fence + 5, "outcome": "success"})),
        "/v1/worker/finish",
        409,
        "",
    );
    assert_eq!(wrong["results"][0]["reason"], "not_held", "{wrong}");
    let other = enqueue(server, t, "other", json!(null));
    let not_held = refused(
        finish_one(json!({"id": other, "fence": 1, "outcome": "success"})),
        "/v1/worker/finish",
        409,
        "",
    );
    assert_eq!(not_held["results"][0]["reason"], "not_held", "{not_held}");
    let unknown = refused(
        json!({"worker": worker("w-bad"), "jobs": [{"id": 99_999_999, "fence": 1}]}),
        "/v1/worker/heartbeat",
        409,
        "",
    );
    assert_eq!(unknown["lost"][0]["reason"], "not_found", "{unknown}");
    refused(
        json!({"worker": worker("w-bad"), "jobs": [{"id": id, "fence": fence}, {"id": id, "fence": fence}]}),
        "/v1/worker/heartbeat",
        422,
        "jobs[1].id",
    );
    refused(
        json!({"worker": worker("w-bad"), "jobs": [{"id": id, "fence": fence, "progress": "x".repeat(5000)}]}),
        "/v1/worker/heartbeat",
        422,
        "jobs[0].progress",
    );
    let after = job_of(server, t, id);
    assert_eq!(after["state"], "running");
    assert_eq!(after["attempt"], before["attempt"]);
    assert_eq!(after["errors"], before["errors"]);
    assert_eq!(after["progress"], Value::Null);
    assert_eq!(job_of(server, t, other)["state"], "available");
    let (status, _) = finish(
        server,
        &t.work,
        "w-bad",
        json!([{"id": id, "fence": fence, "outcome": "permanent", "error": "bad payload"}]),
    );
    assert_eq!(status, 200);
    assert_eq!(job_of(server, t, id)["state"], "failed");
    let leftover = claim(server, &t.work, "w-bad", &["other"], 1, "0");
    let fence = leftover["jobs"][0]["fence"].as_i64().unwrap();
    let (status, _) = finish(
        server,
        &t.work,
        "w-bad",
        json!([{"id": other, "fence": fence, "outcome": "success"}]),
    );
    assert_eq!(status, 200);
}

/// An idle long poll starts a job enqueued meanwhile at once; the wait
/// runs out with no jobs.
fn long_poll(claimer: &Server, enqueuer: &Server, t: &Tokens) {
    let started = Instant::now();
    let empty = claim(claimer, &t.work, "w-idle", &["other"], 1, "0.5");
    assert_eq!(empty["jobs"], json!([]));
    assert!(started.elapsed() >= Duration::from_millis(450));

    let base = claimer.url("");
    let token = t.work.clone();
    let waiter = std::thread::spawn(move || {
        let resp = http()
            .post(format!("{base}/v1/worker/claim"))
            .bearer_auth(&token)
            .json(&json!({"worker": worker("w-idle"), "kinds": ["other"], "wait": "20s"}))
            .send()
            .unwrap();
        let at = Instant::now();
        (resp.json::<Value>().unwrap(), at)
    });
    std::thread::sleep(Duration::from_millis(700));
    let sent = Instant::now();
    let id = enqueue(enqueuer, t, "other", json!({"wake": true}));
    let (answer, answered) = waiter.join().unwrap();
    assert_eq!(answer["jobs"][0]["id"], id, "{answer}");
    let latency = answered.duration_since(sent);
    assert!(
        latency < Duration::from_millis(500),
        "woken after {latency:?}"
    );
    let fence = answer["jobs"][0]["fence"].as_i64().unwrap();
    let (status, _) = finish(
        claimer,
        &t.work,
        "w-idle",
        json!([{"id": id, "fence": fence, "outcome": "success"}]),
    );
    assert_eq!(status, 200);
}

/// A paused queue hands out nothing; resumed, it does.
fn paused_queue(server: &Server, t: &Tokens) {
    let (status, body) = call(server, &t.admin, "/v1/queues/other/pause", &json!({}));
    assert_eq!(status, 200, "{body}");
    let id = enqueue(server, t, "other", json!(null));
    let none = claim(server, &t.work, "w-pause", &["other"], 5, "0.3");
    assert_eq!(none["jobs"], json!([]), "a paused queue gives nothing");
    let (status, _) = call(server, &t.admin, "/v1/queues/other/resume", &json!({}));
    assert_eq!(status, 200);
    let got = claim(server, &t.work, "w-pause", &["other"], 5, "5s");
    assert_eq!(got["jobs"][0]["id"], id, "{got}");
    let fence = got["jobs"][0]["fence"].as_i64().unwrap();
    let (status, _) = finish(
        server,
        &t.work,
        "w-pause",
        json!([{"id": id, "fence": fence, "outcome": "handback"}]),
    );
    assert_eq!(status, 200);
    let back = job_of(server, t, id);
    assert_eq!(back["state"], "available");
    assert_eq!(back["attempt"], 0, "a hand-back uses no attempt");
    let again = claim(server, &t.work, "w-pause", &["other"], 5, "0");
    let job = &again["jobs"][0];
    assert_eq!(job["id"], id, "{again}");
    let (status, _) = finish(
        server,
        &t.work,
        "w-pause",
        json!([{"id": id, "fence": job["fence"], "outcome": "success"}]),
    );
    assert_eq!(status, 200);
}

/// `max_running` holds across workers: two running, a third waits.
fn kind_limit(server: &Server, t: &Tokens) {
    for n in 0..4 {
        enqueue(server, t, "limited", json!(n));
    }
    let first = claim(server, &t.work, "w-lim1", &["limited"], 5, "0");
    let jobs = first["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 2, "{first}");
    let other = claim(server, &t.work, "w-lim2", &["limited"], 5, "0.3");
    assert_eq!(
        other["jobs"],
        json!([]),
        "the limit holds for another worker"
    );
    // A held long poll wakes when a job of the kind ends.
    let base = server.url("");
    let token = t.work.clone();
    let waiter = std::thread::spawn(move || {
        let resp = http()
            .post(format!("{base}/v1/worker/claim"))
            .bearer_auth(&token)
            .json(&json!({"worker": worker("w-lim2"), "kinds": ["limited"], "max_jobs": 5, "wait": "10s"}))
            .send()
            .unwrap();
        resp.json::<Value>().unwrap()
    });
    std::thread::sleep(Duration::from_millis(300));
    let (status, _) = finish(
        server,
        &t.work,
        "w-lim1",
        json!([{"id": jobs[0]["id"], "fence": jobs[0]["fence"], "outcome": "success"}]),
    );
    assert_eq!(status, 200);
    let woken = waiter.join().unwrap();
    assert_eq!(woken["jobs"].as_array().unwrap().len(), 1, "{woken}");
    let mut held = vec![jobs[1].clone(), woken["jobs"][0].clone()];
    // Drain the rest, two at a time at most.
    while !held.is_empty() {
        let ends: Vec<Value> = held
            .iter()
            .map(|j| json!({"id": j["id"], "fence": j["fence"], "outcome": "success"}))
            .collect();
        let (status, _) = finish(server, &t.work, "w-lim1", json!(ends));
        assert_eq!(status, 200);
        let next = claim(server, &t.work, "w-lim1", &["limited"], 5, "0");
        held = next["jobs"].as_array().unwrap().clone();
        assert!(held.len() <= 2, "{next}");
    }
}

/// Deadly outcomes from remote workers open the kind's breaker on the node:
/// no job of it is handed out until the probe is due.
fn breaker(server: &Server, t: &Tokens) {
    let id = enqueue(server, t, "other", json!("db"));
    for _ in 0..3 {
        let got = claim(server, &t.work, "w-deadly", &["other"], 1, "2s");
        assert_eq!(got["jobs"][0]["id"], id, "{got}");
        let fence = got["jobs"][0]["fence"].as_i64().unwrap();
        let (status, _) = finish(
            server,
            &t.work,
            "w-deadly",
            json!([{"id": id, "fence": fence, "outcome": "deadly", "error": "database gone away"}]),
        );
        assert_eq!(status, 200);
    }
    let ended = job_of(server, t, id);
    assert_eq!(ended["state"], "available");
    assert_eq!(ended["attempt"], 0, "deadly outcomes use no attempt");
    let none = claim(server, &t.work, "w-deadly", &["other"], 1, "0");
    assert_eq!(none["jobs"], json!([]), "the breaker is open");
    // The probe comes after the breaker's wait (up to 1 s).
    let probe = claim(server, &t.work, "w-deadly", &["other"], 1, "5s");
    assert_eq!(probe["jobs"][0]["id"], id, "{probe}");
    let fence = probe["jobs"][0]["fence"].as_i64().unwrap();
    let (status, _) = finish(
        server,
        &t.work,
        "w-deadly",
        json!([{"id": id, "fence": fence, "outcome": "success"}]),
    );
    assert_eq!(status, 200);
}

/// A drain request reaches the worker's next claim and heartbeat.
fn drain(server: &Server, t: &Tokens) {
    claim(server, &t.work, "w-drain", &["resize"], 1, "0");
    let out = std::process::Command::new(errand_bin())
        .args(["nodes", "drain", "w-drain"])
        .env("ERRAND_SERVER", &server.base)
        .env("ERRAND_TOKEN", &t.admin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("asked w-drain to drain"));
    let (status, body) = call(server, &t.admin, "/v1/nodes/nobody/drain", &json!({}));
    assert_eq!(status, 404, "{body}");
    let (status, body) = call(server, &t.work, "/v1/nodes/w-drain/drain", &json!({}));
    assert_eq!(status, 403, "{body}");
    eventually(Duration::from_secs(5), "the drain to be seen", || {
        let (status, beat) = heartbeat(server, &t.work, "w-drain", json!([]));
        assert_eq!(status, 200, "{beat}");
        beat["stop"] == true
    });
    enqueue(server, t, "resize", json!("after drain"));
    let answer = claim(server, &t.work, "w-drain", &["resize"], 1, "0");
    assert_eq!(answer["stop"], true);
    assert_eq!(answer["jobs"], json!([]), "a draining worker gets no job");
    // Someone else takes it.
    let other = claim(server, &t.work, "w-other", &["resize"], 1, "0");
    let job = &other["jobs"][0];
    let (status, _) = finish(
        server,
        &t.work,
        "w-other",
        json!([{"id": job["id"], "fence": job["fence"], "outcome": "success"}]),
    );
    assert_eq!(status, 200);
}

#[test]
fn remote_workers_on_sqlite() {
    let server = Server::start(CONFIG);
    let t = tokens(&server);
    round_trip(&server, &t);
    auth(&server, &t);
    bad_input(&server, &t);
    long_poll(&server, &server, &t);
    paused_queue(&server, &t);
    kind_limit(&server, &t);
    breaker(&server, &t);
    drain(&server, &t);
    lease_expiry_fences_the_late_finish(&server, &t);
}

#[test]
fn remote_workers_on_postgres_across_nodes() {
    let (_pg, url) = pg::fresh();
    let tmp = tempfile::tempdir().unwrap();
    // The database in the file too, so `errand tokens create --config` finds it.
    let config = format!("database = {url:?}\n{CONFIG}");
    let a = pg::serve(tmp.path(), &url, "a", &config);
    let b = pg::serve(tmp.path(), &url, "b", &config);
    let t = tokens(&a);
    round_trip(&a, &t);
    // A worker idle on node a is woken by an enqueue on node b.
    long_poll(&a, &b, &t);
    bad_input(&b, &t);
    kind_limit(&a, &t);
    lease_expiry_fences_the_late_finish(&b, &t);
}

/// `max_running` counts local and remote attempts together: node a runs
/// the kind with a command, node b hands it to remote workers.
#[test]
fn kind_limits_hold_across_local_and_remote_workers() {
    let (_pg, url) = pg::fresh();
    let tmp = tempfile::tempdir().unwrap();
    let shared = format!(
        "database = {url:?}\n[server]\nauth = \"required\"\n[worker]\nlease = \"2s\"\nheartbeat = \"500ms\"\n"
    );
    let local = format!("{shared}[kinds.mixed]\ncommand = [\"sleep\", \"3\"]\nmax_running = 2\n");
    let remote = format!("{shared}[kinds.mixed]\nremote = true\nmax_running = 2\n");
    let a = pg::serve(tmp.path(), &url, "local", &local);
    let b = pg::serve(tmp.path(), &url, "remote", &remote);
    let t = tokens(&a);
    for n in 0..6 {
        enqueue(&a, &t, "mixed", json!(n));
    }
    let running = || {
        pg::number(
            &url,
            "SELECT count(*) FROM jobs WHERE kind = 'mixed' AND state = 'running'",
        )
    };
    eventually(Duration::from_secs(10), "node a to run 2 jobs", || {
        running() == 2
    });
    let none = claim(&b, &t.work, "w-mixed", &["mixed"], 5, "0.5");
    assert_eq!(
        none["jobs"],
        json!([]),
        "no room left for remote workers: {none}"
    );
    assert_eq!(running(), 2);
    // Node a dies mid-job: its two jobs are rescued after the lease, and
    // remote workers then get exactly the limit's room.
    let mut a = a;
    a.kill9();
    let got = eventually(
        Duration::from_secs(30),
        "a remote claim after the rescue",
        || {
            let got = claim(&b, &t.work, "w-mixed", &["mixed"], 5, "1s");
            (!got["jobs"].as_array().unwrap().is_empty()).then_some(got)
        },
    );
    let mut n = got["jobs"].as_array().unwrap().len();
    if n < 2 {
        let more = claim(&b, &t.work, "w-mixed2", &["mixed"], 5, "0");
        n += more["jobs"].as_array().unwrap().len();
    }
    assert_eq!(n, 2, "{got}");
    let over = claim(&b, &t.work, "w-mixed3", &["mixed"], 5, "0.3");
    assert_eq!(
        over["jobs"],
        json!([]),
        "never more than max_running: {over}"
    );
    assert_eq!(running(), 2);
}
