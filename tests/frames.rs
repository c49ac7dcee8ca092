//! Binary framing (`--frame`) and received checksums (`--check`): frames
//! by gap, by a header's length and by delimiter are one `data` event
//! each, checked frames say `crcOk`, and the transcript keeps the bytes
//! as they came.

mod common;

use std::time::Duration;

use common::*;
use muxcat::core::EventKind;

fn frames_of(h: &Harness, id: &str) -> Vec<(Vec<u8>, Option<bool>)> {
    h.seen
        .iter()
        .filter(|e| e.session_id.as_deref() == Some(id))
        .filter_map(|e| match &e.kind {
            EventKind::Data { payload, check, .. } => Some((payload.to_vec(), *check)),
            _ => None,
        })
        .collect()
}

async fn wait_frames(h: &mut Harness, id: &str, n: usize) -> Vec<(Vec<u8>, Option<bool>)> {
    while frames_of(h, id).len() < n {
        h.next(|e| e.name() == "data").await;
    }
    frames_of(h, id)
}

/// Modbus RTU answers as a serial line delivers them: a frame in pieces,
/// a gap, the next (with a bad CRC).
#[tokio::test]
async fn idle_gaps_make_frames_and_checksums_are_checked() {
    let good: Vec<u8> = vec![0x01, 0x03, 0x02, 0x00, 0x2a, 0x39, 0x9b];
    let mut bad = good.clone();
    bad[4] = 0x2b;
    let server = scripted_server(vec![
        (Duration::from_millis(200), good[..3].to_vec()),
        (Duration::from_millis(2), good[3..].to_vec()),
        (Duration::from_millis(150), bad.clone()),
    ])
    .await;
    let mut h = Harness::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rtu.log");
    let id = h
        .session(&format!(
            "connect --frame idle:50ms --check crc16-modbus --id rtu {server}"
        ))
        .await;
    h.ok(&format!("record rtu {}", file.display())).await;
    let frames = wait_frames(&mut h, &id, 2).await;
    assert_eq!(frames, [(good.clone(), Some(true)), (bad.clone(), Some(false))]);
    let bad_event = h
        .seen
        .iter()
        .find(|e| {
            matches!(
                &e.kind,
                EventKind::Data {
                    check: Some(false),
                    ..
                }
            )
        })
        .unwrap();
    let j: serde_json::Value = serde_json::from_str(&bad_event.to_json()).unwrap();
    assert_eq!(j["crcOk"], false);
    assert!(bad_event.to_readable().ends_with("(checksum bad)"));
    // A frame is a waitfor unit too (binary: its bytes).
    h.ok("disconnect rtu").await;
    // The transcript has the reads as they came (not the frames).
    let parsed = muxcat::transcript::parse(&std::fs::read(&file).unwrap(), "rtu.log").unwrap();
    let received: Vec<u8> = parsed
        .entries
        .iter()
        .filter(|e| e.mark == muxcat::transcript::Mark::In)
        .flat_map(|e| e.data.clone())
        .collect();
    assert_eq!(received, [good, bad].concat());
}

#[tokio::test]
async fn header_length_and_delimiter_framing() {
    // Two Modbus/TCP answers in one write, then half of a third.
    let a = vec![0u8, 1, 0, 0, 0, 5, 1, 3, 2, 0, 42];
    let b = vec![0u8, 2, 0, 0, 0, 3, 1, 0x83, 2];
    let c = vec![0u8, 3, 0, 0, 0, 5, 1, 3, 2, 0, 7];
    let server = scripted_server(vec![
        (
            Duration::from_millis(200),
            [a.clone(), b.clone(), c[..4].to_vec()].concat(),
        ),
        (Duration::from_millis(20), c[4..].to_vec()),
    ])
    .await;
    let mut h = Harness::new();
    let id = h
        .session(&format!("connect --frame len-at:4,len-size:2 {server}"))
        .await;
    assert_eq!(
        wait_frames(&mut h, &id, 3).await,
        [(a, None), (b, None), (c, None)]
    );
    // Triggers see frames: one reply per frame.
    let server = scripted_server(vec![
        (Duration::from_millis(200), b"PING;PING;PI".to_vec()),
        (Duration::from_millis(20), b"NG;".to_vec()),
    ])
    .await;
    let id = h.session(&format!("connect --frame delim:3b {server}")).await;
    assert_eq!(
        wait_frames(&mut h, &id, 3)
            .await
            .into_iter()
            .map(|f| f.0)
            .collect::<Vec<_>>(),
        [b"PING;".to_vec(), b"PING;".to_vec(), b"PING;".to_vec()]
    );
}

#[tokio::test]
async fn bad_framing_specs_are_refused() {
    let mut h = Harness::new();
    for (line, word) in [
        ("connect --frame idle:0 127.0.0.1:1", "idle:0"),
        ("connect --frame bogus 127.0.0.1:1", "is not a framing"),
        ("connect --check crc99 127.0.0.1:1", "crc99"),
    ] {
        let err = h.run(line).await.unwrap_err();
        assert_eq!(err.code.as_str(), "COMMAND_INVALID", "{line}");
        assert!(err.text.contains(word), "{line}: {}", err.text);
    }
}
