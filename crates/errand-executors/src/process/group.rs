//! A job's process group (a command attempt or a pool process): signalled
//! as a whole so that children and grandchildren stop with the job,
//! registered with the guardian so that it dies with errand, and killed if
//! its owner is dropped.

use super::{guardian, record};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::io;

/// The process group led by a child that errand started with
/// `process_group(0)`.
#[derive(Debug)]
pub struct ProcessGroup {
    pgid: Pid,
}

impl ProcessGroup {
    /// Takes charge of the group led by child `pid`: from now on it is
    /// killed if errand dies. On error (no guardian could be started) the
    /// group has already been killed: the caller must not count on it.
    pub fn guard(pid: u32) -> io::Result<ProcessGroup> {
        let pgid = i32::try_from(pid).map_err(io::Error::other)?;
        if let Err(e) = guardian::add(pgid) {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            return Err(e);
        }
        record::add(pgid);
        Ok(ProcessGroup {
            pgid: Pid::from_raw(pgid),
        })
    }

    /// Asks every process of the group to stop.
    pub fn terminate(&self) {
        self.signal(Signal::SIGTERM);
    }

    /// Kills every process of the group.
    pub fn kill(&self) {
        self.signal(Signal::SIGKILL);
    }

    fn signal(&self, signal: Signal) {
        // ESRCH means the group is already empty: nothing left to stop.
        let _ = killpg(self.pgid, signal);
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // Also when the attempt's future is dropped mid-run (task aborted):
        // nothing may outlive it; tokio reaps a killed child in the background.
        self.kill();
        guardian::remove(self.pgid.as_raw());
        record::remove(self.pgid.as_raw());
    }
}
