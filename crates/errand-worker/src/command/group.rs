//! Signalling a job's process group, so that children and grandchildren die
//! with the job, and a guard that kills the group if the attempt is dropped.

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The process group led by a job's main process.
pub(super) struct ProcessGroup {
    pgid: Pid,
}

impl ProcessGroup {
    /// The group of the child with this pid (it leads its own group).
    pub(super) fn new(pid: u32) -> Self {
        let pid = i32::try_from(pid).expect("pids fit in i32");
        ProcessGroup {
            pgid: Pid::from_raw(pid),
        }
    }

    /// Asks every process of the group to stop.
    pub(super) fn terminate(&self) {
        self.signal(Signal::SIGTERM);
    }

    /// Kills every process of the group.
    pub(super) fn kill(&self) {
        self.signal(Signal::SIGKILL);
    }

    fn signal(&self, signal: Signal) {
        // ESRCH means the group is already empty: nothing left to stop.
        let _ = killpg(self.pgid, signal);
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // If the attempt's future is dropped mid-run (task aborted), nothing
        // may outlive it; tokio reaps the killed child in the background.
        self.kill();
    }
}
