//! Checks for the node registry and leader leases.

use errand_core::{BreakerPhase, BreakerState, NodeInfo, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn node(name: &str, running: u32) -> NodeInfo {
    NodeInfo {
        name: name.to_string(),
        started_at: jiff::Timestamp::now(),
        last_seen: jiff::Timestamp::UNIX_EPOCH,
        queues: BTreeMap::from([("default".to_string(), 16)]),
        running,
        http: Some("127.0.0.1:7070".to_string()),
        breakers: BTreeMap::new(),
        remote: None,
        draining: false,
    }
}

/// An open breaker of `kind`, as a node reports it.
fn open_breaker(error: &str, consecutive: u32) -> BreakerState {
    let since = jiff::Timestamp::from_second(1_700_000_000).unwrap();
    BreakerState {
        state: BreakerPhase::Open,
        since,
        retry_at: Some(since + jiff::SignedDuration::from_millis(1500)),
        last_error: error.to_string(),
        consecutive,
    }
}

/// Heartbeats upsert a node; silent nodes drop out; removal is immediate.
async fn nodes_register_refresh_and_expire(store: Arc<dyn Store>) {
    store.register_node(&node("a", 1)).await.unwrap();
    store.register_node(&node("b", 0)).await.unwrap();
    let mut a = node("a", 7);
    a.breakers
        .insert("email".into(), open_breaker("connection refused", 3));
    store.register_node(&a).await.unwrap();
    let nodes = store.nodes(Duration::from_secs(60)).await.unwrap();
    let names: Vec<_> = nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(nodes[0].running, 7, "the latest heartbeat wins");
    assert_eq!(nodes[0].queues["default"], 16);
    assert_eq!(nodes[0].breakers, a.breakers, "breakers round-trip");
    assert!(nodes[1].breakers.is_empty());

    let mut half_open = open_breaker("timed out", 4);
    (half_open.state, half_open.retry_at) = (BreakerPhase::HalfOpen, None);
    a.breakers.insert("email".into(), half_open);
    a.breakers
        .insert("report".into(), open_breaker("worker crashed", 5));
    store.register_node(&a).await.unwrap();
    let nodes = store.nodes(Duration::from_secs(60)).await.unwrap();
    assert_eq!(nodes[0].breakers, a.breakers, "the latest breakers win");
    a.breakers.clear();
    store.register_node(&a).await.unwrap();
    let nodes = store.nodes(Duration::from_secs(60)).await.unwrap();
    assert!(nodes[0].breakers.is_empty(), "closed breakers are cleared");
    assert!(
        nodes[0].last_seen > jiff::Timestamp::UNIX_EPOCH,
        "last_seen is set by the store"
    );

    store.remove_node("b").await.unwrap();
    assert_eq!(store.nodes(Duration::from_secs(60)).await.unwrap().len(), 1);

    store.clock().advance(Duration::from_secs(59));
    store.register_node(&node("c", 0)).await.unwrap();
    let alive = store.nodes(Duration::from_secs(60)).await.unwrap();
    assert_eq!(alive.len(), 2, "a node seen within the window stays");
    store.clock().advance(Duration::from_secs(2));
    let alive = store.nodes(Duration::from_secs(60)).await.unwrap();
    let names: Vec<_> = alive.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["c"], "a node silent past the window is gone");
}

/// A remote worker's details round-trip; a drain request is kept across
/// its heartbeats and only a registered node can be asked.
async fn nodes_remote_workers_and_drain(store: Arc<dyn Store>) {
    let mut w = node("web1-42", 2);
    w.remote = Some(errand_core::remote::RemoteWorker {
        host: Some("web1".into()),
        pid: Some(42),
        library: Some("errand-php".into()),
        version: Some("0.1.0".into()),
        kinds: vec!["resize".into()],
        via: Some("node-a".into()),
    });
    store.register_node(&w).await.unwrap();
    store.register_node(&node("plain", 0)).await.unwrap();
    assert!(!store.drain_node("nobody").await.unwrap());
    assert!(store.drain_node("web1-42").await.unwrap());
    store.register_node(&w).await.unwrap();
    let nodes = store.nodes(Duration::from_secs(60)).await.unwrap();
    assert_eq!(nodes[1].name, "web1-42");
    assert_eq!(nodes[1].remote, w.remote, "remote details round-trip");
    assert!(nodes[1].draining, "a heartbeat keeps the drain request");
    assert!(nodes[0].remote.is_none() && !nodes[0].draining);
}

/// One holder per role; renewal by the holder; takeover after expiry or resignation.
async fn leader_lease_has_one_holder(store: Arc<dyn Store>) {
    let ttl = Duration::from_secs(30);
    assert!(store.try_lead("maintenance", "a", ttl).await.unwrap());
    assert!(!store.try_lead("maintenance", "b", ttl).await.unwrap());
    assert!(
        store.try_lead("maintenance", "a", ttl).await.unwrap(),
        "the holder renews"
    );
    assert!(
        store.try_lead("other-role", "b", ttl).await.unwrap(),
        "roles are independent"
    );

    store.clock().advance(ttl - Duration::from_secs(1));
    assert!(
        !store.try_lead("maintenance", "b", ttl).await.unwrap(),
        "held until the lease runs out"
    );
    store.clock().advance(Duration::from_secs(2));
    assert!(
        store.try_lead("maintenance", "b", ttl).await.unwrap(),
        "taken over after expiry"
    );
    assert!(!store.try_lead("maintenance", "a", ttl).await.unwrap());

    store.resign("maintenance", "a").await.unwrap();
    assert!(
        !store.try_lead("maintenance", "a", ttl).await.unwrap(),
        "resigning a role one does not hold changes nothing"
    );
    store.resign("maintenance", "b").await.unwrap();
    assert!(
        store.try_lead("maintenance", "a", ttl).await.unwrap(),
        "free at once after resignation"
    );
}

/// Many nodes racing for a role: exactly one wins each round.
async fn leader_lease_race_has_one_winner(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .try_lead("race", &format!("n{i}"), Duration::from_secs(30))
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}

crate::checks![
    nodes_register_refresh_and_expire,
    nodes_remote_workers_and_drain,
    leader_lease_has_one_holder,
    leader_lease_race_has_one_winner,
];
