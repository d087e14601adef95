//! errand-core: the domain rules of errand, shared by every store engine,
//! executor and interface.
//!
//! It owns the job model ([`job`]), the state machine ([`state`]), what an
//! attempt's outcome does to a job ([`outcome`]), retry backoff ([`backoff`]),
//! duration and size parsing ([`duration`], [`size`]), events ([`event`]),
//! batches ([`batch`]), global kind limits ([`limit`]), cron schedules
//! ([`schedule`]), the catalogue of kinds, events and schedules ([`catalog`]),
//! write health ([`health`]), how far ahead to claim ([`pace`]), attempt progress ([`progress`]), API tokens and scopes ([`auth`]),
//! the audit log ([`audit`]), dashboard sessions ([`session`]), the [`clock::Clock`] all of them read time
//! from, and the [`store::Store`] contract that each database engine
//! implements. Nothing here does I/O: the time is an input, a timestamp or
//! a clock passed in.

pub mod api;
pub mod audit;
pub mod auth;
pub mod backoff;
pub mod batch;
pub mod bulk;
pub mod catalog;
pub mod clock;
pub mod duration;
pub mod event;
pub mod health;
pub mod history;
pub mod job;
pub mod limit;
pub mod load;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod outcome;
pub mod pace;
pub mod policy;
pub mod progress;
pub mod redact;
pub mod remote;
pub mod schedule;
pub mod session;
pub mod size;
pub mod state;
pub mod store;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

pub use backoff::Backoff;
pub use batch::{Batch, BatchId, NewBatch};
pub use catalog::{Catalog, CatalogError};
pub use clock::Clock;
pub use event::{Event, EventId, NewEvent};
pub use job::{
    AttemptError, EnqueueRequest, Enqueued, Job, JobId, Lease, NewJob, Omitted, ValidationError,
};
pub use limit::{KindLimit, Rate};
pub use outcome::{Outcome, Transition};
pub use policy::{KindPolicy, Retention};
pub use progress::{Progress, ProgressUpdate};
pub use state::JobState;
pub use store::{BreakerPhase, BreakerState, NodeInfo, QueueInfo, Store, StoreError, StoreEvent};
