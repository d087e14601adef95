//! The codec under `tokio_util::codec::Framed`, as the listener will use
//! it: a PHP-like client and the server side over an in-memory pipe,
//! binary packets and admin text on the same connection, and a fatal error
//! ending the server's stream.

use bytes::Bytes;
use errand_gearman::admin::{self, FunctionStatus};
use errand_gearman::codec::Outgoing;
use errand_gearman::{AdminCommand, DecodeError, Frame, GearmanCodec, Packet};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{Framed, FramedRead};

#[tokio::test]
async fn a_client_and_the_server_talk_through_framed() {
    let (client_io, server_io) = tokio::io::duplex(64);
    let mut client = Framed::new(client_io, GearmanCodec::client());
    let mut server = Framed::new(server_io, GearmanCodec::server());

    let server_side = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(frame) = server.next().await {
            let frame = frame.unwrap();
            let reply = match &frame {
                Frame::Packet(Packet::OptionReq { option }) => Outgoing::from(Packet::OptionRes {
                    option: option.clone(),
                }),
                Frame::Packet(Packet::SubmitJobBg { .. }) => Outgoing::from(Packet::JobCreated {
                    handle: Bytes::from_static(b"H:box:1"),
                }),
                Frame::Admin(AdminCommand::Status) => {
                    Outgoing::Text(admin::format_status(&[FunctionStatus {
                        function: Bytes::from_static(b"reverse"),
                        total: 1,
                        running: 0,
                        available_workers: 0,
                    }]))
                }
                other => panic!("unexpected {other:?}"),
            };
            seen.push(frame);
            server.send(reply).await.unwrap();
        }
        seen
    });

    client
        .send(Packet::OptionReq {
            option: Bytes::from_static(b"exceptions"),
        })
        .await
        .unwrap();
    assert_eq!(
        client.next().await.unwrap().unwrap(),
        Frame::Packet(Packet::OptionRes {
            option: Bytes::from_static(b"exceptions")
        })
    );
    // A workload larger than the pipe's buffer arrives in pieces.
    let data = Bytes::from(vec![0u8; 1000]);
    client
        .send(Packet::SubmitJobBg {
            function: Bytes::from_static(b"reverse"),
            unique: Bytes::new(),
            data: data.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        client.next().await.unwrap().unwrap(),
        Frame::Packet(Packet::JobCreated {
            handle: Bytes::from_static(b"H:box:1")
        })
    );

    // Admin text on the same connection, as gearadmin would send it.
    let mut io = client.into_inner();
    io.write_all(b"status\n").await.unwrap();
    let mut reply = [0u8; 64];
    let mut got = 0;
    while !reply[..got].ends_with(b".\n") {
        got += tokio::io::AsyncReadExt::read(&mut io, &mut reply[got..])
            .await
            .unwrap();
    }
    assert_eq!(&reply[..got], b"reverse\t1\t0\t0\n.\n");
    drop(io);

    let seen = server_side.await.unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2], Frame::Admin(AdminCommand::Status));
}

#[tokio::test]
async fn a_fatal_error_ends_the_servers_stream() {
    let input: &[u8] = b"\0REQ\0\0\0\x09\0\0\0\0\0REQ\0\0\0\x2b\0\0\0\0\0REQ\0\0\0\x09\0\0\0\0";
    let mut server = FramedRead::new(input, GearmanCodec::server());
    assert_eq!(
        server.next().await.unwrap().unwrap(),
        Frame::Packet(Packet::GrabJob)
    );
    let error = server.next().await.unwrap().unwrap_err();
    assert_eq!(error, DecodeError::UnknownType(43));
    assert!(error.is_fatal());
    assert!(server.next().await.is_none(), "nothing after a fatal error");
}
