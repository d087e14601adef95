//! The codec against the fact sheet: every packet type round-trips, a
//! stream decodes the same whatever its splits, malformed input gets the
//! error and action gearmand's behaviour calls for, the packets the real
//! tools send (written out byte by byte) decode as expected, and no input
//! panics.

use bytes::{BufMut, Bytes, BytesMut};
use errand_gearman::codec::{CodecConfig, DecodeError, EncodeError, Outgoing, Role};
use errand_gearman::packet::{BodyError, Direction, EncodeBodyError};
use errand_gearman::{
    Action, AdminCommand, ErrorReply, Frame, GearmanCodec, Magic, Packet, PacketType, Priority,
};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

fn b(s: &[u8]) -> Bytes {
    Bytes::copy_from_slice(s)
}

/// One packet of every type, with NULs in every data argument.
fn samples() -> Vec<Packet> {
    let data = || b(b"da\0ta\0");
    vec![
        Packet::CanDo {
            function: b(b"reverse"),
        },
        Packet::CantDo {
            function: b(b"reverse"),
        },
        Packet::ResetAbilities,
        Packet::PreSleep,
        Packet::Noop,
        Packet::SubmitJob {
            function: b(b"f"),
            unique: b(b"u"),
            data: data(),
        },
        Packet::JobCreated {
            handle: b(b"H:box:1"),
        },
        Packet::GrabJob,
        Packet::NoJob,
        Packet::JobAssign {
            handle: b(b"H:box:1"),
            function: b(b"f"),
            data: data(),
        },
        Packet::WorkStatus {
            handle: b(b"H:box:1"),
            numerator: b(b"1"),
            denominator: b(b"3"),
        },
        Packet::WorkComplete {
            handle: b(b"H:box:1"),
            data: data(),
        },
        Packet::WorkFail {
            handle: b(b"H:box:1"),
        },
        Packet::GetStatus {
            handle: b(b"H:box:1"),
        },
        Packet::EchoReq { data: data() },
        Packet::EchoRes { data: data() },
        Packet::SubmitJobBg {
            function: b(b"f"),
            unique: b(b""),
            data: data(),
        },
        Packet::Error {
            code: b(b"INVALID_COMMAND"),
            text: b(b"Command not expected"),
        },
        Packet::StatusRes {
            handle: b(b"H:box:1"),
            known: true,
            running: false,
            numerator: b(b"0"),
            denominator: b(b"0"),
        },
        Packet::SubmitJobHigh {
            function: b(b"f"),
            unique: b(b"u"),
            data: data(),
        },
        Packet::SetClientId { id: b(b"worker-1") },
        Packet::CanDoTimeout {
            function: b(b"f"),
            timeout_ms: 1500,
        },
        Packet::AllYours,
        Packet::WorkException {
            handle: b(b"H:box:1"),
            data: data(),
        },
        Packet::OptionReq {
            option: b(b"exceptions"),
        },
        Packet::OptionRes {
            option: b(b"exceptions"),
        },
        Packet::WorkData {
            handle: b(b"H:box:1"),
            data: data(),
        },
        Packet::WorkWarning {
            handle: b(b"H:box:1"),
            data: data(),
        },
        Packet::GrabJobUniq,
        Packet::JobAssignUniq {
            handle: b(b"H:box:1"),
            function: b(b"f"),
            unique: b(b"u"),
            data: data(),
        },
        Packet::SubmitJobHighBg {
            function: b(b"f"),
            unique: b(b"u"),
            data: data(),
        },
        Packet::SubmitJobLow {
            function: b(b"f"),
            unique: b(b"u"),
            data: data(),
        },
        Packet::SubmitJobLowBg {
            function: b(b"f"),
            unique: b(b"u"),
            data: data(),
        },
        Packet::SubmitJobSched {
            function: b(b"f"),
            unique: b(b"u"),
            minute: b(b"5"),
            hour: b(b"*"),
            day_of_month: b(b"1"),
            month: b(b"12"),
            day_of_week: b(b""),
            data: data(),
        },
        Packet::SubmitJobEpoch {
            function: b(b"f"),
            unique: b(b"u"),
            epoch: 1_767_225_600,
            data: data(),
        },
        Packet::SubmitReduceJob {
            function: b(b"f"),
            unique: b(b"u"),
            reducer: b(b"r"),
            aggregator: b(b""),
            data: data(),
        },
        Packet::SubmitReduceJobBackground {
            function: b(b"f"),
            unique: b(b"u"),
            reducer: b(b"r"),
            aggregator: b(b""),
            data: data(),
        },
        Packet::GrabJobAll,
        Packet::JobAssignAll {
            handle: b(b"H:box:1"),
            function: b(b"f"),
            unique: b(b"u"),
            reducer: b(b"r"),
            data: data(),
        },
        Packet::GetStatusUnique { unique: b(b"u") },
        Packet::StatusResUnique {
            unique: b(b"u"),
            known: true,
            running: true,
            numerator: b(b"2"),
            denominator: b(b"4"),
            waiting_clients: 3,
        },
    ]
}

fn encode(role: Role, packet: &Packet) -> BytesMut {
    let mut buf = BytesMut::new();
    GearmanCodec::new(role, CodecConfig::default())
        .encode(packet, &mut buf)
        .unwrap();
    buf
}

/// Decodes everything in `buf`, stopping at the first `Err`.
fn decode_all(codec: &mut GearmanCodec, buf: &mut BytesMut) -> Result<Vec<Frame>, DecodeError> {
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode(buf)? {
        frames.push(frame);
    }
    Ok(frames)
}

fn header(magic: &[u8; 4], packet_type: u32, size: u32) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_slice(magic);
    buf.put_u32(packet_type);
    buf.put_u32(size);
    buf
}

fn raw(magic: &[u8; 4], packet_type: u32, body: &[u8]) -> BytesMut {
    let mut buf = header(magic, packet_type, body.len() as u32);
    buf.put_slice(body);
    buf
}

fn decode_one(role: Role, mut buf: BytesMut) -> Result<Option<Frame>, DecodeError> {
    GearmanCodec::new(role, CodecConfig::default()).decode(&mut buf)
}

fn rejected(role: Role, buf: BytesMut) -> DecodeError {
    match decode_one(role, buf) {
        Ok(Some(Frame::Rejected(e))) => e,
        other => panic!("expected a rejected frame, got {other:?}"),
    }
}

#[test]
fn the_samples_cover_every_packet_type() {
    let types: Vec<PacketType> = samples().iter().map(Packet::packet_type).collect();
    assert_eq!(types, PacketType::ALL);
    assert_eq!(PacketType::ALL.len(), 41, "1..=42 without 5");
    for t in PacketType::ALL {
        assert_eq!(PacketType::from_u32(t.number()), Some(*t));
    }
    assert_eq!(PacketType::from_u32(0), None);
    assert_eq!(PacketType::from_u32(5), None);
    assert_eq!(PacketType::from_u32(43), None);
}

#[test]
fn every_packet_type_round_trips_in_each_direction_it_travels() {
    for packet in samples() {
        let direction = packet.packet_type().direction();
        if direction.allows(Magic::Req) {
            let mut buf = encode(Role::Client, &packet);
            assert_eq!(&buf[..4], b"\0REQ");
            let mut server = GearmanCodec::server();
            assert_eq!(
                decode_all(&mut server, &mut buf).unwrap(),
                vec![Frame::Packet(packet.clone())],
                "{packet:?} as a request"
            );
            assert!(buf.is_empty());
        }
        if direction.allows(Magic::Res) {
            let mut buf = encode(Role::Server, &packet);
            assert_eq!(&buf[..4], b"\0RES");
            let mut client = GearmanCodec::client();
            assert_eq!(
                decode_all(&mut client, &mut buf).unwrap(),
                vec![Frame::Packet(packet.clone())],
                "{packet:?} as a response"
            );
        }
    }
}

#[test]
fn the_both_way_types_are_the_work_packets() {
    let both: Vec<PacketType> = PacketType::ALL
        .iter()
        .copied()
        .filter(|t| t.direction() == Direction::Both)
        .collect();
    assert_eq!(
        both,
        [
            PacketType::WorkStatus,
            PacketType::WorkComplete,
            PacketType::WorkFail,
            PacketType::WorkException,
            PacketType::WorkData,
            PacketType::WorkWarning,
        ]
    );
}

#[test]
fn a_stream_fed_byte_by_byte_decodes_to_the_same_frames() {
    let requests: Vec<Packet> = samples()
        .into_iter()
        .filter(|p| p.packet_type().direction().allows(Magic::Req))
        .collect();
    let mut stream = BytesMut::new();
    let mut expected = Vec::new();
    for (i, packet) in requests.iter().enumerate() {
        stream.extend_from_slice(&encode(Role::Client, packet));
        expected.push(Frame::Packet(packet.clone()));
        if i % 5 == 0 {
            // Text and binary may alternate on one connection.
            stream.extend_from_slice(b"status\r\n");
            expected.push(Frame::Admin(AdminCommand::Status));
        }
    }
    let mut codec = GearmanCodec::server();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for &byte in stream.iter() {
        buf.put_u8(byte);
        frames.extend(decode_all(&mut codec, &mut buf).unwrap());
    }
    assert_eq!(frames, expected);
    assert!(buf.is_empty());
}

#[test]
fn the_data_argument_may_hold_nuls_and_inner_arguments_may_be_empty() {
    let packet = Packet::SubmitJob {
        function: b(b"f"),
        unique: Bytes::new(),
        data: b(b"\0\0x\0"),
    };
    let buf = encode(Role::Client, &packet);
    assert_eq!(&buf[12..], b"f\0\0\0\0x\0");
    assert_eq!(
        decode_one(Role::Server, buf),
        Ok(Some(Frame::Packet(packet)))
    );
    // A CAN_DO body is the whole function: a NUL in it is part of it.
    let can_do = raw(b"\0REQ", 1, b"a\0b");
    assert_eq!(
        decode_one(Role::Server, can_do),
        Ok(Some(Frame::Packet(Packet::CanDo {
            function: b(b"a\0b")
        })))
    );
}

#[test]
fn a_truncated_packet_needs_more_bytes_and_is_an_error_at_eof() {
    let whole = encode(
        Role::Client,
        &Packet::SubmitJobBg {
            function: b(b"f"),
            unique: b(b"u"),
            data: b(b"data"),
        },
    );
    for cut in 0..whole.len() {
        let mut buf = BytesMut::from(&whole[..cut]);
        let mut codec = GearmanCodec::server();
        assert_eq!(codec.decode(&mut buf), Ok(None), "cut at {cut}");
        if cut > 0 {
            let error = codec.decode_eof(&mut buf).unwrap_err();
            assert!(matches!(error, DecodeError::Io { .. }), "{error:?}");
            assert_eq!(error.action(), Action::Close);
        }
    }
}

#[test]
fn a_magic_that_is_neither_req_nor_res_closes_the_connection() {
    for magic in [b"\0REX", b"\0req", b"\0\0\0\0"] {
        let error = decode_one(Role::Server, raw(magic, 7, b"")).unwrap_err();
        assert_eq!(error, DecodeError::BadMagic(*magic));
        assert_eq!(error.action(), Action::Close);
        assert!(error.is_fatal());
    }
    // The client role has no admin text: a non-NUL first byte is bad magic.
    let error = decode_one(Role::Client, raw(b"HTTP", 7, b"")).unwrap_err();
    assert_eq!(error, DecodeError::BadMagic(*b"HTTP"));
}

#[test]
fn an_unknown_packet_type_closes_the_connection() {
    for number in [0, 43, 1000, u32::MAX] {
        let error = decode_one(Role::Server, raw(b"\0REQ", number, b"")).unwrap_err();
        assert_eq!(error, DecodeError::UnknownType(number));
        assert_eq!(error.action(), Action::Close);
    }
}

#[test]
fn res_magic_on_a_request_gets_invalid_magic_and_the_stream_goes_on() {
    let mut buf = raw(b"\0RES", 7, b"f\0u\0data");
    buf.extend_from_slice(&encode(Role::Client, &Packet::GrabJobAll));
    let frames = decode_all(&mut GearmanCodec::server(), &mut buf).unwrap();
    let error = DecodeError::WrongMagic {
        packet_type: 7,
        found: Magic::Res,
    };
    assert_eq!(
        frames,
        vec![
            Frame::Rejected(error.clone()),
            Frame::Packet(Packet::GrabJobAll)
        ]
    );
    assert_eq!(
        error.action(),
        Action::Reply(ErrorReply {
            code: "INVALID_MAGIC",
            text: "Request magic expected".into()
        })
    );
    assert_eq!(
        ErrorReply::request_magic_expected().to_packet(),
        Packet::Error {
            code: b(b"INVALID_MAGIC"),
            text: b(b"Request magic expected")
        }
    );
}

#[test]
fn a_response_type_or_type_5_sent_as_a_request_gets_invalid_command() {
    for number in [5, 6, 8, 10, 11, 17, 19, 20, 27, 31, 40, 42] {
        let error = rejected(Role::Server, raw(b"\0REQ", number, b""));
        assert_eq!(error, DecodeError::UnexpectedType(number));
        assert_eq!(
            error.action(),
            Action::Reply(ErrorReply::command_not_expected())
        );
    }
    assert_eq!(
        ErrorReply::command_not_expected().to_packet(),
        Packet::Error {
            code: b(b"INVALID_COMMAND"),
            text: b(b"Command not expected")
        }
    );
    // A request type arriving at a client is as unexpected.
    let error = rejected(Role::Client, raw(b"\0RES", 7, b"f\0u\0d"));
    assert_eq!(error, DecodeError::UnexpectedType(7));
}

#[test]
fn all_yours_and_submit_job_sched_decode_for_the_listener_to_refuse() {
    assert_eq!(
        decode_one(Role::Server, raw(b"\0REQ", 24, b"")),
        Ok(Some(Frame::Packet(Packet::AllYours)))
    );
    let sched = decode_one(Role::Server, raw(b"\0REQ", 35, b"f\0u\0*\0*\0*\0*\0*\0d"));
    assert!(
        matches!(
            sched,
            Ok(Some(Frame::Packet(Packet::SubmitJobSched { .. })))
        ),
        "{sched:?}"
    );
}

#[test]
fn an_oversized_size_field_is_rejected_at_once_without_allocating() {
    let mut buf = header(b"\0REQ", 7, u32::MAX);
    let mut codec = GearmanCodec::server();
    let frame = codec.decode(&mut buf).unwrap();
    let Some(Frame::Rejected(error)) = frame else {
        panic!("{frame:?}")
    };
    assert_eq!(
        error,
        DecodeError::Oversized {
            packet_type: 7,
            size: u32::MAX,
            max: CodecConfig::default().max_body,
        }
    );
    assert_eq!(
        error.action(),
        Action::Reply(ErrorReply {
            code: "ARGUMENT_TOO_LARGE",
            text: "Packet too large".into()
        })
    );
    assert!(buf.capacity() < 4096, "capacity {}", buf.capacity());
    // The body is skipped as it arrives, still without buffering it.
    buf.extend_from_slice(&[7u8; 1000]);
    assert_eq!(codec.decode(&mut buf), Ok(None));
    assert!(buf.is_empty());
}

#[test]
fn after_an_oversized_body_the_next_packet_decodes() {
    let config = CodecConfig {
        max_body: 10,
        ..CodecConfig::default()
    };
    let mut codec = GearmanCodec::new(Role::Server, config);
    let mut stream = raw(b"\0REQ", 7, b"function\0unique\0workload");
    stream.extend_from_slice(&raw(b"\0REQ", 7, b"f\0u\0d"));
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for &byte in stream.iter() {
        buf.put_u8(byte);
        frames.extend(decode_all(&mut codec, &mut buf).unwrap());
    }
    assert_eq!(
        frames,
        vec![
            Frame::Rejected(DecodeError::Oversized {
                packet_type: 7,
                size: 24,
                max: 10
            }),
            Frame::Packet(Packet::SubmitJob {
                function: b(b"f"),
                unique: b(b"u"),
                data: b(b"d")
            })
        ]
    );
    // Exactly at the limit is accepted.
    let at_limit = raw(b"\0REQ", 16, &[b'x'; 10]);
    assert!(matches!(
        GearmanCodec::new(Role::Server, config).decode(&mut at_limit.clone()),
        Ok(Some(Frame::Packet(Packet::EchoReq { .. })))
    ));
}

#[test]
fn the_default_limit_leaves_room_for_arguments_beside_a_full_payload() {
    let config = CodecConfig::default();
    assert_eq!(config.max_body, 1024 * 1024 + 4096);
    let packet = Packet::SubmitJobBg {
        function: Bytes::from(vec![b'f'; 512]),
        unique: Bytes::from(vec![b'u'; 64]),
        data: Bytes::from(vec![0u8; 1024 * 1024]),
    };
    assert_eq!(
        decode_one(Role::Server, encode(Role::Client, &packet)),
        Ok(Some(Frame::Packet(packet)))
    );
}

#[test]
fn wrong_argument_counts_are_rejected_with_invalid_packet() {
    for (number, body, packet_type, expected, found) in [
        (7, &b"f\0u"[..], PacketType::SubmitJob, 3, 2),
        (7, b"f", PacketType::SubmitJob, 3, 1),
        (7, b"", PacketType::SubmitJob, 3, 1),
        (36, b"f\0u\0", PacketType::SubmitJobEpoch, 4, 3),
        (37, b"f\0u\0r\0d", PacketType::SubmitReduceJob, 5, 4),
        (23, b"f", PacketType::CanDoTimeout, 2, 1),
        (13, b"H:box:1", PacketType::WorkComplete, 2, 1),
        (9, b"x", PacketType::GrabJob, 0, 1),
        (4, b"\0", PacketType::PreSleep, 0, 1),
    ] {
        let error = rejected(Role::Server, raw(b"\0REQ", number, body));
        assert_eq!(
            error,
            DecodeError::Malformed(BodyError::WrongArgumentCount {
                packet_type,
                expected,
                found
            }),
            "{packet_type} {body:?}"
        );
        assert_eq!(
            error.action(),
            Action::Reply(ErrorReply {
                code: "INVALID_PACKET",
                text: "Wrong number of arguments".into()
            })
        );
    }
}

#[test]
fn a_number_argument_that_does_not_parse_is_rejected() {
    for (number, body, packet_type, argument) in [
        (
            36,
            &b"f\0u\0soon\0d"[..],
            PacketType::SubmitJobEpoch,
            "epoch",
        ),
        (36, b"f\0u\0-1\0d", PacketType::SubmitJobEpoch, "epoch"),
        (36, b"f\0u\0\0d", PacketType::SubmitJobEpoch, "epoch"),
        (
            23,
            b"f\099999999999999999999",
            PacketType::CanDoTimeout,
            "timeout",
        ),
    ] {
        let error = rejected(Role::Server, raw(b"\0REQ", number, body));
        assert_eq!(
            error,
            DecodeError::Malformed(BodyError::InvalidNumber {
                packet_type,
                argument
            })
        );
        assert!(!error.is_fatal());
    }
    let error = rejected(
        Role::Client,
        raw(b"\0RES", 20, b"H:box:1\x00yes\x000\x000\x000"),
    );
    assert_eq!(
        error,
        DecodeError::Malformed(BodyError::InvalidNumber {
            packet_type: PacketType::StatusRes,
            argument: "known"
        })
    );
}

#[test]
fn a_unique_over_64_bytes_gets_argument_too_large() {
    let submit = |unique: Vec<u8>| {
        let mut body = b"f\0".to_vec();
        body.extend_from_slice(&unique);
        body.extend_from_slice(b"\0data");
        raw(b"\0REQ", 18, &body)
    };
    assert!(matches!(
        decode_one(Role::Server, submit(vec![b'u'; 64])),
        Ok(Some(Frame::Packet(Packet::SubmitJobBg { .. })))
    ));
    let error = rejected(Role::Server, submit(vec![b'u'; 65]));
    assert_eq!(
        error,
        DecodeError::ArgumentTooLarge {
            packet_type: PacketType::SubmitJobBg,
            argument: "unique",
            len: 65,
            max: 64
        }
    );
    assert_eq!(
        error.action(),
        Action::Reply(ErrorReply::unique_too_large())
    );
    assert_eq!(
        ErrorReply::unique_too_large().to_packet(),
        Packet::Error {
            code: b(b"ARGUMENT_TOO_LARGE"),
            text: b(b"Unique value too large")
        }
    );
}

#[test]
fn encoding_refuses_what_would_corrupt_the_stream() {
    let mut buf = BytesMut::new();
    let nul_function = Packet::SubmitJob {
        function: b(b"f\0g"),
        unique: b(b"u"),
        data: b(b"d"),
    };
    let error = GearmanCodec::client()
        .encode(&nul_function, &mut buf)
        .unwrap_err();
    assert!(matches!(
        error,
        EncodeError::Body(EncodeBodyError::NulInArgument {
            packet_type: PacketType::SubmitJob,
            index: 0
        })
    ));
    assert!(buf.is_empty(), "nothing written");
    let error = GearmanCodec::server()
        .encode(&nul_function, &mut buf)
        .unwrap_err();
    assert!(matches!(
        error,
        EncodeError::WrongDirection(PacketType::SubmitJob)
    ));
    let error = GearmanCodec::client()
        .encode(Outgoing::Text(b(b"OK\r\n")), &mut buf)
        .unwrap_err();
    assert!(matches!(error, EncodeError::TextFromClient));
    GearmanCodec::server()
        .encode(Outgoing::Text(b(b"OK\r\n")), &mut buf)
        .unwrap();
    GearmanCodec::server()
        .encode(Outgoing::from(Packet::Noop), &mut buf)
        .unwrap();
    assert_eq!(&buf[..], b"OK\r\n\0RES\0\0\0\x06\0\0\0\0");
}

#[test]
fn admin_lines_are_detected_by_a_non_nul_first_byte() {
    let mut buf = BytesMut::from(&b"STATUS\nworkers\r\nversion"[..]);
    let mut codec = GearmanCodec::server();
    assert_eq!(
        decode_all(&mut codec, &mut buf).unwrap(),
        vec![
            Frame::Admin(AdminCommand::Status),
            Frame::Admin(AdminCommand::Workers)
        ]
    );
    assert_eq!(&buf[..], b"version", "a partial line waits for its \\n");
    buf.extend_from_slice(b"\n");
    assert_eq!(
        codec.decode(&mut buf),
        Ok(Some(Frame::Admin(AdminCommand::Version)))
    );
}

#[test]
fn an_admin_line_over_the_limit_closes_the_connection() {
    let config = CodecConfig {
        max_admin_line: 16,
        ..CodecConfig::default()
    };
    let mut codec = GearmanCodec::new(Role::Server, config);
    let mut buf = BytesMut::from(&b"status is fine\n"[..]);
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Admin(_)))));
    let mut buf = BytesMut::from(&[b'a'; 15][..]);
    assert_eq!(codec.decode(&mut buf), Ok(None));
    buf.put_u8(b'a');
    let error = codec.decode(&mut buf).unwrap_err();
    assert_eq!(error, DecodeError::AdminLineTooLong { max: 16 });
    assert_eq!(error.action(), Action::Close);
}

#[test]
fn submits_expose_priority_and_background() {
    let expected = [
        (PacketType::SubmitJob, Priority::Normal, false),
        (PacketType::SubmitJobBg, Priority::Normal, true),
        (PacketType::SubmitJobHigh, Priority::High, false),
        (PacketType::SubmitJobHighBg, Priority::High, true),
        (PacketType::SubmitJobLow, Priority::Low, false),
        (PacketType::SubmitJobLowBg, Priority::Low, true),
        (PacketType::SubmitJobEpoch, Priority::Normal, true),
        (PacketType::SubmitReduceJob, Priority::Normal, false),
        (
            PacketType::SubmitReduceJobBackground,
            Priority::Normal,
            true,
        ),
    ];
    let samples = samples();
    let submits: Vec<_> = samples
        .iter()
        .filter_map(|p| p.as_submit().map(|s| (p.packet_type(), s)))
        .collect();
    assert_eq!(submits.len(), expected.len());
    for ((packet_type, submit), (t, priority, background)) in submits.iter().zip(expected) {
        assert_eq!(
            (*packet_type, submit.priority, submit.background),
            (t, priority, background)
        );
        assert_eq!(&submit.function[..], b"f");
        assert_eq!(&submit.data[..], b"da\0ta\0");
    }
    let epoch = samples[34].as_submit().unwrap();
    assert_eq!(epoch.epoch, Some(1_767_225_600));
    let reduce = samples[35].as_submit().unwrap();
    assert_eq!(reduce.reducer.map(|r| &r[..]), Some(&b"r"[..]));
}

// Golden bytes: the packets the fact sheet lists as sent by the PHP
// extension, the gearman CLI and python-gearman, written out by hand.

fn golden(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = GearmanCodec::server().decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty());
    frame
}

fn golden_response(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = GearmanCodec::client().decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty());
    frame
}

#[test]
fn golden_php_client_option_req_exceptions() {
    let bytes = b"\x00REQ\x00\x00\x00\x1a\x00\x00\x00\x0aexceptions";
    assert_eq!(
        golden(bytes),
        Frame::Packet(Packet::OptionReq {
            option: b(b"exceptions")
        })
    );
    // ... and the server's answer, which addServer() waits for.
    let answer = b"\x00RES\x00\x00\x00\x1b\x00\x00\x00\x0aexceptions";
    assert_eq!(
        &encode(
            Role::Server,
            &Packet::OptionRes {
                option: b(b"exceptions")
            }
        )[..],
        answer
    );
}

#[test]
fn golden_php_worker_start_up() {
    // SET_CLIENT_ID "w1", CAN_DO "reverse", GRAB_JOB_ALL, PRE_SLEEP on one
    // connection.
    let mut buf = BytesMut::new();
    buf.put_slice(b"\x00REQ\x00\x00\x00\x16\x00\x00\x00\x02w1");
    buf.put_slice(b"\x00REQ\x00\x00\x00\x01\x00\x00\x00\x07reverse");
    buf.put_slice(b"\x00REQ\x00\x00\x00\x27\x00\x00\x00\x00");
    buf.put_slice(b"\x00REQ\x00\x00\x00\x04\x00\x00\x00\x00");
    assert_eq!(
        decode_all(&mut GearmanCodec::server(), &mut buf).unwrap(),
        vec![
            Frame::Packet(Packet::SetClientId { id: b(b"w1") }),
            Frame::Packet(Packet::CanDo {
                function: b(b"reverse")
            }),
            Frame::Packet(Packet::GrabJobAll),
            Frame::Packet(Packet::PreSleep),
        ]
    );
}

#[test]
fn golden_python_worker_grab_job_uniq() {
    assert_eq!(
        golden(b"\x00REQ\x00\x00\x00\x03\x00\x00\x00\x00"),
        Frame::Packet(Packet::ResetAbilities)
    );
    assert_eq!(
        golden(b"\x00REQ\x00\x00\x00\x1e\x00\x00\x00\x00"),
        Frame::Packet(Packet::GrabJobUniq)
    );
}

#[test]
fn golden_cli_submit_job_bg_with_a_uuid_unique() {
    // gearman -b -f reverse hello
    let unique = b"8d1e6a2c-5a9b-11ef-9c43-0242ac120002";
    let mut bytes = b"\x00REQ\x00\x00\x00\x12\x00\x00\x00\x32reverse\x00".to_vec();
    bytes.extend_from_slice(unique);
    bytes.extend_from_slice(b"\x00hello");
    assert_eq!(bytes.len(), 12 + 0x32);
    assert_eq!(
        golden(&bytes),
        Frame::Packet(Packet::SubmitJobBg {
            function: b(b"reverse"),
            unique: b(unique),
            data: b(b"hello")
        })
    );
}

#[test]
fn golden_worker_results_and_client_polls() {
    assert_eq!(
        golden(b"\x00REQ\x00\x00\x00\x0d\x00\x00\x00\x0dH:box:7\x00olleh"),
        Frame::Packet(Packet::WorkComplete {
            handle: b(b"H:box:7"),
            data: b(b"olleh")
        })
    );
    assert_eq!(
        golden(b"\x00REQ\x00\x00\x00\x0c\x00\x00\x00\x0bH:box:7\x001\x002"),
        Frame::Packet(Packet::WorkStatus {
            handle: b(b"H:box:7"),
            numerator: b(b"1"),
            denominator: b(b"2")
        })
    );
    assert_eq!(
        golden(b"\x00REQ\x00\x00\x00\x0e\x00\x00\x00\x07H:box:7"),
        Frame::Packet(Packet::WorkFail {
            handle: b(b"H:box:7")
        })
    );
    assert_eq!(
        golden(b"\x00REQ\x00\x00\x00\x19\x00\x00\x00\x25H:box:7\x00Unable to add worker function"),
        Frame::Packet(Packet::WorkException {
            handle: b(b"H:box:7"),
            data: b(b"Unable to add worker function")
        })
    );
    assert_eq!(
        golden(b"\x00REQ\x00\x00\x00\x0f\x00\x00\x00\x07H:box:7"),
        Frame::Packet(Packet::GetStatus {
            handle: b(b"H:box:7")
        })
    );
    assert_eq!(
        golden(b"\x00REQ\x00\x00\x00\x29\x00\x00\x00\x03key"),
        Frame::Packet(Packet::GetStatusUnique { unique: b(b"key") })
    );
    assert_eq!(
        golden(b"\x00REQ\x00\x00\x00\x10\x00\x00\x00\x03a\x00b"),
        Frame::Packet(Packet::EchoReq { data: b(b"a\0b") })
    );
}

#[test]
fn golden_libgearman_reduce_submit_has_an_empty_aggregator() {
    assert_eq!(
        golden(b"\x00REQ\x00\x00\x00\x25\x00\x00\x00\x0bf\x00u\x00r\x00\x00data"),
        Frame::Packet(Packet::SubmitReduceJob {
            function: b(b"f"),
            unique: b(b"u"),
            reducer: b(b"r"),
            aggregator: Bytes::new(),
            data: b(b"data")
        })
    );
}

#[test]
fn golden_server_responses() {
    for (bytes, packet) in [
        (
            &b"\x00RES\x00\x00\x00\x08\x00\x00\x00\x07H:box:7"[..],
            Packet::JobCreated {
                handle: b(b"H:box:7"),
            },
        ),
        (b"\x00RES\x00\x00\x00\x06\x00\x00\x00\x00", Packet::Noop),
        (b"\x00RES\x00\x00\x00\x0a\x00\x00\x00\x00", Packet::NoJob),
        (
            b"\x00RES\x00\x00\x00\x1f\x00\x00\x00\x14H:box:7\x00reverse\x00u\x00hi",
            Packet::JobAssignUniq {
                handle: b(b"H:box:7"),
                function: b(b"reverse"),
                unique: b(b"u"),
                data: b(b"hi"),
            },
        ),
        (
            b"\x00RES\x00\x00\x00\x14\x00\x00\x00\x0fH:box:7\x001\x000\x000\x000",
            Packet::StatusRes {
                handle: b(b"H:box:7"),
                known: true,
                running: false,
                numerator: b(b"0"),
                denominator: b(b"0"),
            },
        ),
        (
            b"\x00RES\x00\x00\x00\x2a\x00\x00\x00\x0dkey\x001\x001\x001\x002\x001",
            Packet::StatusResUnique {
                unique: b(b"key"),
                known: true,
                running: true,
                numerator: b(b"1"),
                denominator: b(b"2"),
                waiting_clients: 1,
            },
        ),
        (
            b"\x00RES\x00\x00\x00\x13\x00\x00\x00\x24INVALID_COMMAND\x00Command not expected",
            Packet::Error {
                code: b(b"INVALID_COMMAND"),
                text: b(b"Command not expected"),
            },
        ),
    ] {
        assert_eq!(golden_response(bytes), Frame::Packet(packet.clone()));
        assert_eq!(&encode(Role::Server, &packet)[..], bytes, "{packet:?}");
    }
}

// Property tests.

/// Where each type has a number (`n`) or a flag (`f`) argument.
fn numeric_slots(packet_type: PacketType) -> &'static [(usize, char)] {
    match packet_type {
        PacketType::CanDoTimeout => &[(1, 'n')],
        PacketType::SubmitJobEpoch => &[(2, 'n')],
        PacketType::StatusRes => &[(1, 'f'), (2, 'f')],
        PacketType::StatusResUnique => &[(1, 'f'), (2, 'f'), (5, 'n')],
        _ => &[],
    }
}

/// An arbitrary valid body for an arbitrary type, built independently of
/// the encoder: (type, arguments, body).
fn arbitrary_packet() -> impl Strategy<Value = (PacketType, Vec<Bytes>, Bytes)> {
    (
        0..PacketType::ALL.len(),
        prop::collection::vec(prop::collection::vec(1u8..=255, 0..12), 8),
        prop::collection::vec(any::<u8>(), 0..40),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(index, inner, last, number, flag)| {
            let packet_type = PacketType::ALL[index];
            let count = packet_type.argument_count();
            let mut args: Vec<Bytes> = (0..count)
                .map(|i| {
                    if i + 1 == count {
                        Bytes::from(last.clone())
                    } else {
                        Bytes::from(inner[i].clone())
                    }
                })
                .collect();
            for &(slot, kind) in numeric_slots(packet_type) {
                args[slot] = if kind == 'n' {
                    Bytes::from(number.to_string())
                } else {
                    Bytes::from_static(if flag { b"1" } else { b"0" })
                };
            }
            let body = Bytes::from(args.join(&0u8));
            (packet_type, args, body)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bodies_decode_to_their_arguments_and_round_trip(
        (packet_type, args, body) in arbitrary_packet()
    ) {
        let packet = Packet::decode_body(packet_type, &body).unwrap();
        prop_assert_eq!(packet.packet_type(), packet_type);
        prop_assert_eq!(packet.arguments(), args);
        let magic = if packet_type.direction().allows(Magic::Req) { Magic::Req } else { Magic::Res };
        let bytes = packet.to_bytes(magic).unwrap();
        prop_assert_eq!(&bytes[12..], &body[..]);
        let role = if magic == Magic::Req { Role::Server } else { Role::Client };
        let mut buf = BytesMut::from(&bytes[..]);
        let mut codec = GearmanCodec::new(role, CodecConfig::default());
        let frames = decode_all(&mut codec, &mut buf).unwrap();
        // Uniques here are shorter than 64 bytes: nothing is rejected.
        prop_assert_eq!(frames, vec![Frame::Packet(packet)]);
    }

    #[test]
    fn any_split_of_a_stream_decodes_to_the_same_frames(
        picks in prop::collection::vec(0..samples().len(), 1..12),
        cuts in prop::collection::vec(0usize..400, 0..10),
    ) {
        let samples = samples();
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for &i in &picks {
            let packet = &samples[i];
            if packet.packet_type().direction().allows(Magic::Req) {
                stream.extend_from_slice(&encode(Role::Client, packet));
                expected.push(Frame::Packet(packet.clone()));
            } else {
                stream.extend_from_slice(b"getpid\n");
                expected.push(Frame::Admin(AdminCommand::GetPid));
            }
        }
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
        cuts.push(stream.len());
        cuts.sort_unstable();
        let mut codec = GearmanCodec::server();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        let mut start = 0;
        for cut in cuts {
            buf.extend_from_slice(&stream[start..cut]);
            start = cut;
            frames.extend(decode_all(&mut codec, &mut buf).unwrap());
        }
        prop_assert_eq!(frames, expected);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        split in 0usize..300,
        max_body in 0u32..64,
    ) {
        for role in [Role::Server, Role::Client] {
            for config in [CodecConfig::default(), CodecConfig { max_body, max_admin_line: 32 }] {
                let mut codec = GearmanCodec::new(role, config);
                let (a, rest) = bytes.split_at(split.min(bytes.len()));
                let mut buf = BytesMut::from(a);
                let mut ended = decode_all(&mut codec, &mut buf).is_err();
                if !ended {
                    buf.extend_from_slice(rest);
                    ended = decode_all(&mut codec, &mut buf).is_err();
                }
                if !ended {
                    let _ = codec.decode_eof(&mut buf);
                }
            }
        }
    }

    #[test]
    fn arbitrary_headers_with_arbitrary_bodies_never_panic(
        magic in prop::sample::select(vec![*b"\0REQ", *b"\0RES", *b"\0RE\0"]),
        number in 0u32..45,
        body in prop::collection::vec(prop::sample::select(vec![0u8, b'1', b'a', 0xff]), 0..40),
    ) {
        for role in [Role::Server, Role::Client] {
            let mut buf = raw(&magic, number, &body);
            let mut codec = GearmanCodec::new(role, CodecConfig::default());
            match codec.decode(&mut buf) {
                Ok(Some(Frame::Rejected(error))) => prop_assert!(!error.is_fatal()),
                Ok(Some(_)) => {}
                Ok(None) => prop_assert!(false, "a whole packet must decode"),
                Err(error) => prop_assert!(error.is_fatal()),
            }
        }
    }

    #[test]
    fn arbitrary_admin_lines_never_panic(line in prop::collection::vec(1u8..=255, 0..60)) {
        let _ = errand_gearman::admin::parse_command(&line);
    }
}
