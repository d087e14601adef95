//! SQLite-only behaviour: pragmas, exclusive use of the file (also across
//! processes and after kill -9), durability across reopen, migrations, and
//! a failing operation rolling back alone inside a group commit.

use errand_core::store::Finish;
use errand_core::{Backoff, JobState, NewJob, Outcome, Store, StoreError};
use errand_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Set in the child process that holds a database open for the lock test.
const HOLD_ENV: &str = "ERRAND_SQLITE_TEST_HOLD";

/// Kills (SIGKILL) and reaps the child when dropped, even if a check fails.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default())
        .await
        .expect("open store")
}

fn db_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("errand.db")
}

fn locked_message(err: StoreError) -> String {
    match err {
        StoreError::Locked(message) => message,
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[tokio::test]
async fn wal_and_full_synchronous_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_in(&dir)).await;
    let conn = rusqlite::Connection::open(db_in(&dir)).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(store.synchronous().await.unwrap(), Synchronous::Full);
    drop(store);

    let opts = SqliteOptions {
        synchronous: Synchronous::Normal,
        ..Default::default()
    };
    let store = SqliteStore::open(db_in(&dir), opts).await.unwrap();
    assert_eq!(store.synchronous().await.unwrap(), Synchronous::Normal);
}

#[tokio::test]
async fn second_open_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let first = open(&path).await;
    let clone = first.clone();
    let message = locked_message(
        SqliteStore::open(&path, SqliteOptions::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(
        message,
        format!(
            "database {} is in use by another errand process (pid {}); stop it first or use another --database",
            path.display(),
            std::process::id()
        )
    );
    drop(first);
    assert!(
        SqliteStore::open(&path, SqliteOptions::default())
            .await
            .is_err(),
        "a live clone keeps the lock"
    );
    drop(clone);
    open(&path).await;
}

/// The lock holder: this test binary re-run by
/// [`another_process_holding_the_file_is_named_and_kill_9_frees_it`] with
/// [`HOLD_ENV`] set; it keeps the store open until it is killed.
async fn hold_lock(path: &Path) {
    let _store = open(path).await;
    println!("holding the lock");
    std::thread::sleep(std::time::Duration::from_secs(120));
}

#[tokio::test]
async fn another_process_holding_the_file_is_named_and_kill_9_frees_it() {
    // The holder must be another process, so the test runs itself again in
    // the holder's role rather than keeping a separate test that would pass
    // doing nothing whenever it ran alone.
    if let Ok(path) = std::env::var(HOLD_ENV) {
        return hold_lock(Path::new(&path)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let mut child = Child(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "another_process_holding_the_file_is_named_and_kill_9_frees_it",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HOLD_ENV, &path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = BufReader::new(child.0.stdout.take().unwrap());
    let held = stdout
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("holding the lock"));
    assert!(held, "the child never took the lock");

    let message = locked_message(
        SqliteStore::open(&path, SqliteOptions::default())
            .await
            .unwrap_err(),
    );
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("(pid {})", child.0.id())),
        "{message}"
    );

    drop(child);
    let store = open(&path).await;
    assert_eq!(store.schema_version().await.unwrap(), 11);
}

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let store = open(&path).await;
    let jobs = store
        .enqueue(vec![
            NewJob::new("a", serde_json::json!({"n": 1})),
            NewJob::new("b", serde_json::json!(null)),
        ])
        .await
        .unwrap();
    let claimed = store
        .claim(&errand_core::store::ClaimRequest {
            queue: "default".into(),
            kinds: vec!["a".into()],
            limit: 1,
            worker: "w".into(),
            lease: std::time::Duration::from_secs(60),
            limits: Default::default(),
        })
        .await
        .unwrap()
        .jobs;
    let done = store
        .finish(vec![Finish {
            lease: claimed[0].lease(),
            outcome: Outcome::Success(Some(serde_json::json!({"sent": true}))),
            backoff: Backoff::default(),
        }])
        .await
        .unwrap();
    assert_eq!(done, [true]);
    let before = (
        store.get(jobs[0].job.id).await.unwrap().unwrap(),
        store.get(jobs[1].job.id).await.unwrap().unwrap(),
    );
    drop(store);

    let store = open(&path).await;
    let after = (
        store.get(jobs[0].job.id).await.unwrap().unwrap(),
        store.get(jobs[1].job.id).await.unwrap().unwrap(),
    );
    assert_eq!(after, before);
    assert_eq!(after.0.state, JobState::Completed);
    assert_eq!(after.1.state, JobState::Available);
}

#[tokio::test]
async fn migrations_are_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let applied = |path: &Path| -> Vec<(u32, i64)> {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut stmt = conn
            .prepare("SELECT version, applied_at FROM schema_migrations ORDER BY version")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let store = open(&path).await;
    assert_eq!(store.schema_version().await.unwrap(), 11);
    drop(store);
    let first = applied(&path);
    let versions: Vec<u32> = first.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8]);

    let store = open(&path).await;
    assert_eq!(store.schema_version().await.unwrap(), 11);
    drop(store);
    assert_eq!(applied(&path), first, "reopening applied nothing again");
}

#[tokio::test]
async fn a_newer_schema_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    drop(open(&path).await);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)",
        [],
    )
    .unwrap();
    drop(conn);
    let err = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[tokio::test]
async fn a_missing_directory_is_a_clear_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope").join("errand.db");
    let err = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("nope"), "{err}");
    assert!(!dir.path().join("nope").exists());
}

/// A retry that would create a second live job with the same unique key
/// fails alone, while the writes committed with it succeed.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_operation_rolls_back_alone_in_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_in(&dir)).await;
    let keyed = || NewJob {
        unique_key: Some("k".into()),
        ..NewJob::new("report", serde_json::json!(null))
    };
    let first = store.enqueue(vec![keyed()]).await.unwrap()[0].job.id;
    let cancelled = store.cancel(first).await.unwrap();
    let second = store.enqueue(vec![keyed()]).await.unwrap();
    assert!(!second[0].duplicate);

    let enqueues: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .enqueue(vec![NewJob::new("other", serde_json::json!(i))])
                    .await
            })
        })
        .collect();
    let err = store.retry(first).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { id, action: "retry", .. } if id == first),
        "{err:?}"
    );
    for e in enqueues {
        e.await.unwrap().unwrap();
    }
    assert_eq!(store.get(first).await.unwrap().unwrap(), cancelled);
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.kinds["other"][&JobState::Available], 50);
    assert_eq!(stats.kinds["report"][&JobState::Available], 1);
}
