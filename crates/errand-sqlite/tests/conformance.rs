//! The store conformance suite, run against a fresh SQLite file per check.

use errand_core::Store;
use errand_sqlite::{SqliteOptions, SqliteStore};
use std::sync::Arc;

errand_conformance::store_conformance!(async {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("errand.db"), SqliteOptions::default())
        .await
        .expect("open store");
    (Arc::new(store) as Arc<dyn Store>, dir)
});
