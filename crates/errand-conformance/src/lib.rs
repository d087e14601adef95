//! The Store contract as executable checks. Every engine runs the same
//! suite: each check is a private `async fn(Arc<dyn Store>)` that panics
//! when the engine breaks the contract, and [`run`] runs every check as a
//! named trial (`<engine>::<module>::<check>`) on a fresh store.
//!
//! A check cannot be forgotten: each module names its checks in one
//! `checks![...]` at its end, and a check left out of it is dead code,
//! which this crate refuses to compile (`deny(dead_code)` on every check
//! module, `pub` or not; nothing here is re-exported). A new module needs
//! only its name in `modules!` below. Time in a check passes by moving the
//! store's [`Clock`](errand_core::Clock) (engines run the suite on a manual
//! clock), never by sleeping.

use errand_core::Store;
use libtest_mimic::{Arguments, Failed, Trial};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

/// A check's run on one store.
type CheckRun = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One check of the contract.
struct Check {
    /// Its module, e.g. `lifecycle`.
    module: &'static str,
    /// Its function's name.
    name: &'static str,
    /// Runs it on a store.
    run: fn(Arc<dyn Store>) -> CheckRun,
}

/// Registers a module's checks: every `async fn(Arc<dyn Store>)` in it.
macro_rules! checks {
    ($($check:ident),* $(,)?) => {
        pub(crate) const CHECKS: &[$crate::Check] = &[$(
            $crate::Check {
                module: module_path!(),
                name: stringify!($check),
                run: |store| Box::pin($check(store)),
            }
        ),*];
    };
}
use checks;

/// Declares the check modules; [`every_check`] walks them all.
macro_rules! modules {
    ($($module:ident),* $(,)?) => {
        // A check that its module's `checks!` leaves out would never run:
        // it is dead code, made an error here.
        $(#[deny(dead_code)] mod $module;)*

        /// Every registered check, module by module.
        fn every_check() -> impl Iterator<Item = &'static Check> {
            [$($module::CHECKS),*].into_iter().flatten()
        }
    };
}

modules!(
    admin, attempts, audit, batches, bulk, claim, counts, enqueue, events, history, lifecycle,
    limits, nodes, progress, queues, retention, sessions, ticks, tokens, unique,
);
mod support;

/// Runs every check as one trial named `<engine>::<module>::<check>`, each
/// on its own runtime with a store from `fresh` (a new, empty store and
/// whatever must live as long as it, such as a temporary directory).
/// Honours `cargo test`'s filter, `--test-threads`, `--list`, and exits
/// non-zero when a trial fails: call it from the `main` of a
/// `harness = false` test target.
///
/// ```ignore
/// fn main() -> std::process::ExitCode {
///     errand_conformance::run("mine", || async {
///         let dir = tempfile::tempdir().unwrap();
///         let store = MyStore::open(dir.path()).await.unwrap();
///         (std::sync::Arc::new(store) as std::sync::Arc<dyn errand_core::Store>, dir)
///     })
/// }
/// ```
pub fn run<F, Fut, G>(engine: &str, fresh: F) -> ExitCode
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = (Arc<dyn Store>, G)>,
    G: Send + 'static,
{
    let args = Arguments::from_args();
    let trials = every_check()
        .map(|check| {
            let module = check.module.rsplit("::").next().unwrap_or(check.module);
            let fresh = fresh.clone();
            Trial::test(format!("{engine}::{module}::{}", check.name), move || {
                trial(check, fresh)
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

/// One check on a fresh store; a panic anywhere in it fails the trial.
fn trial<F, Fut, G>(check: &Check, fresh: F) -> Result<(), Failed>
where
    F: Fn() -> Fut,
    Fut: Future<Output = (Arc<dyn Store>, G)>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(async {
            let (store, guard) = fresh().await;
            (check.run)(store).await;
            drop(guard);
        })
    }));
    outcome.map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("the check panicked");
        Failed::from(message)
    })
}
