//! The store conformance suite, one trial per check, each on a fresh
//! database of one throwaway PostgreSQL cluster per test binary, with a
//! store that reads a manual clock (checks move time by hand). Without
//! PostgreSQL every trial fails, saying how to install it.

use errand_core::{Clock, Store};
use errand_postgres::{PostgresOptions, PostgresStore};
use errand_testpg::TestPg;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    errand_conformance::run("postgres", || async {
        let pg = TestPg::shared();
        let clock = Clock::manual(jiff::Timestamp::now());
        let store = PostgresStore::connect_with_clock(
            &pg.fresh_database(),
            PostgresOptions::default(),
            clock,
        )
        .await
        .expect("connect");
        (Arc::new(store) as Arc<dyn Store>, ())
    })
}
