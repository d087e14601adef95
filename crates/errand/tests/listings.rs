//! Job listings stay small however large the stored values are: a real
//! `errand serve` holding ~150 jobs with 1 MiB payloads answers 8 concurrent
//! `GET /v1/jobs?limit=1000` without its memory growing past a bound, and
//! the listing marks the payloads it left out while `GET /v1/jobs/{id}` and
//! `errand jobs list` keep working.

mod common;

use common::*;
use serde_json::{Value, json};

const JOBS: usize = 150;
const PAYLOAD_BYTES: usize = 1 << 20;
const CONCURRENT_LISTINGS: usize = 8;
/// The bound stated in README.md ("HTTP API"): the server's peak resident
/// memory while serving the listings.
const MAX_RSS_MIB: u64 = 200;

/// A `/proc/<pid>/status` field in KiB (`VmHWM`: peak resident set).
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    errand_executors::process::procfs::status(pid, field)
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[test]
fn concurrent_listings_of_large_payloads_stay_within_the_memory_bound() {
    let server = Server::start(
        "[server]\nbody_limit = \"2MiB\"\n[worker]\nenabled = false\n\
         [kinds.big]\ncommand = [\"true\"]\n",
    );
    let client = http();
    let filler = "p".repeat(PAYLOAD_BYTES);
    for n in 0..JOBS {
        let resp = client
            .post(server.url("/v1/jobs"))
            .json(&json!({"kind": "big", "payload": {"n": n, "fill": filler}}))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
    }
    let small = post(
        &server.url("/v1/jobs"),
        &json!({"kind": "big", "payload": {"small": true}}),
    );
    assert_eq!(small.0, 201, "{}", small.1);

    let pid = server.child.id();
    let before_mib = proc_status_kib(pid, "VmHWM") / 1024;
    let listings: Vec<_> = (0..CONCURRENT_LISTINGS)
        .map(|_| {
            let url = server.url("/v1/jobs?limit=1000");
            std::thread::spawn(move || {
                let resp = http().get(url).send().unwrap();
                assert_eq!(resp.status().as_u16(), 200);
                let body = resp.bytes().unwrap();
                (body.len(), serde_json::from_slice::<Value>(&body).unwrap())
            })
        })
        .collect();
    let answers: Vec<(usize, Value)> = listings.into_iter().map(|t| t.join().unwrap()).collect();
    let peak_mib = proc_status_kib(pid, "VmHWM") / 1024;
    eprintln!(
        "peak RSS {peak_mib} MiB (before the listings {before_mib} MiB); \
         response {} bytes",
        answers[0].0
    );
    assert!(
        peak_mib < MAX_RSS_MIB,
        "errand serve peaked at {peak_mib} MiB listing {JOBS} jobs of 1 MiB \
         {CONCURRENT_LISTINGS} times at once (bound {MAX_RSS_MIB} MiB)"
    );

    let (size, page) = &answers[0];
    assert!(*size < 1 << 20, "a listing of {JOBS} jobs is {size} bytes");
    let jobs = page["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), JOBS + 1);
    assert_eq!(jobs[0]["payload"], json!({"small": true}));
    assert!(jobs[0].get("omitted").is_none(), "{}", jobs[0]);
    let big = &jobs[1];
    assert_eq!(big["payload"], Value::Null);
    let omitted = big["omitted"]["payload"].as_u64().unwrap();
    assert!(omitted > PAYLOAD_BYTES as u64, "{omitted}");

    // The whole job is one request away; the CLI lists the page.
    let id = big["id"].as_i64().unwrap();
    let full = job(&server, id);
    assert_eq!(
        full["payload"]["fill"].as_str().unwrap().len(),
        PAYLOAD_BYTES
    );
    assert!(full.get("omitted").is_none());
    let out = server.cli(&["jobs", "list", "--limit", "5"]);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains(&format!("\n{id} ")), "{table}");
    assert!(table.contains("more: --cursor"), "{table}");
}
