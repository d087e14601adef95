//! The Store contract as executable checks. Every engine runs the same
//! suite: each check is a `pub async fn` that takes a fresh, empty store and
//! panics when the engine breaks the contract, and [`store_conformance!`]
//! turns the whole list into one named test per check.

mod admin;
mod attempts;
mod batches;
mod claim;
mod enqueue;
mod events;
mod lifecycle;
mod limits;
mod nodes;
mod queues;
mod retention;
mod support;
mod ticks;
mod unique;

pub use admin::*;
pub use attempts::*;
pub use batches::*;
pub use claim::*;
pub use enqueue::*;
pub use events::*;
pub use lifecycle::*;
pub use limits::*;
pub use nodes::*;
pub use queues::*;
pub use retention::*;
pub use ticks::*;
pub use unique::*;

/// Generates one `#[tokio::test(flavor = "multi_thread")]` per check.
///
/// `$fresh` is an expression (typically an `async` block) that evaluates to a
/// future of `(Arc<dyn Store>, guard)`: a new, empty store and whatever must
/// live as long as it (a temporary directory, say). The calling crate needs
/// `tokio` as a dependency.
///
/// ```ignore
/// errand_conformance::store_conformance!(async {
///     let dir = tempfile::tempdir().unwrap();
///     let store = MyStore::open(dir.path()).await.unwrap();
///     (std::sync::Arc::new(store) as std::sync::Arc<dyn errand_core::Store>, dir)
/// });
/// ```
#[macro_export]
macro_rules! store_conformance {
    ($fresh:expr) => {
        $crate::store_conformance!(@checks $fresh;
            enqueue_one_and_batch,
            unique_key_dedupes_live_jobs,
            claim_order_is_priority_run_at_id,
            future_jobs_wait_until_due,
            claim_respects_limit,
            claim_filters_queue_and_kinds,
            concurrent_claimers_take_each_job_once,
            heartbeat_extends_and_reports_lost_leases,
            finish_is_fenced_by_attempt,
            rescue_never_overwrites_a_finished_job,
            retry_backs_off_and_records_the_error,
            used_up_attempts_fail,
            permanent_error_fails_at_once,
            snooze_deadly_and_handback_refund_the_attempt,
            rescue_expired_counts_the_attempt,
            cancel_rules,
            retry_rules,
            list_filters_and_paginates_newest_first,
            list_leaves_out_values_over_the_cap,
            stats_count_by_queue_kind_and_state,
            prune_honours_retention_per_state,
            promote_due_makes_jobs_available,
            events_follow_commits,
            nodes_register_refresh_and_expire,
            leader_lease_has_one_holder,
            leader_lease_race_has_one_winner,
            paused_queue_accepts_but_claims_nothing,
            queues_list_counts_and_paused_flags,
            unique_for_returns_the_job_within_the_window,
            unique_for_expires_after_the_window,
            without_unique_for_an_ended_key_is_free,
            publish_stores_the_event_and_one_job_per_listener,
            events_list_newest_first_by_name_and_cursor,
            event_unique_key_dedupes_per_name,
            listener_jobs_are_independent,
            create_batch_stores_its_jobs_in_order,
            batch_on_complete_runs_once_after_the_last_job,
            batch_completes_when_the_last_job_fails,
            batch_completes_when_the_last_job_uses_up_its_attempts,
            batch_completes_when_the_last_job_is_cancelled,
            batch_completes_when_the_running_last_job_is_cancelled,
            batch_completes_when_the_last_job_is_rescued,
            batch_completion_mixes_every_path,
            batch_without_on_complete_still_finishes,
            concurrent_last_finishes_enqueue_one_on_complete,
            record_tick_enqueues_once_per_tick,
            record_tick_race_has_one_winner,
            concurrency_limit_caps_running_jobs,
            concurrency_limit_spans_queues_and_explicit_kinds,
            expired_leases_count_until_rescued,
            concurrent_claimers_never_exceed_concurrency,
            rate_limit_holds_starts_and_names_retry_at,
            concurrent_claimers_never_exceed_rate,
            prune_removes_old_events_and_finished_batches,
            snooze_keeps_the_attempt_and_the_next_claim_gets_a_new_fence,
            a_late_finish_after_a_snooze_or_a_rescue_is_refused,
            snoozes_never_add_real_attempts,
            errors_carry_the_attempt_that_ran,
        );
    };
    (@checks $fresh:expr; $($check:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $check() {
                let (store, _guard) = $fresh.await;
                $crate::$check(store).await;
            }
        )*
    };
}
