//! The admin text protocol: [`parse_command`] reads one line (the codec
//! has cut it at `\n` and dropped a `\r`) into an [`AdminCommand`], and the
//! `format_*` functions write gearmand 1.1.20's exact replies from plain
//! data, byte for byte, including its inconsistent line endings:
//!
//! * lists (`status`, `workers`, `prioritystatus`, `show jobs`,
//!   `show unique jobs`): lines ending in `\n`, closed by `.\n`;
//! * `OK\r\n` for `maxqueue`, `create function`, `drop function` and
//!   `cancel job`;
//! * `OK <x>\n` (no CR) for `version`, `getpid` and `verbose`;
//! * `ERR ...\r\n` for errors.
//!
//! `gearadmin` and monitoring scripts parse `status`, `workers` and
//! `version`. Field values are written as given: the listener must not
//! pass names holding a tab or a line break (a function name comes from a
//! `CAN_DO` body and may hold any byte but NUL).

use std::net::IpAddr;

use bytes::Bytes;

/// One admin command line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AdminCommand {
    /// `status`.
    Status,
    /// `workers`.
    Workers,
    /// `version`.
    Version,
    /// `getpid`.
    GetPid,
    /// `verbose`.
    Verbose,
    /// `prioritystatus`.
    PriorityStatus,
    /// `show jobs`.
    ShowJobs,
    /// `show unique jobs`.
    ShowUniqueJobs,
    /// `maxqueue FUNCTION [N | HIGH NORMAL LOW]`.
    MaxQueue {
        /// The function.
        function: Bytes,
        /// The new caps.
        limits: MaxQueueLimits,
    },
    /// `cancel job HANDLE`.
    CancelJob {
        /// The handle as typed.
        handle: Bytes,
    },
    /// `create function F`.
    CreateFunction {
        /// The function.
        function: Bytes,
    },
    /// `drop function F`.
    DropFunction {
        /// The function.
        function: Bytes,
    },
    /// `shutdown [graceful]`. gearmand 1.1.20 no longer has it and answers
    /// [`format_unknown_command`]`(b"shutdown")`; parsed so the listener
    /// can decide.
    Shutdown {
        /// `shutdown graceful`.
        graceful: bool,
    },
    /// A known command with missing or unusable arguments: answer
    /// [`format_invalid_arguments`] with `command`.
    InvalidArguments {
        /// The command's name, lower case (`maxqueue`, `cancel`, ...).
        command: &'static str,
    },
    /// Anything else (including an empty line): answer
    /// [`format_unknown_command`] with `command`.
    Unknown {
        /// The first word as typed.
        command: Bytes,
    },
}

/// `maxqueue`'s caps. A cap of 0 or below means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaxQueueLimits {
    /// `maxqueue F`: back to the default, no limit.
    Reset,
    /// `maxqueue F N`: the same cap for every priority.
    All(i64),
    /// `maxqueue F HIGH NORMAL LOW`.
    PerPriority {
        /// Cap for high-priority submits.
        high: i64,
        /// Cap for normal-priority submits.
        normal: i64,
        /// Cap for low-priority submits.
        low: i64,
    },
}

fn parse_i64(word: &[u8]) -> Option<i64> {
    std::str::from_utf8(word).ok()?.parse().ok()
}

/// Reads one admin line (without its `\n` or `\r\n`). Words are split on
/// spaces (runs of spaces count as one), command words are
/// case-insensitive, and words after a complete command are ignored.
pub fn parse_command(line: &[u8]) -> AdminCommand {
    let words: Vec<&[u8]> = line
        .split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .collect();
    let Some(&first) = words.first() else {
        return AdminCommand::Unknown {
            command: Bytes::new(),
        };
    };
    let is = |index: usize, word: &str| {
        words
            .get(index)
            .is_some_and(|w| w.eq_ignore_ascii_case(word.as_bytes()))
    };
    let arg = |index: usize| words.get(index).map(|w| Bytes::copy_from_slice(w));
    let unknown = || AdminCommand::Unknown {
        command: Bytes::copy_from_slice(first),
    };
    let name = first.to_ascii_lowercase();
    match name.as_slice() {
        b"status" => AdminCommand::Status,
        b"workers" => AdminCommand::Workers,
        b"version" => AdminCommand::Version,
        b"getpid" => AdminCommand::GetPid,
        b"verbose" => AdminCommand::Verbose,
        b"prioritystatus" => AdminCommand::PriorityStatus,
        b"show" if is(1, "jobs") => AdminCommand::ShowJobs,
        b"show" if is(1, "unique") && is(2, "jobs") => AdminCommand::ShowUniqueJobs,
        b"shutdown" => AdminCommand::Shutdown {
            graceful: is(1, "graceful"),
        },
        b"cancel" if is(1, "job") => match arg(2) {
            Some(handle) => AdminCommand::CancelJob { handle },
            None => AdminCommand::InvalidArguments { command: "cancel" },
        },
        b"create" if is(1, "function") => match arg(2) {
            Some(function) => AdminCommand::CreateFunction { function },
            None => AdminCommand::InvalidArguments { command: "create" },
        },
        b"drop" if is(1, "function") => match arg(2) {
            Some(function) => AdminCommand::DropFunction { function },
            None => AdminCommand::InvalidArguments { command: "drop" },
        },
        b"maxqueue" => {
            let invalid = AdminCommand::InvalidArguments {
                command: "maxqueue",
            };
            let Some(function) = arg(1) else {
                return invalid;
            };
            let numbers: Option<Vec<i64>> = words.iter().skip(2).map(|w| parse_i64(w)).collect();
            let limits = match numbers.as_deref() {
                Some([]) => MaxQueueLimits::Reset,
                Some(&[all]) => MaxQueueLimits::All(all),
                Some(&[high, normal, low]) => MaxQueueLimits::PerPriority { high, normal, low },
                _ => return invalid,
            };
            AdminCommand::MaxQueue { function, limits }
        }
        _ => unknown(),
    }
}

/// One `status` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FunctionStatus {
    /// The function.
    pub function: Bytes,
    /// Queued plus running jobs.
    pub total: u64,
    /// Jobs held by workers.
    pub running: u64,
    /// Worker registrations for the function.
    pub available_workers: u64,
}

/// One `workers` line: one per connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkerLine {
    /// The connection's number (gearmand prints its file descriptor).
    pub fd: u64,
    /// The peer's address.
    pub ip: IpAddr,
    /// `SET_CLIENT_ID`'s id; `None` prints `-`.
    pub client_id: Option<Bytes>,
    /// The registered functions, in order, repeats included.
    pub functions: Vec<Bytes>,
}

/// One `prioritystatus` line (queued jobs only).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PriorityStatusLine {
    /// The function.
    pub function: Bytes,
    /// Queued high-priority jobs.
    pub high: u64,
    /// Queued normal-priority jobs.
    pub normal: u64,
    /// Queued low-priority jobs.
    pub low: u64,
    /// Worker registrations.
    pub workers: u64,
}

/// One `show jobs` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobLine {
    /// The handle.
    pub handle: Bytes,
    /// How often the job's worker was lost.
    pub retries: u64,
    /// Whether the job is flagged ignored.
    pub ignored: bool,
    /// Whether the job is in the persistent queue.
    pub persisted: bool,
}

const LIST_END: &[u8] = b".\n";

fn list<T>(items: &[T], mut line: impl FnMut(&mut Vec<u8>, &T)) -> Bytes {
    let mut out = Vec::new();
    for item in items {
        line(&mut out, item);
        out.push(b'\n');
    }
    out.extend_from_slice(LIST_END);
    Bytes::from(out)
}

fn number(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(value.to_string().as_bytes());
}

/// `status`: `FUNCTION\tTOTAL\tRUNNING\tAVAILABLE_WORKERS` lines, then `.`.
pub fn format_status(functions: &[FunctionStatus]) -> Bytes {
    list(functions, |out, f| {
        out.extend_from_slice(&f.function);
        for value in [f.total, f.running, f.available_workers] {
            out.push(b'\t');
            number(out, value);
        }
    })
}

/// `workers`: `FD IP CLIENT-ID : FUNC FUNC ...` lines (nothing after `:`
/// when the connection registered no function), then `.`.
pub fn format_workers(workers: &[WorkerLine]) -> Bytes {
    list(workers, |out, w| {
        number(out, w.fd);
        out.push(b' ');
        out.extend_from_slice(w.ip.to_string().as_bytes());
        out.push(b' ');
        match &w.client_id {
            Some(id) => out.extend_from_slice(id),
            None => out.push(b'-'),
        }
        out.extend_from_slice(b" :");
        for function in &w.functions {
            out.push(b' ');
            out.extend_from_slice(function);
        }
    })
}

/// `prioritystatus`: `FUNCTION\tHIGH\tNORMAL\tLOW\tWORKERS` lines, then `.`.
pub fn format_priority_status(functions: &[PriorityStatusLine]) -> Bytes {
    list(functions, |out, f| {
        out.extend_from_slice(&f.function);
        for value in [f.high, f.normal, f.low, f.workers] {
            out.push(b'\t');
            number(out, value);
        }
    })
}

/// `show jobs`: `HANDLE\tRETRIES\tIGNORED\tPERSISTED` lines (flags as `0`
/// or `1`), then `.`.
pub fn format_show_jobs(jobs: &[JobLine]) -> Bytes {
    list(jobs, |out, j| {
        out.extend_from_slice(&j.handle);
        for value in [j.retries, u64::from(j.ignored), u64::from(j.persisted)] {
            out.push(b'\t');
            number(out, value);
        }
    })
}

/// `show unique jobs`: one unique per line, then `.`.
pub fn format_show_unique_jobs(uniques: &[Bytes]) -> Bytes {
    list(uniques, |out, u| out.extend_from_slice(u))
}

/// `version`: `OK <version>\n` (gearmand: `OK 1.1.20+ds`).
pub fn format_version(version: &str) -> Bytes {
    Bytes::from(format!("OK {version}\n"))
}

/// `getpid`: `OK <pid>\n`.
pub fn format_getpid(pid: u32) -> Bytes {
    Bytes::from(format!("OK {pid}\n"))
}

/// `verbose`: `OK <LEVEL>\n`, e.g. `OK INFO`.
pub fn format_verbose(level: &str) -> Bytes {
    Bytes::from(format!("OK {level}\n"))
}

/// `OK\r\n`: the reply to `maxqueue`, `create function`, `drop function`
/// and a successful `cancel job`.
pub fn format_ok() -> Bytes {
    Bytes::from_static(b"OK\r\n")
}

/// `ERR UNKNOWN_COMMAND Unknown+server+command<command>\r\n` (no separator
/// before the command, as gearmand writes it).
pub fn format_unknown_command(command: &[u8]) -> Bytes {
    let mut out = b"ERR UNKNOWN_COMMAND Unknown+server+command".to_vec();
    out.extend_from_slice(command);
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

/// `ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+<command>\r\n`
/// (gearmand's reply to `maxqueue` without a function).
pub fn format_invalid_arguments(command: &str) -> Bytes {
    Bytes::from(format!(
        "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+{command}\r\n"
    ))
}

/// `ERR UNKNOWN_JOB\r\n`: `cancel job` for a handle the server does not
/// know.
pub fn format_unknown_job() -> Bytes {
    Bytes::from_static(b"ERR UNKNOWN_JOB\r\n")
}

/// `ERR there are still connected workers or executing clients\r\n`:
/// `drop function` while workers or running jobs exist.
pub fn format_drop_function_busy() -> Bytes {
    Bytes::from_static(b"ERR there are still connected workers or executing clients\r\n")
}

/// `ERR function not found\r\n`: `drop function` for an unknown function.
pub fn format_function_not_found() -> Bytes {
    Bytes::from_static(b"ERR function not found\r\n")
}

/// `ERR <code> <text>\r\n`, gearmand's error line: the text with its
/// spaces written as `+` (as in `Unknown+server+command`), and any line
/// break or other control character dropped so the reply stays one line.
/// For errand's own refusals, where gearmand has no such case.
pub fn format_error(code: &str, text: &str) -> Bytes {
    let mut out = b"ERR ".to_vec();
    out.extend(code.bytes().filter(|b| b.is_ascii_graphic()));
    out.push(b' ');
    out.extend(text.bytes().filter_map(|b| match b {
        b' ' => Some(b'+'),
        b if b.is_ascii_control() => None,
        b => Some(b),
    }));
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}
