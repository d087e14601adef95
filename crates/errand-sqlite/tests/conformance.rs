//! The store conformance suite, one trial per check, each on a fresh
//! SQLite file whose store reads a manual clock (checks move time by hand).

use errand_core::{Clock, Store};
use errand_sqlite::{SqliteOptions, SqliteStore};
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    errand_conformance::run("sqlite", || async {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Clock::manual(jiff::Timestamp::now());
        let store = SqliteStore::open_with_clock(
            dir.path().join("errand.db"),
            SqliteOptions::default(),
            clock,
        )
        .await
        .expect("open store");
        (Arc::new(store) as Arc<dyn Store>, dir)
    })
}
