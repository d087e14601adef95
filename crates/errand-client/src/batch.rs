//! A handle on a batch just enqueued: read it again or wait for its results.

use crate::{Client, ClientError};
use errand_core::api::BatchResults;
use errand_core::{Batch, BatchId};
use std::time::Duration;

/// A batch enqueued by [`Client::enqueue_batch`].
#[derive(Debug, Clone)]
pub struct BatchHandle {
    /// The batch's id.
    pub id: BatchId,
    /// The batch as it was created.
    pub batch: Batch,
    client: Client,
}

impl BatchHandle {
    pub(crate) fn new(client: Client, batch: Batch) -> Self {
        BatchHandle {
            id: batch.id,
            batch,
            client,
        }
    }

    /// Every job's result or error, in submission order, once the last job
    /// has ended, or as they stand after `timeout` (check `batch.finished_at`).
    pub async fn wait(&self, timeout: Duration) -> Result<BatchResults, ClientError> {
        self.client.wait_batch(self.id, timeout).await
    }

    /// The batch now, with its jobs' counts by state.
    pub async fn get(&self) -> Result<Batch, ClientError> {
        self.client.batch(self.id).await
    }
}
