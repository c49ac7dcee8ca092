//! Transcripts: format, byte-exact decoding, crash safety, failures, replay.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Harness, echo_server, muxcat_bin, random_bytes, sha256};
use muxcat::core::ErrorCode;
use muxcat::transcript::{self, Mark};

fn transcripts(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

fn replay(args: &[&str]) -> std::process::Output {
    Command::new(muxcat_bin())
        .arg("replay")
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn run_with_record_dir_writes_the_contract_format() {
    let echo = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "connect 127.0.0.1:{}\nsend 'hi\\tthere'\nwaitfor there\ndisconnect\n",
        echo.port()
    );
    let out = tokio::task::spawn_blocking({
        let d = dir.path().to_path_buf();
        move || {
            let mut child = Command::new(muxcat_bin())
                .args(["--record", d.to_str().unwrap(), "run"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
            child.wait_with_output().unwrap()
        }
    })
    .await
    .unwrap();
    assert!(out.status.success());
    let files = transcripts(dir.path());
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_str().unwrap().to_string();
    // <YYYYMMDD-HHMMSS>-<sessionId>.log
    assert_eq!(&name[8..9], "-");
    assert_eq!(&name[15..21], "-sess-", "{name}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "transcripts are owner-only");
    }
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("# muxcat transcript v3 sess-"), "{text}");
    assert!(lines[0].contains(" tcp 127.0.0.1:"), "{}", lines[0]);
    assert!(
        lines[0].ends_with(&format!(" -> 127.0.0.1:{} mode=line dir=out", echo.port())),
        "{}",
        lines[0]
    );
    assert!(lines[1].ends_with(" > hi\\tthere\\n"), "{text}");
    assert!(lines[2].ends_with(" < hi\\tthere\\n"), "{text}");
    assert!(lines[3].ends_with(" * disconnected local"), "{text}");
    // 2026-11-23T03:44:01.123456Z
    let ts = lines[1].split(' ').next().unwrap();
    assert_eq!(ts.len(), 27);
    assert!(ts.ends_with('Z') && &ts[10..11] == "T" && &ts[19..20] == ".");
}

/// 16 MiB of random bytes each way through a recorded pipe-mode session:
/// replay --raw gives back both streams exactly.
/// Random bytes (binary: compact base64 lines from v2 on; LZ4 cannot
/// shrink them, so v3, the default, writes them as v2 does) and the same
/// with `--transcript-format v1` (every byte escaped): both read back
/// byte-exact.
#[test]
fn sixteen_mib_both_ways_decode_byte_exact() {
    let v3 = record_both_ways(&[], random_bytes(SIZE, 1), random_bytes(SIZE, 2));
    assert!(v3.starts_with(b"# muxcat transcript v3 "));
    assert!(v3.windows(4).any(|w| w == b" <= ") && v3.windows(4).any(|w| w == b" >= "));
    assert!(!v3.windows(4).any(|w| w == b" <~ " || w == b" >~ "));
    // Base64: 4/3 of a byte a byte (v1 takes ~2.9 for random bytes).
    assert!(v3.len() < 2 * SIZE * 14 / 10, "{} bytes", v3.len());
    let v1 = record_both_ways(
        &["--transcript-format", "v1"],
        random_bytes(SIZE, 1),
        random_bytes(SIZE, 2),
    );
    assert!(v1.starts_with(b"# muxcat transcript v1 "));
    assert!(!v1.windows(4).any(|w| w == b" <= " || w == b" >= "));
    assert!(v1.len() > 2 * SIZE * 2, "{} bytes", v1.len());
}

/// A firmware-like image (random blocks between runs of 0xff and zeros)
/// each way: v3 writes the runs as LZ4 lines and the file is a fraction of
/// v2's; both read back byte-exact, and the frames are standard ones: the
/// `lz4` tool decodes them to the bytes muxcat reads from them.
#[test]
fn padded_binary_is_compressed_and_the_lz4_tool_reads_the_frames() {
    let image = |seed| {
        let mut out = Vec::with_capacity(SIZE);
        for (i, block) in random_bytes(SIZE, seed).chunks(256 * 1024).enumerate() {
            match i % 4 {
                0 => out.extend_from_slice(block),
                1 | 2 => out.resize(out.len() + block.len(), 0xff),
                _ => out.resize(out.len() + block.len(), 0),
            }
        }
        out
    };
    let v3 = record_both_ways(&[], image(3), image(4));
    let v2 = record_both_ways(&["--transcript-format", "v2"], image(3), image(4));
    assert!(v3.starts_with(b"# muxcat transcript v3 "));
    // A quarter random (4/3 a byte), three quarters runs (almost nothing).
    assert!(v3.len() * 3 < v2.len(), "v3 {} bytes, v2 {}", v3.len(), v2.len());
    let text = String::from_utf8(v3).unwrap();
    let lz4_lines: Vec<&str> = text.lines().filter(|l| l.get(27..31) == Some(" <~ ")).collect();
    assert!(!lz4_lines.is_empty() && text.contains(" >~ "));
    if !common::have("lz4") {
        return;
    }
    // muxcat's reading of those lines, and lz4's of their frames.
    let header = text.lines().next().unwrap();
    let only_lz4 = format!("{header}\n{}\n", lz4_lines.join("\n"));
    let ours = transcript::parse(only_lz4.as_bytes(), "lz4-lines")
        .unwrap()
        .stream(Mark::In);
    let frames: Vec<u8> = lz4_lines
        .iter()
        .flat_map(|l| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(&l[31..])
                .unwrap()
        })
        .collect();
    let mut lz4 = Command::new("lz4")
        .args(["-d", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = lz4.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || stdin.write_all(&frames).unwrap());
    let theirs = lz4.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(
        theirs.status.success(),
        "{}",
        String::from_utf8_lossy(&theirs.stderr)
    );
    assert!(!ours.is_empty());
    assert_eq!(sha256(&theirs.stdout), sha256(&ours));
}

const SIZE: usize = 16 * 1024 * 1024;

/// `to_peer` and `from_peer` through `connect --record` (with `options`);
/// checks every stream and the transcript's decoding; the transcript.
fn record_both_ways(options: &[&str], to_peer: Vec<u8>, from_peer: Vec<u8>) -> Vec<u8> {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let peer_data = from_peer.clone();
    let peer = std::thread::spawn(move || {
        let (s, _) = server.accept().unwrap();
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            w.write_all(&peer_data).unwrap();
            w.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        (&s).read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        got
    });
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(muxcat_bin())
        .args(["-q", "--record", dir.path().to_str().unwrap()])
        .args(options)
        .args(["connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = to_peer.clone();
    let feeder = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), from_peer.len(), "stdout has the wrong length");
    assert_eq!(sha256(&out.stdout), sha256(&from_peer));
    assert_eq!(sha256(&peer.join().unwrap()), sha256(&to_peer));

    let files = transcripts(dir.path());
    assert_eq!(files.len(), 1);
    let file = files[0].to_str().unwrap();
    let sent = replay(&[file, "--raw", "out"]);
    assert!(sent.status.success());
    assert_eq!(sent.stdout.len(), to_peer.len());
    assert_eq!(sha256(&sent.stdout), sha256(&to_peer), "sent stream differs");
    let received = replay(&[file, "--raw", "in"]);
    assert!(received.status.success());
    assert_eq!(
        sha256(&received.stdout),
        sha256(&from_peer),
        "received stream differs"
    );
    // Pipe mode is binary: every line of the file is plain ASCII.
    let text = std::fs::read(file).unwrap();
    assert!(text.iter().all(|&b| b == b'\n' || (0x20..0x7f).contains(&b)));
    text
}

/// A SIGKILLed process loses at most the flush interval.
#[test]
fn killed_process_keeps_every_chunk_older_than_the_flush_interval() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = server.accept().unwrap();
        let mut sent = Vec::new();
        for i in 0..200 {
            let line = format!("chunk {i}\n");
            if s.write_all(line.as_bytes()).is_err() {
                break;
            }
            sent.push((Instant::now(), line));
            std::thread::sleep(Duration::from_millis(10));
        }
        sent
    });
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(muxcat_bin())
        .args(["--record", dir.path().to_str().unwrap(), "run", "--stay"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(child.stdin.as_mut().unwrap(), "connect 127.0.0.1:{port}").unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    child.kill().unwrap(); // SIGKILL
    let killed_at = Instant::now();
    child.wait().unwrap();
    let sent = peer.join().unwrap();
    let files = transcripts(dir.path());
    assert_eq!(files.len(), 1);
    let text = std::fs::read(&files[0]).unwrap();
    // The file may end mid-line; what it holds decodes.
    let parsed = transcript::parse_lenient(&text, "t").unwrap();
    let received = String::from_utf8(parsed.stream(Mark::In)).unwrap();
    // Chunks sent well before the kill (flush interval plus generous
    // scheduling slack) must be there.
    let old_enough: Vec<&String> = sent
        .iter()
        .filter(|(at, _)| killed_at.duration_since(*at) > Duration::from_millis(400))
        .map(|(_, l)| l)
        .collect();
    assert!(
        old_enough.len() > 20,
        "the peer sent too little: {}",
        old_enough.len()
    );
    for line in old_enough {
        assert!(
            received.contains(line.as_str()),
            "{line:?} missing from the transcript"
        );
    }
}

#[tokio::test]
async fn record_command_starts_and_stops_a_transcript() {
    let echo = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.log");
    let mut h = Harness::new();
    h.session(&format!("connect --label dev {echo}")).await;
    h.ok("send before").await;
    h.ok("waitfor before").await;
    h.ok(&format!("record dev {}", file.display())).await;
    h.ok("send during").await;
    h.ok("waitfor during").await;
    h.ok("record off").await;
    h.ok("send after").await;
    h.ok("waitfor after").await;
    h.ok(&format!("record {}", file.with_file_name("two.log").display()))
        .await;
    h.ok("disconnect").await;

    let text = std::fs::read(&file).unwrap();
    let parsed = transcript::parse(&text, "one.log").unwrap();
    assert_eq!(parsed.stream(Mark::Out), b"during\n");
    assert_eq!(parsed.stream(Mark::In), b"during\n");
    assert_eq!(parsed.entries.last().unwrap().data, b"recording stopped");
    let two = std::fs::read_to_string(file.with_file_name("two.log")).unwrap();
    assert!(two.trim_end().ends_with("* disconnected local"), "{two}");

    // The readable replay shows each line safely.
    let out = replay(&[file.to_str().unwrap()]);
    assert!(out.status.success());
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(shown.contains("> during\\n"), "{shown}");
}

#[tokio::test]
async fn unwritable_transcript_is_record_failed_and_the_session_goes_on() {
    let echo = echo_server().await;
    let mut h = Harness::new();
    h.session(&format!("connect {echo}")).await;
    let err = h.run("record /nonexistent-dir/x.log").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::RecordFailed);
    assert!(err.text.contains("/nonexistent-dir/x.log"), "{}", err.text);
    h.ok("send still fine").await;
    h.ok("waitfor still fine").await;
}

#[tokio::test]
async fn record_dir_that_cannot_be_written_reports_and_continues() {
    let echo = echo_server().await;
    // A folder that cannot be made (a file is in the way; muxcat makes a
    // missing one).
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("file"), "").unwrap();
    let (manager, events) = muxcat::core::Manager::start(muxcat::core::ManagerConfig {
        record_dir: Some(tmp.path().join("file").join("transcripts")),
        ..Default::default()
    });
    let mut h = Harness {
        manager,
        events,
        seen: Vec::new(),
    };
    h.session(&format!("connect {echo}")).await;
    let ev = h.find(|e| common::error_code(e) == Some("RECORD_FAILED")).await;
    assert!(ev.session_id.is_some());
    h.ok("send on").await;
    h.ok("waitfor on").await;
}

#[test]
fn replay_rejects_files_that_are_not_transcripts() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("notes.txt");
    std::fs::write(&bad, "just some notes\n").unwrap();
    let out = replay(&[bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1") && err.contains("notes.txt"), "{err}");

    let cut = dir.path().join("cut.log");
    std::fs::write(
        &cut,
        "# muxcat transcript v1 sess-x tcp a -> b mode=line\n\
         2026-11-23T03:44:01.123456Z < whole\\n\n\
         2026-11-23T03:44:01.123457Z < cut in hal",
    )
    .unwrap();
    let out = replay(&[cut.to_str().unwrap(), "--raw", "in"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        out.stdout, b"whole\n",
        "what precedes the bad line is still decoded"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3") && err.contains("truncated"), "{err}");
    let out = replay(&[cut.to_str().unwrap(), "--raw", "sideways"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn record_never_follows_overwrites_or_blocks_on_an_existing_path() {
    use std::os::unix::fs::PermissionsExt;
    let echo = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::new();
    h.session(&format!("connect {echo}")).await;

    // A symlink to a file of the user's: refused, the target untouched.
    let target = dir.path().join("precious.txt");
    std::fs::write(&target, b"keep me").unwrap();
    let link = dir.path().join("link.log");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = h.run(&format!("record {}", link.display())).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::RecordFailed);
    assert!(err.text.contains("already exists"), "{}", err.text);
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");

    // An existing file: refused, not truncated, its mode kept.
    let existing = dir.path().join("old.log");
    std::fs::write(&existing, b"old transcript").unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = h
        .run(&format!("record {}", existing.display()))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::RecordFailed);
    assert_eq!(std::fs::read(&existing).unwrap(), b"old transcript");

    // A FIFO nobody reads: refused at once, nothing hangs.
    let fifo = dir.path().join("fifo.log");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let started = Instant::now();
    let err = h.run(&format!("record {}", fifo.display())).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::RecordFailed);
    assert!(started.elapsed() < Duration::from_secs(5));
    h.ok("send still fine").await;
    h.ok("waitfor still fine").await;
    h.ok("sessions").await;

    // A new file is created owner-only.
    let fresh = dir.path().join("new.log");
    h.ok(&format!("record {}", fresh.display())).await;
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_dir_takes_a_free_name_when_one_is_taken() {
    // Two processes with the same --id in the same second: both kept.
    let echo = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let run = |dir: PathBuf| {
        let script = format!("connect --id dev {echo}\nsend hi\nwaitfor hi\n");
        std::thread::spawn(move || {
            let mut child = Command::new(muxcat_bin())
                .args(["--record", dir.to_str().unwrap(), "run"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
            child.wait().unwrap().code()
        })
    };
    let (a, b) = (run(dir.path().into()), run(dir.path().into()));
    assert_eq!(a.join().unwrap(), Some(0));
    assert_eq!(b.join().unwrap(), Some(0));
    let files = transcripts(dir.path());
    // Within one second they share a stem, and one takes `-2`; either
    // way there are two whole transcripts.
    assert_eq!(files.len(), 2, "{files:?}");
    for f in files {
        let parsed = transcript::parse(&std::fs::read(&f).unwrap(), "t").unwrap();
        assert_eq!(parsed.stream(Mark::Out), b"hi\n");
    }
}
