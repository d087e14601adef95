//! The binary packets: the magic, the packet types with their numbers and
//! argument counts, and [`Packet`], one typed variant per type, with the
//! encoding and decoding of a packet body (the header and the stream are
//! [`crate::codec`]'s).
//!
//! Arguments are raw bytes ([`Bytes`]): Gearman function names, uniques and
//! handles are byte strings, not text. The fields the protocol defines as
//! decimal numbers that a server interprets are typed (`epoch`,
//! `timeout_ms`, `known`, `running`, `waiting_clients`); the progress
//! numerator and denominator stay raw, because a server stores and forwards
//! what the worker sent.

use bytes::{BufMut, Bytes, BytesMut};

/// Length of the packet header: magic, type and body size.
pub const HEADER_LEN: usize = 12;

/// The magic of a request (client or worker to server): `\0REQ`.
pub const REQ_MAGIC: [u8; 4] = *b"\0REQ";

/// The magic of a response (server to client or worker): `\0RES`.
pub const RES_MAGIC: [u8; 4] = *b"\0RES";

/// The longest unique ID gearmand accepts in a submit (64 bytes; 65 gets
/// `ERROR ARGUMENT_TOO_LARGE`).
pub const MAX_UNIQUE_LEN: usize = 64;

/// Which way a packet travels, told by its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Magic {
    /// `\0REQ`: sent to the server.
    Req,
    /// `\0RES`: sent by the server.
    Res,
}

impl Magic {
    /// The four magic bytes.
    pub fn bytes(self) -> [u8; 4] {
        match self {
            Magic::Req => REQ_MAGIC,
            Magic::Res => RES_MAGIC,
        }
    }

    /// The magic these four bytes spell, if any.
    pub fn from_bytes(bytes: [u8; 4]) -> Option<Magic> {
        match bytes {
            REQ_MAGIC => Some(Magic::Req),
            RES_MAGIC => Some(Magic::Res),
            _ => None,
        }
    }
}

/// With which magic a packet type may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Only as a request (`\0REQ`).
    Request,
    /// Only as a response (`\0RES`).
    Response,
    /// Both: the `WORK_*` packets a worker sends and the server forwards.
    Both,
}

impl Direction {
    /// Whether a packet of this direction may carry `magic`.
    pub fn allows(self, magic: Magic) -> bool {
        matches!(
            (self, magic),
            (Direction::Both, _)
                | (Direction::Request, Magic::Req)
                | (Direction::Response, Magic::Res)
        )
    }
}

macro_rules! packet_types {
    ($($(#[$doc:meta])* $variant:ident = $num:literal, $name:literal, $dir:ident, $argc:literal;)*) => {
        /// A packet type: the number in bytes 4–7 of the header. Number 5
        /// is unused, 0 is gearmand's internal admin-text marker; neither is
        /// a variant.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum PacketType {
            $($(#[$doc])* $variant = $num,)*
        }

        impl PacketType {
            /// Every packet type, in number order.
            pub const ALL: &'static [PacketType] = &[$(PacketType::$variant,)*];

            /// The type with this number, if the protocol defines one.
            pub fn from_u32(number: u32) -> Option<PacketType> {
                match number {
                    $($num => Some(PacketType::$variant),)*
                    _ => None,
                }
            }

            /// The protocol's name, e.g. `SUBMIT_JOB_BG`.
            pub fn name(self) -> &'static str {
                match self {
                    $(PacketType::$variant => $name,)*
                }
            }

            /// With which magic this type may travel.
            pub fn direction(self) -> Direction {
                match self {
                    $(PacketType::$variant => Direction::$dir,)*
                }
            }

            /// How many arguments the body holds (the last one is the raw
            /// rest of the body; 0 means an empty body).
            pub fn argument_count(self) -> usize {
                match self {
                    $(PacketType::$variant => $argc,)*
                }
            }
        }
    };
}

packet_types! {
    /// `CAN_DO`: function.
    CanDo = 1, "CAN_DO", Request, 1;
    /// `CANT_DO`: function.
    CantDo = 2, "CANT_DO", Request, 1;
    /// `RESET_ABILITIES`.
    ResetAbilities = 3, "RESET_ABILITIES", Request, 0;
    /// `PRE_SLEEP`.
    PreSleep = 4, "PRE_SLEEP", Request, 0;
    /// `NOOP`.
    Noop = 6, "NOOP", Response, 0;
    /// `SUBMIT_JOB`: function, unique, data.
    SubmitJob = 7, "SUBMIT_JOB", Request, 3;
    /// `JOB_CREATED`: handle.
    JobCreated = 8, "JOB_CREATED", Response, 1;
    /// `GRAB_JOB`.
    GrabJob = 9, "GRAB_JOB", Request, 0;
    /// `NO_JOB`.
    NoJob = 10, "NO_JOB", Response, 0;
    /// `JOB_ASSIGN`: handle, function, data.
    JobAssign = 11, "JOB_ASSIGN", Response, 3;
    /// `WORK_STATUS`: handle, numerator, denominator.
    WorkStatus = 12, "WORK_STATUS", Both, 3;
    /// `WORK_COMPLETE`: handle, result.
    WorkComplete = 13, "WORK_COMPLETE", Both, 2;
    /// `WORK_FAIL`: handle.
    WorkFail = 14, "WORK_FAIL", Both, 1;
    /// `GET_STATUS`: handle.
    GetStatus = 15, "GET_STATUS", Request, 1;
    /// `ECHO_REQ`: data.
    EchoReq = 16, "ECHO_REQ", Request, 1;
    /// `ECHO_RES`: data.
    EchoRes = 17, "ECHO_RES", Response, 1;
    /// `SUBMIT_JOB_BG`: function, unique, data.
    SubmitJobBg = 18, "SUBMIT_JOB_BG", Request, 3;
    /// `ERROR`: code, text.
    Error = 19, "ERROR", Response, 2;
    /// `STATUS_RES`: handle, known, running, numerator, denominator.
    StatusRes = 20, "STATUS_RES", Response, 5;
    /// `SUBMIT_JOB_HIGH`: function, unique, data.
    SubmitJobHigh = 21, "SUBMIT_JOB_HIGH", Request, 3;
    /// `SET_CLIENT_ID`: id.
    SetClientId = 22, "SET_CLIENT_ID", Request, 1;
    /// `CAN_DO_TIMEOUT`: function, timeout in ms.
    CanDoTimeout = 23, "CAN_DO_TIMEOUT", Request, 2;
    /// `ALL_YOURS` (gearmand answers `ERROR INVALID_COMMAND`).
    AllYours = 24, "ALL_YOURS", Request, 0;
    /// `WORK_EXCEPTION`: handle, exception data.
    WorkException = 25, "WORK_EXCEPTION", Both, 2;
    /// `OPTION_REQ`: option name.
    OptionReq = 26, "OPTION_REQ", Request, 1;
    /// `OPTION_RES`: option name.
    OptionRes = 27, "OPTION_RES", Response, 1;
    /// `WORK_DATA`: handle, data.
    WorkData = 28, "WORK_DATA", Both, 2;
    /// `WORK_WARNING`: handle, data.
    WorkWarning = 29, "WORK_WARNING", Both, 2;
    /// `GRAB_JOB_UNIQ`.
    GrabJobUniq = 30, "GRAB_JOB_UNIQ", Request, 0;
    /// `JOB_ASSIGN_UNIQ`: handle, function, unique, data.
    JobAssignUniq = 31, "JOB_ASSIGN_UNIQ", Response, 4;
    /// `SUBMIT_JOB_HIGH_BG`: function, unique, data.
    SubmitJobHighBg = 32, "SUBMIT_JOB_HIGH_BG", Request, 3;
    /// `SUBMIT_JOB_LOW`: function, unique, data.
    SubmitJobLow = 33, "SUBMIT_JOB_LOW", Request, 3;
    /// `SUBMIT_JOB_LOW_BG`: function, unique, data.
    SubmitJobLowBg = 34, "SUBMIT_JOB_LOW_BG", Request, 3;
    /// `SUBMIT_JOB_SCHED`: function, unique, minute, hour, day of month,
    /// month, day of week, data (gearmand answers `ERROR INVALID_COMMAND`).
    SubmitJobSched = 35, "SUBMIT_JOB_SCHED", Request, 8;
    /// `SUBMIT_JOB_EPOCH`: function, unique, epoch seconds, data.
    SubmitJobEpoch = 36, "SUBMIT_JOB_EPOCH", Request, 4;
    /// `SUBMIT_REDUCE_JOB`: function, unique, reducer, aggregator, data
    /// (libgearman's four NUL-terminated fields, not the spec's three).
    SubmitReduceJob = 37, "SUBMIT_REDUCE_JOB", Request, 5;
    /// `SUBMIT_REDUCE_JOB_BACKGROUND`: as `SUBMIT_REDUCE_JOB`.
    SubmitReduceJobBackground = 38, "SUBMIT_REDUCE_JOB_BACKGROUND", Request, 5;
    /// `GRAB_JOB_ALL`.
    GrabJobAll = 39, "GRAB_JOB_ALL", Request, 0;
    /// `JOB_ASSIGN_ALL`: handle, function, unique, reducer, data.
    JobAssignAll = 40, "JOB_ASSIGN_ALL", Response, 5;
    /// `GET_STATUS_UNIQUE`: unique.
    GetStatusUnique = 41, "GET_STATUS_UNIQUE", Request, 1;
    /// `STATUS_RES_UNIQUE`: unique, known, running, numerator, denominator,
    /// waiting clients.
    StatusResUnique = 42, "STATUS_RES_UNIQUE", Response, 6;
}

impl PacketType {
    /// The type's number.
    pub fn number(self) -> u32 {
        self as u32
    }
}

impl std::fmt::Display for PacketType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The largest packet type number; a header with 0 or a larger number is
/// unknown (gearmand drops the connection).
pub const MAX_PACKET_TYPE: u32 = 42;

/// The priority a submit asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    /// `_HIGH`.
    High,
    /// No suffix.
    Normal,
    /// `_LOW`.
    Low,
}

/// One binary packet, request or response, with its arguments in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // the fields are the protocol's argument names
pub enum Packet {
    /// Worker registers a function.
    CanDo { function: Bytes },
    /// Worker unregisters a function.
    CantDo { function: Bytes },
    /// Worker unregisters every function.
    ResetAbilities,
    /// Worker is about to sleep until a `NOOP`.
    PreSleep,
    /// Wakes a sleeping worker.
    Noop,
    /// Foreground, normal priority.
    SubmitJob {
        function: Bytes,
        unique: Bytes,
        data: Bytes,
    },
    /// The answer to a submit.
    JobCreated { handle: Bytes },
    /// Asks for a job; answered with `JOB_ASSIGN` or `NO_JOB`.
    GrabJob,
    /// No job for this worker.
    NoJob,
    /// A job for a `GRAB_JOB`.
    JobAssign {
        handle: Bytes,
        function: Bytes,
        data: Bytes,
    },
    /// Progress; the numbers are decimal text, kept as sent.
    WorkStatus {
        handle: Bytes,
        numerator: Bytes,
        denominator: Bytes,
    },
    /// The job succeeded with this result.
    WorkComplete { handle: Bytes, data: Bytes },
    /// The job failed without a payload.
    WorkFail { handle: Bytes },
    /// Status by handle; answered with `STATUS_RES`.
    GetStatus { handle: Bytes },
    /// Ping; answered with `ECHO_RES` and the same bytes.
    EchoReq { data: Bytes },
    /// The answer to `ECHO_REQ`.
    EchoRes { data: Bytes },
    /// Background, normal priority.
    SubmitJobBg {
        function: Bytes,
        unique: Bytes,
        data: Bytes,
    },
    /// An error: a libgearman return-code name without `GEARMAN_`, and text.
    Error { code: Bytes, text: Bytes },
    /// The answer to `GET_STATUS`.
    StatusRes {
        handle: Bytes,
        known: bool,
        running: bool,
        numerator: Bytes,
        denominator: Bytes,
    },
    /// Foreground, high priority.
    SubmitJobHigh {
        function: Bytes,
        unique: Bytes,
        data: Bytes,
    },
    /// Names the connection (shown by the admin `workers` command).
    SetClientId { id: Bytes },
    /// `CAN_DO` with a per-job run-time limit in milliseconds.
    CanDoTimeout { function: Bytes, timeout_ms: u64 },
    /// Unimplemented in gearmand and the spec.
    AllYours,
    /// The job ended with an exception and this data.
    WorkException { handle: Bytes, data: Bytes },
    /// Sets a connection option (gearmand knows only `exceptions`).
    OptionReq { option: Bytes },
    /// The option was set (echoes its name).
    OptionRes { option: Bytes },
    /// A chunk of result data for foreground listeners.
    WorkData { handle: Bytes, data: Bytes },
    /// A warning for foreground listeners.
    WorkWarning { handle: Bytes, data: Bytes },
    /// Asks for a job; answered with `JOB_ASSIGN_UNIQ` or `NO_JOB`.
    GrabJobUniq,
    /// A job for a `GRAB_JOB_UNIQ` (or a `GRAB_JOB_ALL` without reducer).
    JobAssignUniq {
        handle: Bytes,
        function: Bytes,
        unique: Bytes,
        data: Bytes,
    },
    /// Background, high priority.
    SubmitJobHighBg {
        function: Bytes,
        unique: Bytes,
        data: Bytes,
    },
    /// Foreground, low priority.
    SubmitJobLow {
        function: Bytes,
        unique: Bytes,
        data: Bytes,
    },
    /// Background, low priority.
    SubmitJobLowBg {
        function: Bytes,
        unique: Bytes,
        data: Bytes,
    },
    /// Cron-style submit; the schedule fields are kept as sent.
    SubmitJobSched {
        function: Bytes,
        unique: Bytes,
        minute: Bytes,
        hour: Bytes,
        day_of_month: Bytes,
        month: Bytes,
        day_of_week: Bytes,
        data: Bytes,
    },
    /// Background job not to start before `epoch` (Unix seconds).
    SubmitJobEpoch {
        function: Bytes,
        unique: Bytes,
        epoch: u64,
        data: Bytes,
    },
    /// Foreground map/reduce submit.
    SubmitReduceJob {
        function: Bytes,
        unique: Bytes,
        reducer: Bytes,
        aggregator: Bytes,
        data: Bytes,
    },
    /// Background map/reduce submit.
    SubmitReduceJobBackground {
        function: Bytes,
        unique: Bytes,
        reducer: Bytes,
        aggregator: Bytes,
        data: Bytes,
    },
    /// Asks for a job; answered with `JOB_ASSIGN_ALL`, `JOB_ASSIGN_UNIQ` or
    /// `NO_JOB`.
    GrabJobAll,
    /// A job with a reducer for a `GRAB_JOB_ALL`.
    JobAssignAll {
        handle: Bytes,
        function: Bytes,
        unique: Bytes,
        reducer: Bytes,
        data: Bytes,
    },
    /// Status by unique ID (any function); answered with
    /// `STATUS_RES_UNIQUE`.
    GetStatusUnique { unique: Bytes },
    /// The answer to `GET_STATUS_UNIQUE`.
    StatusResUnique {
        unique: Bytes,
        known: bool,
        running: bool,
        numerator: Bytes,
        denominator: Bytes,
        waiting_clients: u64,
    },
}

/// The parts of any `SUBMIT_*` packet a server needs, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submit<'a> {
    /// The function (errand's kind).
    pub function: &'a Bytes,
    /// The unique ID (may be empty).
    pub unique: &'a Bytes,
    /// The workload.
    pub data: &'a Bytes,
    /// The priority asked for (`SUBMIT_JOB_EPOCH` is normal).
    pub priority: Priority,
    /// Whether the client only wants `JOB_CREATED` (the `_BG` variants,
    /// `SUBMIT_JOB_EPOCH`, `SUBMIT_REDUCE_JOB_BACKGROUND`).
    pub background: bool,
    /// `SUBMIT_JOB_EPOCH`'s start time, Unix seconds.
    pub epoch: Option<u64>,
    /// The reduce submits' reducer.
    pub reducer: Option<&'a Bytes>,
}

/// Why a body does not make a packet of its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Fewer NUL separators than the type needs, or a body on a type
    /// without arguments.
    #[error("{packet_type} takes {expected} argument(s), the body holds {found}")]
    WrongArgumentCount {
        /// The packet's type.
        packet_type: PacketType,
        /// Its argument count.
        expected: usize,
        /// The arguments found (for a type with no arguments, 1 when the
        /// body is not empty).
        found: usize,
    },
    /// A decimal or flag argument that does not parse.
    #[error("{packet_type}: argument {argument} is not a valid number")]
    InvalidNumber {
        /// The packet's type.
        packet_type: PacketType,
        /// The argument's name.
        argument: &'static str,
    },
}

/// Splits `body` into `count` arguments: `count - 1` NUL-terminated ones,
/// then the rest. `Err(arguments found)` when the body holds fewer
/// separators (or, for `count == 0`, is not empty).
fn split_args(body: &Bytes, count: usize) -> Result<Vec<Bytes>, usize> {
    if count == 0 {
        return if body.is_empty() {
            Ok(Vec::new())
        } else {
            Err(1)
        };
    }
    let mut args = Vec::with_capacity(count);
    let mut start = 0;
    for _ in 0..count - 1 {
        let rest = body.get(start..).unwrap_or_default();
        match rest.iter().position(|&b| b == 0) {
            Some(offset) => {
                args.push(body.slice(start..start + offset));
                start += offset + 1;
            }
            None => return Err(args.len() + 1),
        }
    }
    args.push(body.slice(start..));
    Ok(args)
}

/// Parses ASCII decimal digits (no sign, no spaces) into a `u64`.
pub fn parse_decimal(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let mut value: u64 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

fn parse_flag(bytes: &[u8]) -> Option<bool> {
    match bytes {
        b"0" => Some(false),
        b"1" => Some(true),
        _ => None,
    }
}

fn decimal(value: u64) -> Bytes {
    Bytes::from(value.to_string())
}

fn flag(value: bool) -> Bytes {
    Bytes::from_static(if value { b"1" } else { b"0" })
}

impl Packet {
    /// This packet's type.
    pub fn packet_type(&self) -> PacketType {
        use PacketType as T;
        match self {
            Packet::CanDo { .. } => T::CanDo,
            Packet::CantDo { .. } => T::CantDo,
            Packet::ResetAbilities => T::ResetAbilities,
            Packet::PreSleep => T::PreSleep,
            Packet::Noop => T::Noop,
            Packet::SubmitJob { .. } => T::SubmitJob,
            Packet::JobCreated { .. } => T::JobCreated,
            Packet::GrabJob => T::GrabJob,
            Packet::NoJob => T::NoJob,
            Packet::JobAssign { .. } => T::JobAssign,
            Packet::WorkStatus { .. } => T::WorkStatus,
            Packet::WorkComplete { .. } => T::WorkComplete,
            Packet::WorkFail { .. } => T::WorkFail,
            Packet::GetStatus { .. } => T::GetStatus,
            Packet::EchoReq { .. } => T::EchoReq,
            Packet::EchoRes { .. } => T::EchoRes,
            Packet::SubmitJobBg { .. } => T::SubmitJobBg,
            Packet::Error { .. } => T::Error,
            Packet::StatusRes { .. } => T::StatusRes,
            Packet::SubmitJobHigh { .. } => T::SubmitJobHigh,
            Packet::SetClientId { .. } => T::SetClientId,
            Packet::CanDoTimeout { .. } => T::CanDoTimeout,
            Packet::AllYours => T::AllYours,
            Packet::WorkException { .. } => T::WorkException,
            Packet::OptionReq { .. } => T::OptionReq,
            Packet::OptionRes { .. } => T::OptionRes,
            Packet::WorkData { .. } => T::WorkData,
            Packet::WorkWarning { .. } => T::WorkWarning,
            Packet::GrabJobUniq => T::GrabJobUniq,
            Packet::JobAssignUniq { .. } => T::JobAssignUniq,
            Packet::SubmitJobHighBg { .. } => T::SubmitJobHighBg,
            Packet::SubmitJobLow { .. } => T::SubmitJobLow,
            Packet::SubmitJobLowBg { .. } => T::SubmitJobLowBg,
            Packet::SubmitJobSched { .. } => T::SubmitJobSched,
            Packet::SubmitJobEpoch { .. } => T::SubmitJobEpoch,
            Packet::SubmitReduceJob { .. } => T::SubmitReduceJob,
            Packet::SubmitReduceJobBackground { .. } => T::SubmitReduceJobBackground,
            Packet::GrabJobAll => T::GrabJobAll,
            Packet::JobAssignAll { .. } => T::JobAssignAll,
            Packet::GetStatusUnique { .. } => T::GetStatusUnique,
            Packet::StatusResUnique { .. } => T::StatusResUnique,
        }
    }

    /// The arguments in wire order (numbers as decimal text, flags as `0`
    /// or `1`).
    pub fn arguments(&self) -> Vec<Bytes> {
        match self.clone() {
            Packet::ResetAbilities
            | Packet::PreSleep
            | Packet::Noop
            | Packet::GrabJob
            | Packet::NoJob
            | Packet::AllYours
            | Packet::GrabJobUniq
            | Packet::GrabJobAll => Vec::new(),
            Packet::CanDo { function } | Packet::CantDo { function } => vec![function],
            Packet::SubmitJob {
                function,
                unique,
                data,
            }
            | Packet::SubmitJobBg {
                function,
                unique,
                data,
            }
            | Packet::SubmitJobHigh {
                function,
                unique,
                data,
            }
            | Packet::SubmitJobHighBg {
                function,
                unique,
                data,
            }
            | Packet::SubmitJobLow {
                function,
                unique,
                data,
            }
            | Packet::SubmitJobLowBg {
                function,
                unique,
                data,
            } => vec![function, unique, data],
            Packet::JobCreated { handle }
            | Packet::WorkFail { handle }
            | Packet::GetStatus { handle } => vec![handle],
            Packet::JobAssign {
                handle,
                function,
                data,
            } => vec![handle, function, data],
            Packet::WorkStatus {
                handle,
                numerator,
                denominator,
            } => vec![handle, numerator, denominator],
            Packet::WorkComplete { handle, data }
            | Packet::WorkException { handle, data }
            | Packet::WorkData { handle, data }
            | Packet::WorkWarning { handle, data } => vec![handle, data],
            Packet::EchoReq { data } | Packet::EchoRes { data } => vec![data],
            Packet::Error { code, text } => vec![code, text],
            Packet::StatusRes {
                handle,
                known,
                running,
                numerator,
                denominator,
            } => vec![handle, flag(known), flag(running), numerator, denominator],
            Packet::SetClientId { id } => vec![id],
            Packet::CanDoTimeout {
                function,
                timeout_ms,
            } => vec![function, decimal(timeout_ms)],
            Packet::OptionReq { option } | Packet::OptionRes { option } => vec![option],
            Packet::JobAssignUniq {
                handle,
                function,
                unique,
                data,
            } => vec![handle, function, unique, data],
            Packet::SubmitJobSched {
                function,
                unique,
                minute,
                hour,
                day_of_month,
                month,
                day_of_week,
                data,
            } => vec![
                function,
                unique,
                minute,
                hour,
                day_of_month,
                month,
                day_of_week,
                data,
            ],
            Packet::SubmitJobEpoch {
                function,
                unique,
                epoch,
                data,
            } => vec![function, unique, decimal(epoch), data],
            Packet::SubmitReduceJob {
                function,
                unique,
                reducer,
                aggregator,
                data,
            }
            | Packet::SubmitReduceJobBackground {
                function,
                unique,
                reducer,
                aggregator,
                data,
            } => vec![function, unique, reducer, aggregator, data],
            Packet::JobAssignAll {
                handle,
                function,
                unique,
                reducer,
                data,
            } => vec![handle, function, unique, reducer, data],
            Packet::GetStatusUnique { unique } => vec![unique],
            Packet::StatusResUnique {
                unique,
                known,
                running,
                numerator,
                denominator,
                waiting_clients,
            } => vec![
                unique,
                flag(known),
                flag(running),
                numerator,
                denominator,
                decimal(waiting_clients),
            ],
        }
    }

    /// Decodes a body of type `packet_type` (the header already read and
    /// the whole body present).
    pub fn decode_body(packet_type: PacketType, body: &Bytes) -> Result<Packet, BodyError> {
        use PacketType as T;
        let expected = packet_type.argument_count();
        let args = split_args(body, expected).map_err(|found| BodyError::WrongArgumentCount {
            packet_type,
            expected,
            found,
        })?;
        let mut args = args.into_iter();
        // `split_args` returned exactly `expected` arguments; a missing one
        // would be a bug here, and reads as empty rather than panicking.
        let mut next = || args.next().unwrap_or_default();
        let number = |value: Bytes, argument: &'static str| {
            parse_decimal(&value).ok_or(BodyError::InvalidNumber {
                packet_type,
                argument,
            })
        };
        let boolean = |value: Bytes, argument: &'static str| {
            parse_flag(&value).ok_or(BodyError::InvalidNumber {
                packet_type,
                argument,
            })
        };
        Ok(match packet_type {
            T::CanDo => Packet::CanDo { function: next() },
            T::CantDo => Packet::CantDo { function: next() },
            T::ResetAbilities => Packet::ResetAbilities,
            T::PreSleep => Packet::PreSleep,
            T::Noop => Packet::Noop,
            T::SubmitJob => Packet::SubmitJob {
                function: next(),
                unique: next(),
                data: next(),
            },
            T::JobCreated => Packet::JobCreated { handle: next() },
            T::GrabJob => Packet::GrabJob,
            T::NoJob => Packet::NoJob,
            T::JobAssign => Packet::JobAssign {
                handle: next(),
                function: next(),
                data: next(),
            },
            T::WorkStatus => Packet::WorkStatus {
                handle: next(),
                numerator: next(),
                denominator: next(),
            },
            T::WorkComplete => Packet::WorkComplete {
                handle: next(),
                data: next(),
            },
            T::WorkFail => Packet::WorkFail { handle: next() },
            T::GetStatus => Packet::GetStatus { handle: next() },
            T::EchoReq => Packet::EchoReq { data: next() },
            T::EchoRes => Packet::EchoRes { data: next() },
            T::SubmitJobBg => Packet::SubmitJobBg {
                function: next(),
                unique: next(),
                data: next(),
            },
            T::Error => Packet::Error {
                code: next(),
                text: next(),
            },
            T::StatusRes => Packet::StatusRes {
                handle: next(),
                known: boolean(next(), "known")?,
                running: boolean(next(), "running")?,
                numerator: next(),
                denominator: next(),
            },
            T::SubmitJobHigh => Packet::SubmitJobHigh {
                function: next(),
                unique: next(),
                data: next(),
            },
            T::SetClientId => Packet::SetClientId { id: next() },
            T::CanDoTimeout => Packet::CanDoTimeout {
                function: next(),
                timeout_ms: number(next(), "timeout")?,
            },
            T::AllYours => Packet::AllYours,
            T::WorkException => Packet::WorkException {
                handle: next(),
                data: next(),
            },
            T::OptionReq => Packet::OptionReq { option: next() },
            T::OptionRes => Packet::OptionRes { option: next() },
            T::WorkData => Packet::WorkData {
                handle: next(),
                data: next(),
            },
            T::WorkWarning => Packet::WorkWarning {
                handle: next(),
                data: next(),
            },
            T::GrabJobUniq => Packet::GrabJobUniq,
            T::JobAssignUniq => Packet::JobAssignUniq {
                handle: next(),
                function: next(),
                unique: next(),
                data: next(),
            },
            T::SubmitJobHighBg => Packet::SubmitJobHighBg {
                function: next(),
                unique: next(),
                data: next(),
            },
            T::SubmitJobLow => Packet::SubmitJobLow {
                function: next(),
                unique: next(),
                data: next(),
            },
            T::SubmitJobLowBg => Packet::SubmitJobLowBg {
                function: next(),
                unique: next(),
                data: next(),
            },
            T::SubmitJobSched => Packet::SubmitJobSched {
                function: next(),
                unique: next(),
                minute: next(),
                hour: next(),
                day_of_month: next(),
                month: next(),
                day_of_week: next(),
                data: next(),
            },
            T::SubmitJobEpoch => Packet::SubmitJobEpoch {
                function: next(),
                unique: next(),
                epoch: number(next(), "epoch")?,
                data: next(),
            },
            T::SubmitReduceJob => Packet::SubmitReduceJob {
                function: next(),
                unique: next(),
                reducer: next(),
                aggregator: next(),
                data: next(),
            },
            T::SubmitReduceJobBackground => Packet::SubmitReduceJobBackground {
                function: next(),
                unique: next(),
                reducer: next(),
                aggregator: next(),
                data: next(),
            },
            T::GrabJobAll => Packet::GrabJobAll,
            T::JobAssignAll => Packet::JobAssignAll {
                handle: next(),
                function: next(),
                unique: next(),
                reducer: next(),
                data: next(),
            },
            T::GetStatusUnique => Packet::GetStatusUnique { unique: next() },
            T::StatusResUnique => Packet::StatusResUnique {
                unique: next(),
                known: boolean(next(), "known")?,
                running: boolean(next(), "running")?,
                numerator: next(),
                denominator: next(),
                waiting_clients: number(next(), "waiting clients")?,
            },
        })
    }

    /// Appends the whole packet (header and body) with `magic` to `dst`.
    /// Fails, writing nothing, when an argument other than the last holds
    /// a NUL byte (it would shift every later argument) or the body does
    /// not fit the 32-bit size field. The direction is not checked here;
    /// [`crate::codec::GearmanCodec`] checks it.
    pub fn encode(&self, magic: Magic, dst: &mut BytesMut) -> Result<(), EncodeBodyError> {
        let packet_type = self.packet_type();
        let args = self.arguments();
        let last = args.len().saturating_sub(1);
        let mut size: usize = last; // the separators
        for (index, arg) in args.iter().enumerate() {
            if index < last && arg.contains(&0) {
                return Err(EncodeBodyError::NulInArgument { packet_type, index });
            }
            size = size.saturating_add(arg.len());
        }
        let size32 =
            u32::try_from(size).map_err(|_| EncodeBodyError::TooLarge { packet_type, size })?;
        dst.reserve(HEADER_LEN + size);
        dst.put_slice(&magic.bytes());
        dst.put_u32(packet_type.number());
        dst.put_u32(size32);
        for (index, arg) in args.iter().enumerate() {
            dst.put_slice(arg);
            if index < last {
                dst.put_u8(0);
            }
        }
        Ok(())
    }

    /// The packet as bytes with `magic` (see [`Packet::encode`]).
    pub fn to_bytes(&self, magic: Magic) -> Result<Bytes, EncodeBodyError> {
        let mut buf = BytesMut::new();
        self.encode(magic, &mut buf)?;
        Ok(buf.freeze())
    }

    /// The submit fields when this is a `SUBMIT_*` packet (including
    /// `SUBMIT_JOB_EPOCH` and the reduce submits, excluding the
    /// unsupported `SUBMIT_JOB_SCHED`).
    pub fn as_submit(&self) -> Option<Submit<'_>> {
        let plain = |function, unique, data, priority, background| Submit {
            function,
            unique,
            data,
            priority,
            background,
            epoch: None,
            reducer: None,
        };
        Some(match self {
            Packet::SubmitJob {
                function,
                unique,
                data,
            } => plain(function, unique, data, Priority::Normal, false),
            Packet::SubmitJobBg {
                function,
                unique,
                data,
            } => plain(function, unique, data, Priority::Normal, true),
            Packet::SubmitJobHigh {
                function,
                unique,
                data,
            } => plain(function, unique, data, Priority::High, false),
            Packet::SubmitJobHighBg {
                function,
                unique,
                data,
            } => plain(function, unique, data, Priority::High, true),
            Packet::SubmitJobLow {
                function,
                unique,
                data,
            } => plain(function, unique, data, Priority::Low, false),
            Packet::SubmitJobLowBg {
                function,
                unique,
                data,
            } => plain(function, unique, data, Priority::Low, true),
            Packet::SubmitJobEpoch {
                function,
                unique,
                epoch,
                data,
            } => Submit {
                epoch: Some(*epoch),
                ..plain(function, unique, data, Priority::Normal, true)
            },
            Packet::SubmitReduceJob {
                function,
                unique,
                reducer,
                data,
                ..
            } => Submit {
                reducer: Some(reducer),
                ..plain(function, unique, data, Priority::Normal, false)
            },
            Packet::SubmitReduceJobBackground {
                function,
                unique,
                reducer,
                data,
                ..
            } => Submit {
                reducer: Some(reducer),
                ..plain(function, unique, data, Priority::Normal, true)
            },
            _ => return None,
        })
    }

    /// The unique argument of a submit (all `SUBMIT_*` types, including
    /// `SUBMIT_JOB_SCHED`), for the length check.
    pub(crate) fn submitted_unique(&self) -> Option<&Bytes> {
        match self {
            Packet::SubmitJobSched { unique, .. } => Some(unique),
            other => other.as_submit().map(|s| s.unique),
        }
    }
}

/// Why a packet cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeBodyError {
    /// An argument before the last holds a NUL byte.
    #[error("{packet_type}: argument {index} holds a NUL byte")]
    NulInArgument {
        /// The packet's type.
        packet_type: PacketType,
        /// The argument's position, from 0.
        index: usize,
    },
    /// The body is longer than the 32-bit size field allows.
    #[error("{packet_type}: a body of {size} bytes does not fit the size field")]
    TooLarge {
        /// The packet's type.
        packet_type: PacketType,
        /// The body's size.
        size: usize,
    },
}
