//! The byte stream: [`GearmanCodec`] cuts a connection's bytes into frames
//! (binary packets, or admin text lines on the server side) and writes
//! packets and admin replies, as a `tokio_util` [`Decoder`] and
//! [`Encoder`] so the listener can wrap a socket in `Framed`.
//!
//! It also owns the wire-level error policy: what each malformed input
//! means for the connection ([`Action`]), following what gearmand 1.1.20
//! does (see `docs/decisions/0031-gearman-wire-errors.md` for the cases
//! the fact sheet leaves open):
//!
//! | Input | Result | Action |
//! |-------|--------|--------|
//! | magic neither `\0REQ` nor `\0RES` | `Err(BadMagic)` | close, no reply |
//! | type 0 or above 42 | `Err(UnknownType)` | close, no reply |
//! | admin line longer than the limit | `Err(AdminLineTooLong)` | close |
//! | `\0RES` on a request (or `\0REQ` on a response) | `Rejected(WrongMagic)` | `ERROR INVALID_MAGIC "Request magic expected"` |
//! | type 5, a response type sent as a request (or the reverse) | `Rejected(UnexpectedType)` | `ERROR INVALID_COMMAND "Command not expected"` |
//! | size field above the maximum | `Rejected(Oversized)`, the body is skipped unread | `ERROR ARGUMENT_TOO_LARGE "Packet too large"` |
//! | unique longer than 64 bytes in a submit | `Rejected(ArgumentTooLarge)` | `ERROR ARGUMENT_TOO_LARGE "Unique value too large"` |
//! | too few arguments, or a bad number | `Rejected(Malformed)` | `ERROR INVALID_PACKET "..."` |
//!
//! Fatal errors come back as `Err` (a `Framed` stream ends after one);
//! a rejected packet, whose bytes were consumed so the stream is still in
//! step, comes back as `Ok(Some(Frame::Rejected(..)))`, and the listener
//! answers it with [`DecodeError::action`]'s reply in its place among the
//! replies (libgearman pairs the n-th `JOB_CREATED` or `ERROR` with the
//! n-th submit).
//!
//! `ALL_YOURS` and `SUBMIT_JOB_SCHED` decode as packets: refusing them
//! (`ERROR INVALID_COMMAND`, [`ErrorReply::command_not_expected`]) is the
//! listener's call.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::admin::{self, AdminCommand};
use crate::packet::{
    BodyError, EncodeBodyError, HEADER_LEN, MAX_PACKET_TYPE, MAX_UNIQUE_LEN, Magic, Packet,
    PacketType,
};

/// errand's default payload limit: the HTTP API's default `body_limit`
/// (1 MiB).
pub const DEFAULT_PAYLOAD_LIMIT: u32 = 1024 * 1024;

/// Room for the arguments besides the data in a packet whose data is at
/// the payload limit: a function name (libgearman allows 512 bytes), a
/// unique (64), a handle (64), a reducer and the separators, rounded up.
pub const ARGUMENT_HEADROOM: u32 = 4096;

/// The default longest admin text line, `\n` included.
pub const DEFAULT_MAX_ADMIN_LINE: usize = 8192;

/// The most the decoder reserves ahead of a body's bytes.
const RESERVE_STEP: usize = 64 * 1024;

/// Which end of a connection the codec serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The server: decodes requests (`\0REQ`) and admin text lines,
    /// encodes responses (`\0RES`) and admin replies.
    Server,
    /// A client or worker: decodes responses, encodes requests. No admin
    /// text detection. For tests and tools.
    Client,
}

impl Role {
    /// The magic this role expects to read.
    pub fn incoming(self) -> Magic {
        match self {
            Role::Server => Magic::Req,
            Role::Client => Magic::Res,
        }
    }

    /// The magic this role writes.
    pub fn outgoing(self) -> Magic {
        match self {
            Role::Server => Magic::Res,
            Role::Client => Magic::Req,
        }
    }
}

/// The codec's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecConfig {
    /// The largest body accepted (the size field, header excluded).
    pub max_body: u32,
    /// The longest admin text line, `\n` included.
    pub max_admin_line: usize,
}

impl CodecConfig {
    /// Limits for data arguments up to `payload_limit` bytes: the body may
    /// be [`ARGUMENT_HEADROOM`] larger, for the other arguments.
    pub fn for_payload_limit(payload_limit: u32) -> CodecConfig {
        CodecConfig {
            max_body: payload_limit.saturating_add(ARGUMENT_HEADROOM),
            max_admin_line: DEFAULT_MAX_ADMIN_LINE,
        }
    }
}

impl Default for CodecConfig {
    /// [`CodecConfig::for_payload_limit`] of [`DEFAULT_PAYLOAD_LIMIT`].
    fn default() -> Self {
        CodecConfig::for_payload_limit(DEFAULT_PAYLOAD_LIMIT)
    }
}

/// One decoded unit of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A well-formed packet of the expected direction.
    Packet(Packet),
    /// An admin text command (server role; the first byte was not NUL).
    Admin(AdminCommand),
    /// A packet whose bytes were consumed but which is not acceptable:
    /// answer with [`DecodeError::action`]'s reply and go on.
    Rejected(DecodeError),
}

/// An `ERROR` packet to send: a code and a text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorReply {
    /// The code, a libgearman return-code name without `GEARMAN_`.
    pub code: &'static str,
    /// The human-readable text.
    pub text: String,
}

impl ErrorReply {
    /// `ERROR INVALID_COMMAND "Command not expected"`: a type the server
    /// does not take (`ALL_YOURS`, `SUBMIT_JOB_SCHED`, a response type).
    pub fn command_not_expected() -> ErrorReply {
        ErrorReply {
            code: "INVALID_COMMAND",
            text: "Command not expected".into(),
        }
    }

    /// `ERROR INVALID_MAGIC "Request magic expected"`.
    pub fn request_magic_expected() -> ErrorReply {
        ErrorReply {
            code: "INVALID_MAGIC",
            text: "Request magic expected".into(),
        }
    }

    /// `ERROR ARGUMENT_TOO_LARGE "Unique value too large"`.
    pub fn unique_too_large() -> ErrorReply {
        ErrorReply {
            code: "ARGUMENT_TOO_LARGE",
            text: "Unique value too large".into(),
        }
    }

    /// `ERROR UNKNOWN_OPTION` for an `OPTION_REQ` other than `exceptions`.
    pub fn unknown_option() -> ErrorReply {
        ErrorReply {
            code: "UNKNOWN_OPTION",
            text: "Unknown option".into(),
        }
    }

    /// `ERROR JOB_NOT_FOUND`: a `WORK_*` for a job this connection does not
    /// hold.
    pub fn job_not_found() -> ErrorReply {
        ErrorReply {
            code: "JOB_NOT_FOUND",
            text: "Job not found".into(),
        }
    }

    /// `ERROR QUEUE_ERROR "Job queue is full"` (over `maxqueue`).
    pub fn queue_full() -> ErrorReply {
        ErrorReply {
            code: "QUEUE_ERROR",
            text: "Job queue is full".into(),
        }
    }

    /// The `ERROR` packet.
    pub fn to_packet(&self) -> Packet {
        Packet::Error {
            code: Bytes::from_static(self.code.as_bytes()),
            text: Bytes::from(self.text.clone()),
        }
    }
}

/// What the listener should do about a [`DecodeError`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send this `ERROR` packet in the packet's place and keep reading.
    Reply(ErrorReply),
    /// Close the connection without a reply (the stream cannot be resynced,
    /// or gearmand drops it).
    Close,
}

/// What is wrong with the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The first four bytes are neither `\0REQ` nor `\0RES`.
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 4]),
    /// Packet type 0 or above 42.
    #[error("unknown packet type {0}")]
    UnknownType(u32),
    /// An admin line with no `\n` within the limit.
    #[error("admin text line longer than {max} bytes")]
    AdminLineTooLong {
        /// The limit.
        max: usize,
    },
    /// The other side's magic: `\0RES` on a request (or `\0REQ` on a
    /// response).
    #[error("{packet_type} packet with {found:?} magic")]
    WrongMagic {
        /// The packet's type number.
        packet_type: u32,
        /// The magic it carried.
        found: Magic,
    },
    /// A type not valid in this direction (or the unused number 5).
    #[error("packet type {0} not expected in this direction")]
    UnexpectedType(u32),
    /// A size field above the maximum; the body is skipped, not read.
    #[error("packet body of {size} bytes exceeds the maximum of {max}")]
    Oversized {
        /// The packet's type number.
        packet_type: u32,
        /// The size field.
        size: u32,
        /// The limit.
        max: u32,
    },
    /// An argument over a size gearmand enforces (a unique over 64 bytes).
    #[error("{packet_type}: {argument} of {len} bytes exceeds {max}")]
    ArgumentTooLarge {
        /// The packet's type.
        packet_type: PacketType,
        /// The argument's name.
        argument: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The body does not make a packet of its type.
    #[error(transparent)]
    Malformed(#[from] BodyError),
    /// Reading the connection failed (or it ended inside a frame).
    #[error("{message}")]
    Io {
        /// The I/O error's kind.
        kind: std::io::ErrorKind,
        /// Its message.
        message: String,
    },
}

impl From<std::io::Error> for DecodeError {
    fn from(error: std::io::Error) -> Self {
        DecodeError::Io {
            kind: error.kind(),
            message: error.to_string(),
        }
    }
}

impl DecodeError {
    /// What the listener should do.
    pub fn action(&self) -> Action {
        match self {
            DecodeError::BadMagic(_)
            | DecodeError::UnknownType(_)
            | DecodeError::AdminLineTooLong { .. }
            | DecodeError::Io { .. } => Action::Close,
            DecodeError::WrongMagic { .. } => Action::Reply(ErrorReply::request_magic_expected()),
            DecodeError::UnexpectedType(_) => Action::Reply(ErrorReply::command_not_expected()),
            DecodeError::Oversized { .. } => Action::Reply(ErrorReply {
                code: "ARGUMENT_TOO_LARGE",
                text: "Packet too large".into(),
            }),
            DecodeError::ArgumentTooLarge { .. } => Action::Reply(ErrorReply::unique_too_large()),
            DecodeError::Malformed(e) => Action::Reply(ErrorReply {
                code: "INVALID_PACKET",
                text: match e {
                    BodyError::WrongArgumentCount { .. } => "Wrong number of arguments".into(),
                    BodyError::InvalidNumber { .. } => "Invalid number in argument".into(),
                },
            }),
        }
    }

    /// Whether the connection cannot go on ([`Action::Close`]).
    pub fn is_fatal(&self) -> bool {
        self.action() == Action::Close
    }
}

/// Why the codec could not write a frame.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The packet cannot be laid out (NUL in an inner argument, too long).
    #[error(transparent)]
    Body(#[from] EncodeBodyError),
    /// This role does not send this type (e.g. a server writing
    /// `SUBMIT_JOB`).
    #[error("{0} is not sent in this direction")]
    WrongDirection(PacketType),
    /// Admin text from a client-role codec.
    #[error("only the server writes admin text")]
    TextFromClient,
    /// Writing the connection failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Something to write.
#[derive(Debug, Clone, PartialEq, Eq)]
// Moved once per write and packets are the common case: boxing them would
// cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub enum Outgoing {
    /// A binary packet, written with the role's magic.
    Packet(Packet),
    /// Admin reply bytes, written as they are (see [`crate::admin`]'s
    /// formatters).
    Text(Bytes),
}

impl From<Packet> for Outgoing {
    fn from(packet: Packet) -> Self {
        Outgoing::Packet(packet)
    }
}

/// The Gearman codec for one connection.
#[derive(Debug, Clone)]
pub struct GearmanCodec {
    role: Role,
    config: CodecConfig,
    /// Bytes of an oversized body still to drop.
    skip: u64,
}

impl GearmanCodec {
    /// A codec for `role` with `config`'s limits.
    pub fn new(role: Role, config: CodecConfig) -> GearmanCodec {
        GearmanCodec {
            role,
            config,
            skip: 0,
        }
    }

    /// The server side, default limits.
    pub fn server() -> GearmanCodec {
        GearmanCodec::new(Role::Server, CodecConfig::default())
    }

    /// The client or worker side, default limits.
    pub fn client() -> GearmanCodec {
        GearmanCodec::new(Role::Client, CodecConfig::default())
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The limits.
    pub fn config(&self) -> CodecConfig {
        self.config
    }

    fn decode_admin(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        let max = self.config.max_admin_line;
        let window = &src[..src.len().min(max)];
        match window.iter().position(|&b| b == b'\n') {
            Some(end) => {
                let line = src.split_to(end + 1);
                let mut line = &line[..end];
                if let [rest @ .., b'\r'] = line {
                    line = rest;
                }
                Ok(Some(Frame::Admin(admin::parse_command(line))))
            }
            None if src.len() >= max => Err(DecodeError::AdminLineTooLong { max }),
            None => Ok(None),
        }
    }
}

impl Decoder for GearmanCodec {
    type Item = Frame;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        if self.skip > 0 {
            let n = usize::try_from(self.skip)
                .unwrap_or(usize::MAX)
                .min(src.len());
            src.advance(n);
            self.skip -= n as u64;
            if self.skip > 0 {
                return Ok(None);
            }
        }
        let Some(&first) = src.first() else {
            return Ok(None);
        };
        if first != 0 && self.role == Role::Server {
            return self.decode_admin(src);
        }
        let Some(header) = src.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let mut header: &[u8] = header;
        let mut magic = [0u8; 4];
        header.copy_to_slice(&mut magic);
        let number = header.get_u32();
        let size = header.get_u32();
        let Some(magic) = Magic::from_bytes(magic) else {
            return Err(DecodeError::BadMagic(magic));
        };
        if number == 0 || number > MAX_PACKET_TYPE {
            return Err(DecodeError::UnknownType(number));
        }
        if size > self.config.max_body {
            src.advance(HEADER_LEN);
            self.skip = u64::from(size);
            // Drop what already arrived of the body.
            let n = usize::try_from(size).unwrap_or(usize::MAX).min(src.len());
            src.advance(n);
            self.skip -= n as u64;
            return Ok(Some(Frame::Rejected(DecodeError::Oversized {
                packet_type: number,
                size,
                max: self.config.max_body,
            })));
        }
        // `size <= max_body`, a u32, so this fits a usize on 32- and
        // 64-bit targets.
        let total = HEADER_LEN + size as usize;
        if src.len() < total {
            // Grow towards the body in steps, so a header alone (an idle or
            // hostile peer) pins at most `RESERVE_STEP` more bytes.
            src.reserve((total - src.len()).min(RESERVE_STEP));
            return Ok(None);
        }
        let frame = src.split_to(total).freeze();
        let body = frame.slice(HEADER_LEN..);
        let expected = self.role.incoming();
        if magic != expected {
            return Ok(Some(Frame::Rejected(DecodeError::WrongMagic {
                packet_type: number,
                found: magic,
            })));
        }
        let packet_type = match PacketType::from_u32(number) {
            Some(t) if t.direction().allows(expected) => t,
            _ => return Ok(Some(Frame::Rejected(DecodeError::UnexpectedType(number)))),
        };
        let packet = match Packet::decode_body(packet_type, &body) {
            Ok(packet) => packet,
            Err(e) => return Ok(Some(Frame::Rejected(e.into()))),
        };
        if self.role == Role::Server
            && let Some(unique) = packet.submitted_unique()
            && unique.len() > MAX_UNIQUE_LEN
        {
            return Ok(Some(Frame::Rejected(DecodeError::ArgumentTooLarge {
                packet_type,
                argument: "unique",
                len: unique.len(),
                max: MAX_UNIQUE_LEN,
            })));
        }
        Ok(Some(Frame::Packet(packet)))
    }
}

impl Encoder<Outgoing> for GearmanCodec {
    type Error = EncodeError;

    fn encode(&mut self, item: Outgoing, dst: &mut BytesMut) -> Result<(), EncodeError> {
        match item {
            Outgoing::Packet(packet) => self.encode(&packet, dst),
            Outgoing::Text(text) => {
                if self.role != Role::Server {
                    return Err(EncodeError::TextFromClient);
                }
                dst.extend_from_slice(&text);
                Ok(())
            }
        }
    }
}

impl Encoder<Packet> for GearmanCodec {
    type Error = EncodeError;

    fn encode(&mut self, item: Packet, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.encode(&item, dst)
    }
}

impl Encoder<&Packet> for GearmanCodec {
    type Error = EncodeError;

    fn encode(&mut self, item: &Packet, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let magic = self.role.outgoing();
        let packet_type = item.packet_type();
        if !packet_type.direction().allows(magic) {
            return Err(EncodeError::WrongDirection(packet_type));
        }
        item.encode(magic, dst)?;
        Ok(())
    }
}
