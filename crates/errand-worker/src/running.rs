//! The attempts this worker is running: their leases (renewed by the
//! heartbeat) and the tokens that stop them when a lease is lost.

use errand_core::Lease;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// Leases held right now, each with its attempt's cancel token.
#[derive(Debug, Default)]
pub(crate) struct Running {
    leases: Mutex<HashMap<Lease, CancellationToken>>,
}

impl Running {
    /// Records a started attempt.
    pub(crate) fn insert(&self, lease: Lease, cancel: CancellationToken) {
        self.lock().insert(lease, cancel);
    }

    /// Forgets an ended attempt; false when its lease had been lost meanwhile.
    pub(crate) fn remove(&self, lease: &Lease) -> bool {
        self.lock().remove(lease).is_some()
    }

    /// How many attempts are running.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Every lease held, for one heartbeat.
    pub(crate) fn leases(&self) -> Vec<Lease> {
        self.lock().keys().copied().collect()
    }

    /// Stops the attempts whose leases the store no longer honours; their
    /// outcomes will be dropped since [`Running::remove`] then says false.
    pub(crate) fn lose(&self, lost: &[Lease]) {
        let mut map = self.lock();
        for lease in lost {
            if let Some(cancel) = map.remove(lease) {
                tracing::info!(
                    job = lease.id,
                    fence = lease.fence,
                    "lease lost (cancelled or rescued elsewhere); stopping the attempt"
                );
                cancel.cancel();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Lease, CancellationToken>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A live count of the attempts a [`crate::Worker`] is running, for metrics.
#[derive(Debug, Clone)]
pub struct RunningJobs(pub(crate) std::sync::Arc<Running>);

impl RunningJobs {
    /// Attempts running now.
    pub fn get(&self) -> usize {
        self.0.len()
    }
}
