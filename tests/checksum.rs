//! Checksums appended to payloads: `send --crc`, `on --crc`, against a
//! plain TCP peer on loopback.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test]
async fn send_appends_a_modbus_crc_and_a_trigger_answers_with_one() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut h = Harness::new();
    h.session(&format!("connect --mode binary {addr}")).await;
    let (mut peer, _) = listener.accept().await.unwrap();
    // A Modbus RTU request: the CRC goes on low byte first.
    h.ok("send --hex --crc crc16-modbus 01 03 00 00 00 0a").await;
    let mut got = [0u8; 8];
    peer.read_exact(&mut got).await.unwrap();
    assert_eq!(got, [0x01, 0x03, 0x00, 0x00, 0x00, 0x0a, 0xc5, 0xcd]);
    // Modbus ASCII style: an LRC over the text after the colon, big-endian CRC, a range.
    h.ok("send --raw --crc crc16-xmodem --crc-range 1.. :123456789")
        .await;
    let mut got = [0u8; 12];
    peer.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b":123456789\x31\xc3");
    // A trigger's reply gets its checksum after the captures are filled in.
    h.ok(r"on --hex --crc crc16-modbus (?-u)^\x01\x03 send 01 03 02 00 2a")
        .await;
    peer.write_all(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x84, 0x0a])
        .await
        .unwrap();
    let mut reply = [0u8; 7];
    peer.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply[..5], [0x01, 0x03, 0x02, 0x00, 0x2a]);
    let crc = muxcat::core::checksum::Checksum::parse("crc16-modbus").unwrap();
    assert_eq!(reply[5..].to_vec(), crc.bytes(&reply[..5]));
    // A name not in the catalogue is an error naming the choices.
    let err = h.run("send --crc crc17 x").await.unwrap_err();
    assert!(err.text.contains("crc16-modbus"), "{err}");
}
