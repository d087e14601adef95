//! What every executor that starts job processes shares (the command
//! executor here, the pool executor in errand-executors): the child's
//! environment, its process group, the guardian that kills it when errand
//! dies and the on-disk record for when the guardian died too, and which
//! start failures are the machine's fault.

mod environment;
mod group;
mod guardian;
mod record;

pub use environment::{check_env_allow, set_environment};
pub use group::ProcessGroup;
pub use guardian::guardian_pid;

use std::io;
use std::path::Path;

/// Whether `program` can be started: a path (relative to `cwd`, or to
/// errand's own directory without one) naming a file, or a bare name found
/// on `PATH`. Start-up checks use it so a misspelt program is refused at
/// once instead of failing every attempt of every job.
pub fn program_exists(program: &str, cwd: Option<&Path>) -> bool {
    if program.contains('/') {
        return cwd.unwrap_or(Path::new("")).join(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Starts the guardian now if it does not run yet. Call it before starting
/// a job's process: when it fails (typically a resource limit) the job
/// should be handed back rather than run unguarded. The first call also
/// kills the job process groups that dead errand processes whose guardian
/// died with them left behind on this machine.
pub fn ensure_guardian() -> io::Result<()> {
    record::sweep_once();
    guardian::ensure()
}

/// Whether starting a process failed because the machine or errand ran out
/// of a resource (file descriptors, processes, memory) rather than because
/// of the program: the job is then not at fault and must not lose an attempt.
pub fn is_resource_limit(error: &io::Error) -> bool {
    use nix::libc::{EAGAIN, EMFILE, ENFILE, ENOMEM};
    matches!(
        error.raw_os_error(),
        Some(EMFILE | ENFILE | EAGAIN | ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::libc;

    #[test]
    fn resource_limits_are_told_from_the_programs_faults() {
        for code in [libc::EMFILE, libc::ENFILE, libc::EAGAIN, libc::ENOMEM] {
            assert!(is_resource_limit(&io::Error::from_raw_os_error(code)));
        }
        for code in [libc::ENOENT, libc::EACCES, libc::ENOEXEC, libc::E2BIG] {
            assert!(!is_resource_limit(&io::Error::from_raw_os_error(code)));
        }
        assert!(!is_resource_limit(&io::Error::other("no os error")));
    }

    #[test]
    fn programs_are_found_on_path_or_relative_to_cwd() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/work.sh"), "").unwrap();
        assert!(program_exists("sh", None));
        assert!(!program_exists("no-such-program-errand", Some(dir.path())));
        assert!(program_exists("bin/work.sh", Some(dir.path())));
        assert!(program_exists("./bin/work.sh", Some(dir.path())));
        assert!(!program_exists("./bin/other.sh", Some(dir.path())));
        // A directory is no program.
        assert!(!program_exists("./bin", Some(dir.path())));
        let absolute = dir.path().join("bin/work.sh");
        assert!(program_exists(absolute.to_str().unwrap(), None));
    }
}
