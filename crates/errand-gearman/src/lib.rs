//! errand-gearman: the Gearman protocol's wire layer, so unmodified Gearman
//! clients and workers (PHP's `gearman` extension, the `gearman` CLI,
//! `gearadmin`) can talk to errand (issue 14).
//!
//! This crate owns **the wire, not the semantics**: how bytes become
//! packets and admin commands and back, and what malformed input means for
//! the connection. It owns no socket, no job, no store: which job a grab
//! gets, coalescing, listeners and retries are the listener's, which will
//! build on this crate. The facts come from the fact sheet
//! (`shared/gearman-protocol.md`: the spec, gearmand 1.1.20's behaviour and
//! what the real tools send).
//!
//! * [`packet`]: the magic, [`PacketType`] (numbers, names, directions,
//!   argument counts) and [`Packet`], one typed variant per type, with body
//!   encoding and decoding.
//! * [`codec`]: [`GearmanCodec`], a `tokio_util` decoder and encoder for
//!   `Framed`: incremental decoding, binary/text detection, the size limit
//!   checked before anything is buffered, and the error policy
//!   ([`DecodeError::action`]: reply with which `ERROR`, or close).
//! * [`admin`]: the admin text commands ([`AdminCommand`]) and gearmand's
//!   exact reply formats.
//! * [`handle`]: [`JobHandle`], `H:<host>:<number>`.
//!
//! Nothing here panics on any input.

pub mod admin;
pub mod codec;
pub mod handle;
pub mod packet;

pub use admin::AdminCommand;
pub use codec::{
    Action, CodecConfig, DecodeError, EncodeError, ErrorReply, Frame, GearmanCodec, Outgoing, Role,
};
pub use handle::JobHandle;
pub use packet::{Magic, Packet, PacketType, Priority};
