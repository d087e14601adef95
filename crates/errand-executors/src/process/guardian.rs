//! The guardian: a small process forked (without exec) from errand the first
//! time a job process group starts, that SIGKILLs every registered group
//! when errand dies, however it dies (kill -9 included), so that a job's
//! processes never outlive the errand that holds its lease. See
//! docs/decisions/0009-job-processes-die-with-errand.md.
//!
//! errand keeps one end of a `SOCK_SEQPACKET` socket pair (close-on-exec, so
//! job processes never hold it) and sends fixed-size "add"/"remove" records;
//! the guardian holds the other end only. When errand's end closes the
//! guardian reads end-of-file, kills what is registered and exits.

use nix::libc;
use std::collections::BTreeSet;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

/// Most groups the guardian tracks at once (its registry is allocated
/// before the fork: the child may not allocate).
const CAPACITY: usize = 1 << 16;
/// Record operations.
const ADD: i32 = 1;
const REMOVE: i32 = 2;
/// One record: operation, then process group id (native endianness).
const RECORD: usize = 8;

/// errand's side of a live guardian.
struct Guardian {
    socket: OwnedFd,
    pid: libc::pid_t,
}

/// The guardian (once started) and the groups it must kill; the set is
/// errand's copy, used to seed a new guardian if the old one died.
struct State {
    guardian: Option<Guardian>,
    live: BTreeSet<i32>,
    warned: bool,
}

static STATE: Mutex<State> = Mutex::new(State {
    guardian: None,
    live: BTreeSet::new(),
    warned: false,
});

/// Registers process group `pgid`: from now on it is killed if errand dies.
/// An error means it is not guarded (no guardian could be started): the
/// caller must kill the group rather than let it run.
pub(crate) fn add(pgid: i32) -> io::Result<()> {
    if pgid <= 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{pgid} is not a job's process group"),
        ));
    }
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if state.live.len() >= CAPACITY {
        return Err(io::Error::other(format!(
            "more than {CAPACITY} process groups at once"
        )));
    }
    state.live.insert(pgid);
    let sent = deliver(&mut state, ADD, pgid);
    if sent.is_err() {
        state.live.remove(&pgid);
    }
    sent
}

/// Unregisters `pgid` once its group has been killed.
pub(crate) fn remove(pgid: i32) {
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if !state.live.remove(&pgid) {
        return;
    }
    if let Err(e) = deliver(&mut state, REMOVE, pgid) {
        tracing::error!(
            pgid,
            "cannot update the process guardian: {e}; job processes may outlive errand"
        );
    }
}

/// The guardian's process id, once one runs (for tests and operators).
pub fn guardian_pid() -> Option<u32> {
    let state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    state.guardian.as_ref().map(|g| g.pid as u32)
}

/// Starts the guardian now unless it runs, so that a job can be refused
/// before its process starts when none can be had (e.g. no file descriptor left).
pub(crate) fn ensure() -> io::Result<()> {
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if state.guardian.is_none() {
        state.guardian = Some(start(&state.live)?);
    }
    Ok(())
}

/// Sends a record to the guardian (its registry now matches `state.live`);
/// if the guardian died, starts another seeded with `state.live`.
fn deliver(state: &mut State, op: i32, pgid: i32) -> io::Result<()> {
    if let Some(guardian) = &state.guardian {
        match send(guardian, op, pgid) {
            Ok(()) => return Ok(()),
            // Any other error leaves the guardian in place: dropping our end
            // of the socket would make a live guardian kill every group.
            Err(e) if !gone(&e) => return Err(e),
            Err(e) => {
                if !state.warned {
                    state.warned = true;
                    tracing::error!(
                        pid = guardian.pid,
                        "the process guardian is gone ({e}); starting another"
                    );
                }
                let old = state.guardian.take().expect("checked above");
                // Reap it (it is our child) so it does not stay a zombie.
                // SAFETY: waitpid on our own child's pid, no memory involved.
                unsafe { libc::waitpid(old.pid, std::ptr::null_mut(), libc::WNOHANG) };
            }
        }
    }
    if state.live.is_empty() {
        // Nothing to guard: start one only when a group needs it.
        return Ok(());
    }
    state.guardian = Some(start(&state.live)?);
    Ok(())
}

/// Whether a send failed because the guardian is gone.
fn gone(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN)
    )
}

fn send(guardian: &Guardian, op: i32, pgid: i32) -> io::Result<()> {
    let mut record = [0u8; RECORD];
    record[..4].copy_from_slice(&op.to_ne_bytes());
    record[4..].copy_from_slice(&pgid.to_ne_bytes());
    loop {
        // SAFETY: sends from a live buffer of RECORD bytes on our own socket;
        // MSG_NOSIGNAL turns a dead guardian into EPIPE rather than SIGPIPE.
        let sent = unsafe {
            libc::send(
                guardian.socket.as_raw_fd(),
                record.as_ptr().cast(),
                RECORD,
                libc::MSG_NOSIGNAL,
            )
        };
        if sent == RECORD as isize {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Forks a guardian that starts out guarding `seed`.
fn start(seed: &BTreeSet<i32>) -> io::Result<Guardian> {
    // Everything the child needs is made before the fork: it may not allocate.
    let mut registry: Vec<i32> = Vec::with_capacity(CAPACITY);
    registry.extend(seed);
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two descriptors into `fds`.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the child runs only `guard`, which makes raw async-signal-safe
    // system calls on memory prepared above, and never returns.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => unsafe { guard(theirs.as_raw_fd(), registry.as_mut_ptr(), registry.len()) },
        pid => {
            drop(theirs);
            tracing::debug!(pid, "started the process guardian (errand-guard)");
            Ok(Guardian { socket: ours, pid })
        }
    }
}

/// The guardian's whole life, in the forked child. Only async-signal-safe
/// system calls: the parent may have had other threads holding locks.
///
/// # Safety
/// `registry` must point to `CAPACITY` writable `i32`s, the first `len` set.
unsafe fn guard(socket: libc::c_int, registry: *mut i32, mut len: usize) -> ! {
    unsafe {
        // Its own group, so terminal signals and group kills aimed at errand miss it.
        libc::setpgid(0, 0);
        for signal in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGPIPE,
            libc::SIGUSR1,
            libc::SIGUSR2,
        ] {
            libc::signal(signal, libc::SIG_IGN);
        }
        // Hold nothing but the socket: not errand's stdout/stderr (a reader
        // would wait for us), listening sockets, database files or pipes.
        close_all_but(socket);
        libc::chdir(c"/".as_ptr());
        libc::prctl(
            libc::PR_SET_NAME,
            c"errand-guard".as_ptr() as libc::c_ulong,
            0,
            0,
            0,
        );
        let mut record = [0u8; RECORD];
        loop {
            let got = libc::recv(socket, record.as_mut_ptr().cast(), RECORD, 0);
            if got == RECORD as isize {
                let op = i32::from_ne_bytes([record[0], record[1], record[2], record[3]]);
                let pgid = i32::from_ne_bytes([record[4], record[5], record[6], record[7]]);
                if op == ADD && len < CAPACITY && pgid > 1 {
                    *registry.add(len) = pgid;
                    len += 1;
                } else if op == REMOVE {
                    let mut i = 0;
                    while i < len {
                        if *registry.add(i) == pgid {
                            len -= 1;
                            *registry.add(i) = *registry.add(len);
                            break;
                        }
                        i += 1;
                    }
                }
            } else if got == 0 || (got < 0 && *libc::__errno_location() != libc::EINTR) {
                // End of file: errand is gone (or the socket broke).
                break;
            }
        }
        for i in 0..len {
            libc::kill(-*registry.add(i), libc::SIGKILL);
        }
        libc::_exit(0)
    }
}

/// Closes every descriptor but `keep` (in the forked child).
unsafe fn close_all_but(keep: libc::c_int) {
    unsafe {
        let keep = keep as libc::c_uint;
        let mut ok = true;
        if keep > 0 {
            ok &= libc::syscall(libc::SYS_close_range, 0, keep - 1, 0) == 0;
        }
        ok &= libc::syscall(libc::SYS_close_range, keep + 1, libc::c_uint::MAX, 0) == 0;
        if !ok {
            // Kernels before 5.9: close them one by one.
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
            let top = limit.rlim_cur.min(1 << 20) as libc::c_int;
            for fd in 0..top {
                if fd != keep as libc::c_int {
                    libc::close(fd);
                }
            }
        }
    }
}
