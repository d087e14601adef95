//! The admin text protocol against the fact sheet: every command parses,
//! and every formatter writes gearmand 1.1.20's reply byte for byte
//! (line endings included), which is what `gearadmin` parses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{Bytes, BytesMut};
use errand_gearman::admin::{
    self, AdminCommand, FunctionStatus, JobLine, MaxQueueLimits, PriorityStatusLine, WorkerLine,
    parse_command,
};
use errand_gearman::{Frame, GearmanCodec};
use tokio_util::codec::Decoder;

fn b(s: &[u8]) -> Bytes {
    Bytes::copy_from_slice(s)
}

#[test]
fn every_command_parses() {
    for (line, command) in [
        (&b"status"[..], AdminCommand::Status),
        (b"STATUS", AdminCommand::Status),
        (b"  status  ", AdminCommand::Status),
        (b"workers", AdminCommand::Workers),
        (b"version", AdminCommand::Version),
        (b"getpid", AdminCommand::GetPid),
        (b"verbose", AdminCommand::Verbose),
        (b"prioritystatus", AdminCommand::PriorityStatus),
        (b"show jobs", AdminCommand::ShowJobs),
        (b"Show Jobs", AdminCommand::ShowJobs),
        (b"show unique jobs", AdminCommand::ShowUniqueJobs),
        (
            b"cancel job H:box:7",
            AdminCommand::CancelJob {
                handle: b(b"H:box:7"),
            },
        ),
        (
            b"create function reverse",
            AdminCommand::CreateFunction {
                function: b(b"reverse"),
            },
        ),
        (
            b"drop function reverse",
            AdminCommand::DropFunction {
                function: b(b"reverse"),
            },
        ),
        (b"shutdown", AdminCommand::Shutdown { graceful: false }),
        (
            b"shutdown graceful",
            AdminCommand::Shutdown { graceful: true },
        ),
        (
            b"maxqueue reverse",
            AdminCommand::MaxQueue {
                function: b(b"reverse"),
                limits: MaxQueueLimits::Reset,
            },
        ),
        (
            b"maxqueue reverse 10",
            AdminCommand::MaxQueue {
                function: b(b"reverse"),
                limits: MaxQueueLimits::All(10),
            },
        ),
        (
            b"maxqueue reverse 1 -1 0",
            AdminCommand::MaxQueue {
                function: b(b"reverse"),
                limits: MaxQueueLimits::PerPriority {
                    high: 1,
                    normal: -1,
                    low: 0,
                },
            },
        ),
    ] {
        assert_eq!(
            parse_command(line),
            command,
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn missing_arguments_and_unknown_commands() {
    for (line, command) in [
        (&b"maxqueue"[..], "maxqueue"),
        (b"maxqueue f 1 2", "maxqueue"),
        (b"maxqueue f lots", "maxqueue"),
        (b"cancel job", "cancel"),
        (b"create function", "create"),
        (b"drop function", "drop"),
    ] {
        assert_eq!(
            parse_command(line),
            AdminCommand::InvalidArguments { command },
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
    for (line, word) in [
        (&b"jobs"[..], &b"jobs"[..]),
        (b"clients", b"clients"),
        (b"show", b"show"),
        (b"show unique", b"show"),
        (b"cancel H:box:7", b"cancel"),
        (b"Frobnicate now", b"Frobnicate"),
        (b"", b""),
        (b"   ", b""),
    ] {
        assert_eq!(
            parse_command(line),
            AdminCommand::Unknown { command: b(word) },
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn the_codec_strips_cr_and_parses_the_line() {
    let mut buf = BytesMut::from(&b"maxqueue reverse 5\r\ncancel job H:box:1\n"[..]);
    let mut codec = GearmanCodec::server();
    assert_eq!(
        codec.decode(&mut buf),
        Ok(Some(Frame::Admin(AdminCommand::MaxQueue {
            function: b(b"reverse"),
            limits: MaxQueueLimits::All(5)
        })))
    );
    assert_eq!(
        codec.decode(&mut buf),
        Ok(Some(Frame::Admin(AdminCommand::CancelJob {
            handle: b(b"H:box:1")
        })))
    );
}

#[test]
fn status_lines_are_tab_separated_and_end_with_a_dot() {
    let out = admin::format_status(&[
        FunctionStatus {
            function: b(b"reverse"),
            total: 3,
            running: 1,
            available_workers: 2,
        },
        FunctionStatus {
            function: b(b"gone"),
            total: 0,
            running: 0,
            available_workers: 0,
        },
    ]);
    assert_eq!(&out[..], b"reverse\t3\t1\t2\ngone\t0\t0\t0\n.\n");
    assert_eq!(&admin::format_status(&[])[..], b".\n");
}

#[test]
fn workers_lines_show_id_or_dash_and_functions_after_the_colon() {
    let out = admin::format_workers(&[
        WorkerLine {
            fd: 38,
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            client_id: Some(b(b"acc-admin")),
            functions: vec![b(b"myfunc")],
        },
        WorkerLine {
            fd: 39,
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
            client_id: None,
            functions: vec![b(b"a"), b(b"b"), b(b"a")],
        },
        // The admin connection itself: nothing after the colon.
        WorkerLine {
            fd: 40,
            ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
            client_id: None,
            functions: vec![],
        },
    ]);
    assert_eq!(
        &out[..],
        &b"38 127.0.0.1 acc-admin : myfunc\n39 10.0.0.5 - : a b a\n40 ::1 - :\n.\n"[..]
    );
}

#[test]
fn priority_status_and_show_jobs_lines() {
    let out = admin::format_priority_status(&[PriorityStatusLine {
        function: b(b"reverse"),
        high: 1,
        normal: 2,
        low: 3,
        workers: 4,
    }]);
    assert_eq!(&out[..], b"reverse\t1\t2\t3\t4\n.\n");
    let out = admin::format_show_jobs(&[
        JobLine {
            handle: b(b"H:box:1"),
            retries: 0,
            ignored: true,
            persisted: false,
        },
        JobLine {
            handle: b(b"H:box:2"),
            retries: 2,
            ignored: false,
            persisted: true,
        },
    ]);
    assert_eq!(&out[..], b"H:box:1\t0\t1\t0\nH:box:2\t2\t0\t1\n.\n");
    let out = admin::format_show_unique_jobs(&[b(b"u1"), b(b"u2")]);
    assert_eq!(&out[..], b"u1\nu2\n.\n");
}

#[test]
fn single_replies_use_gearmands_line_endings() {
    assert_eq!(&admin::format_version("1.1.20+ds")[..], b"OK 1.1.20+ds\n");
    assert_eq!(&admin::format_getpid(4242)[..], b"OK 4242\n");
    assert_eq!(&admin::format_verbose("INFO")[..], b"OK INFO\n");
    assert_eq!(&admin::format_ok()[..], b"OK\r\n");
    assert_eq!(&admin::format_unknown_job()[..], b"ERR UNKNOWN_JOB\r\n");
    assert_eq!(
        &admin::format_drop_function_busy()[..],
        b"ERR there are still connected workers or executing clients\r\n"
    );
    assert_eq!(
        &admin::format_function_not_found()[..],
        b"ERR function not found\r\n"
    );
}

#[test]
fn error_lines_match_gearmand_exactly() {
    assert_eq!(
        &admin::format_unknown_command(b"shutdown")[..],
        b"ERR UNKNOWN_COMMAND Unknown+server+commandshutdown\r\n"
    );
    assert_eq!(
        &admin::format_unknown_command(b"jobs")[..],
        b"ERR UNKNOWN_COMMAND Unknown+server+commandjobs\r\n"
    );
    assert_eq!(
        &admin::format_invalid_arguments("maxqueue")[..],
        &b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+maxqueue\r\n"[..]
    );
}

#[test]
fn errands_own_error_lines_are_one_gearmand_style_line() {
    assert_eq!(
        &admin::format_error("INVALID_FUNCTION_NAME", "not configured: add [kinds.x]")[..],
        b"ERR INVALID_FUNCTION_NAME not+configured:+add+[kinds.x]\r\n"
    );
    // A line break in the text (a function name as typed) cannot split
    // the reply, nor a space or control byte the code.
    assert_eq!(
        &admin::format_error("BAD CODE\n", "a\r\nb\tc")[..],
        b"ERR BADCODE abc\r\n"
    );
}

#[test]
fn empty_lists_are_just_the_terminator() {
    assert_eq!(&admin::format_priority_status(&[])[..], b".\n");
    assert_eq!(&admin::format_show_jobs(&[])[..], b".\n");
    assert_eq!(&admin::format_show_unique_jobs(&[])[..], b".\n");
    let two = admin::format_priority_status(&[
        PriorityStatusLine {
            function: b(b"a"),
            high: 0,
            normal: 0,
            low: 0,
            workers: 0,
        },
        PriorityStatusLine {
            function: b(b"b"),
            high: 10,
            normal: 0,
            low: 1,
            workers: 2,
        },
    ]);
    assert_eq!(&two[..], b"a\t0\t0\t0\t0\nb\t10\t0\t1\t2\n.\n");
}

#[test]
fn maxqueue_takes_negative_and_zero_caps_and_refuses_two_numbers() {
    assert_eq!(
        admin::parse_command(b"maxqueue f 0"),
        AdminCommand::MaxQueue {
            function: b(b"f"),
            limits: MaxQueueLimits::All(0)
        }
    );
    assert_eq!(
        admin::parse_command(b"MAXQUEUE f -1 5 0"),
        AdminCommand::MaxQueue {
            function: b(b"f"),
            limits: MaxQueueLimits::PerPriority {
                high: -1,
                normal: 5,
                low: 0
            }
        }
    );
    for bad in [
        &b"maxqueue f 1 2"[..],
        b"maxqueue f ten",
        b"maxqueue f 1 2 3 4",
    ] {
        assert_eq!(
            admin::parse_command(bad),
            AdminCommand::InvalidArguments {
                command: "maxqueue"
            },
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}
