//! The store conformance suite, run against a fresh database per check on
//! one throwaway PostgreSQL cluster per test binary.

use errand_core::Store;
use errand_postgres::{PostgresOptions, PostgresStore};
use errand_testpg::TestPg;
use std::sync::Arc;

errand_conformance::store_conformance!(async {
    let pg = TestPg::shared();
    let store = PostgresStore::connect(&pg.fresh_database(), PostgresOptions::default())
        .await
        .expect("connect");
    (Arc::new(store) as Arc<dyn Store>, ())
});
