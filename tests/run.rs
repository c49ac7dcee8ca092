//! `muxcat run` and bare `muxcat` with a piped script: the real binary,
//! real peers, exit statuses and output formats.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs muxcat with `args` and `script` on stdin, off the async runtime.
async fn muxcat(args: &[&str], script: &str) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let script = script.to_string();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(muxcat_bin())
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start muxcat");
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

fn readme_script(port: u16) -> String {
    format!("connect 127.0.0.1:{port}\nsend hello\nwaitfor ^hello$\ndisconnect\n")
}

/// Every `sent` is reported before the echo of what it sent, however the
/// runtime's threads interleave (under load it once was not).
#[tokio::test]
async fn a_send_is_reported_before_its_echo() {
    let echo = echo_server().await;
    let mut script = format!("connect 127.0.0.1:{}\n", echo.port());
    for i in 0..300 {
        script.push_str(&format!("send m{i}\nwaitfor ^m{i}$\n"));
    }
    let out = muxcat(&["run"], &script).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let mut sent = 0;
    let mut echoes = 0;
    for line in out.stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.get(2..4) {
            Some([">", "sent"]) => sent += 1,
            Some(["<", text]) => {
                assert_eq!(*text, format!("m{echoes}"), "{line}");
                echoes += 1;
                assert!(
                    sent >= echoes,
                    "echo {echoes} reported before its send:\n{}",
                    out.stdout
                );
            }
            _ => {}
        }
    }
    assert_eq!((sent, echoes), (300, 300), "{}", out.stdout);
}

#[tokio::test]
async fn readme_script_readable() {
    let echo = echo_server().await;
    let out = muxcat(&["run"], &readme_script(echo.port())).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let words: Vec<&str> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().nth(2).unwrap_or(""))
        .collect();
    assert_eq!(
        words,
        [
            "connecting",
            "connected",
            ">",
            "<",
            "match",
            "disconnecting",
            "disconnected"
        ],
        "{}",
        out.stdout
    );
    // `03:44:01.123 sess-1a2b3c4d connected 127.0.0.1:2323`
    let connected = out.stdout.lines().nth(1).unwrap();
    let parts: Vec<&str> = connected.split_whitespace().collect();
    assert_eq!(parts[0].len(), "03:44:01.123".len(), "{connected}");
    assert!(
        parts[1].starts_with("sess-") && parts[1].len() == 13,
        "{connected}"
    );
    assert_eq!(parts[3], echo.to_string());
}

#[tokio::test]
async fn readme_script_json_and_bare_muxcat() {
    let echo = echo_server().await;
    // Bare `muxcat` with a piped stdin runs the script.
    let out = muxcat(&["--json"], &readme_script(echo.port())).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let events = json_lines(&out.stdout);
    // A line split across reads is also reported in part as it arrives
    // (`"partial": true`); the sequence of whole events is fixed, but for
    // the echo, which the reader may report before the writer its `sent`.
    let mut names: Vec<&str> = events
        .iter()
        .filter(|e| e["partial"] != true)
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    names[2..4].sort();
    assert_eq!(
        names,
        [
            "connecting",
            "connected",
            "data",
            "sent",
            "match",
            "disconnecting",
            "disconnected"
        ]
    );
    let id = events[0]["sessionId"].as_str().unwrap();
    for e in &events {
        assert_eq!(e["status"], "ok");
        assert_eq!(e["sessionId"], id);
        let ts = e["timestamp"].as_str().unwrap();
        assert!(ts.len() == 24 && ts.ends_with('Z') && &ts[10..11] == "T", "{ts}");
    }
    assert_eq!(events[0]["host"], "127.0.0.1");
    assert_eq!(events[0]["port"], echo.port());
    assert_eq!(events[3]["text"], "hello");
    assert_eq!(events[4]["match"], "hello");
    assert_eq!(events[4]["lines"], serde_json::json!([]));
    assert_eq!(events[6]["reason"], "local");
}

/// The same script against an echo server this project did not write.
#[tokio::test]
async fn readme_script_against_python_asyncio_echo() {
    let server = r#"
import asyncio, sys
async def handle(r, w):
    while True:
        d = await r.read(65536)
        if not d:
            break
        w.write(d)
        await w.drain()
    w.close()
async def main():
    s = await asyncio.start_server(handle, '127.0.0.1', 0)
    print(s.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(30)
asyncio.run(main())
"#;
    let child = Command::new("python3")
        .args(["-c", server])
        .stdout(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        println!("skipping: python3 is not installed");
        return;
    };
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().unwrap();
    let out = muxcat(&["run", "--json"], &readme_script(port)).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let events = json_lines(&out.stdout);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "match" && e["match"] == "hello")
    );
}

#[tokio::test]
async fn first_failure_stops_the_script_with_status_1() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let script = format!("connect 127.0.0.1:{port}\nlisten 127.0.0.1:0\n");
    let out = muxcat(&["run", "--json"], &script).await;
    assert_eq!(out.code, 1);
    let events = json_lines(&out.stdout);
    let last = events.last().unwrap();
    assert_eq!(last["status"], "error");
    assert_eq!(last["event"], "error");
    assert_eq!(last["errorCode"], "CONNECT_REFUSED");
    assert!(last["errorText"].as_str().unwrap().contains(&port.to_string()));
    assert!(!out.stdout.contains("listening"), "ran past the failure");
}

#[tokio::test]
async fn keep_going_runs_everything_and_still_fails() {
    let script = "bogus command\nsend --hex zz\nwaitfor (\nlisten 127.0.0.1:0\nlisteners\n";
    let out = muxcat(&["run", "--json", "--keep-going"], script).await;
    assert_eq!(out.code, 1);
    let events = json_lines(&out.stdout);
    let codes: Vec<&str> = events.iter().filter_map(|e| e["errorCode"].as_str()).collect();
    assert_eq!(codes, ["COMMAND_INVALID", "PAYLOAD_INVALID", "REGEX_INVALID"]);
    let first = events[0]["errorText"].as_str().unwrap();
    assert!(first.starts_with("line 1:") && first.contains("bogus"), "{first}");
    assert!(events.iter().any(|e| e["event"] == "listening"));
    // The listener was closed at the end.
    assert_eq!(events.last().unwrap()["event"], "closed");
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let out = muxcat(&["run", "--no-such-flag"], "").await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--no-such-flag"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    let out = muxcat(&["run", "/nonexistent/script.mux"], "").await;
    assert_eq!(out.code, 2);
}

#[tokio::test]
async fn empty_and_comment_only_scripts_succeed() {
    let out = muxcat(&["run"], "# nothing\n\n   \n").await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let out = muxcat(&["run"], "quit\nbogus\n").await;
    assert_eq!(out.code, 0, "quit ends the script before the bad line");
}

#[tokio::test]
async fn script_file_and_self_contained_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("talk.mux");
    // Find a free port for the listener (the script needs to name it).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    std::fs::write(
        &path,
        format!(
            "listen --label srv 127.0.0.1:{port}\n\
             connect --label cli 127.0.0.1:{port}\n\
             accept\n\
             send --to cli 'hello, server'\n\
             waitfor '^hello, server$'   # on the accepted session\n\
             send welcome\n\
             expect --on cli ^welcome$\n\
             sleep 50ms\n\
             sessions\n"
        ),
    )
    .unwrap();
    let out = muxcat(&["run", path.to_str().unwrap()], "").await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.matches(" match ").count(), 2, "{}", out.stdout);
    // End of script: both sessions and the listener closed cleanly.
    assert_eq!(out.stdout.matches("disconnected").count(), 2, "{}", out.stdout);
    assert!(out.stdout.contains(" closed"), "{}", out.stdout);
}

#[tokio::test]
async fn lines_run_as_they_arrive() {
    let echo = echo_server().await;
    let port = echo.port();
    let (first_event_after, total) = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let mut child = Command::new(muxcat_bin())
            .arg("run")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "connect 127.0.0.1:{port}").unwrap();
        stdin.flush().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        // The connect runs while stdin is still open.
        while !line.contains("connected") {
            line.clear();
            out.read_line(&mut line).unwrap();
        }
        let first = start.elapsed();
        std::thread::sleep(Duration::from_millis(300));
        writeln!(stdin, "send later").unwrap();
        drop(stdin);
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        assert!(child.wait().unwrap().success());
        assert!(rest.contains("sent"), "{rest}");
        (first, start.elapsed())
    })
    .await
    .unwrap();
    assert!(first_event_after < total);
}

#[tokio::test]
async fn stay_serves_until_interrupted() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let code = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(muxcat_bin())
            .args(["run", "--stay"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "listen 127.0.0.1:{port}").unwrap();
        drop(stdin);
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.contains("listening"), "{line}");
        // The script has ended, yet the listener still serves.
        std::thread::sleep(Duration::from_millis(200));
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("still listening");
        line.clear();
        out.read_line(&mut line).unwrap();
        assert!(line.contains("accepted"), "{line}");
        drop(c);
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().unwrap().code()
    })
    .await
    .unwrap();
    assert_eq!(code, Some(130));
}

#[tokio::test]
async fn end_of_script_closes_sessions_so_the_peer_sees_eof() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut s, _) = listener.accept().await.unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).await.unwrap();
        all
    });
    let out = muxcat(&["run"], &format!("connect 127.0.0.1:{port}\nsend --raw bye\n")).await;
    assert_eq!(out.code, 0);
    let got = tokio::time::timeout(WAIT, peer).await.unwrap().unwrap();
    assert_eq!(got, b"bye");
}

#[tokio::test]
async fn source_runs_a_file_and_names_the_failing_line() {
    let echo = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("inner.mux");
    std::fs::write(
        &inner,
        format!(
            "connect 127.0.0.1:{}\nsend from inner\nwaitfor ^from inner$\n",
            echo.port()
        ),
    )
    .unwrap();
    let out = muxcat(
        &["run"],
        &format!("source {}\nsend after\nwaitfor ^after$\n", inner.display()),
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.matches(" match ").count(), 2, "{}", out.stdout);

    let bad = dir.path().join("bad.mux");
    std::fs::write(&bad, "# a comment\nsend --hex zz\n").unwrap();
    let out = muxcat(
        &["run", "--json"],
        &format!("source {}\nlisteners\n", bad.display()),
    )
    .await;
    assert_eq!(out.code, 1);
    let events = json_lines(&out.stdout);
    let text = events[0]["errorText"].as_str().unwrap();
    assert!(text.contains("bad.mux:2"), "{text}");
    assert!(
        !out.stdout.contains("listeners"),
        "the script stopped at the failed source"
    );

    let looping = dir.path().join("loop.mux");
    std::fs::write(&looping, format!("source {}\n", looping.display())).unwrap();
    let out = muxcat(&["run", "--json"], &format!("source {}\n", looping.display())).await;
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("nests deeper"), "{}", out.stdout);
}

#[tokio::test]
async fn endless_files_are_refused_at_a_cap_not_read_into_memory() {
    // An endless script: the first line never ends.
    let out = muxcat(&["--json", "run", "/dev/zero"], "").await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let lines = json_lines(&out.stdout);
    let err = lines
        .iter()
        .find(|l| l["status"] == "error")
        .expect("an error event");
    assert_eq!(err["errorCode"], "IO_ERROR");
    let text = err["errorText"].as_str().unwrap();
    assert!(
        text.contains("line 1") && text.contains("longer than 1 MiB"),
        "{text}"
    );
    // A certificate, key or CA that never ends.
    let script = "listen --tls --cert /dev/zero --key /dev/zero 127.0.0.1:0\n\
                  connect --tls --ca /dev/zero 127.0.0.1:1\n";
    let out = muxcat(&["--json", "run", "--keep-going"], script).await;
    assert_eq!(out.code, 1);
    let errors: Vec<_> = json_lines(&out.stdout)
        .into_iter()
        .filter(|l| l["status"] == "error")
        .collect();
    assert_eq!(errors.len(), 2, "{}", out.stdout);
    for e in errors {
        assert_eq!(e["errorCode"], "TLS_CONFIG_INVALID");
        let text = e["errorText"].as_str().unwrap();
        assert!(
            text.contains("/dev/zero") && text.contains("larger than 1 MiB"),
            "{text}"
        );
    }
    // `source` of an endless file.
    let out = muxcat(&["--json", "run"], "source /dev/zero\n").await;
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("larger than 16 MiB"), "{}", out.stdout);
}

#[tokio::test]
async fn operator_words_never_reach_the_terminal_raw_or_the_file_system() {
    let echo = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().to_str().unwrap().to_string();
    // A title-setting escape and a path in --id are refused, escaped.
    let script = format!(
        "connect --id '\x1b]0;pwned\x07' {echo}\nconnect --id a/b {echo}\nconnect --id ../up {echo}\non '\x1b]0;x\x07' send '\\x1b[2J'\n"
    );
    let out = muxcat(&["--record", &record, "run", "--keep-going"], &script).await;
    assert_eq!(out.code, 1);
    assert!(
        !out.stdout.contains('\x1b') && !out.stdout.contains('\x07'),
        "{:?}",
        out.stdout
    );
    let invalid = out.stdout.matches("COMMAND_INVALID").count();
    assert!(invalid >= 3, "{}", out.stdout);
    assert!(out.stdout.contains("armed"), "{}", out.stdout);
    // Nothing was written outside the directory, and no subdirectory made.
    assert!(!dir.path().join("a").exists());
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    assert!(!dir.path().parent().unwrap().join("up").exists());
}

/// `plot` in a script: each matching line is a `sample` event (JSON and
/// text), one value per capture group; display rules (`highlight`,
/// `filter`) are accepted without a screen, so a profile with them runs
/// headless too, and say they did nothing; a plot is listed with the
/// triggers and `off` removes it.
#[tokio::test]
async fn plots_send_samples_and_display_rules_run_headless() {
    let script = |server: std::net::SocketAddr| {
        format!(
            "connect {server}\nplot 'T=(?P<temp>\\S+) H=(?P<humidity>\\S+)'\nhighlight ERROR red\nfilter -v noise\nwaitfor ^end$\ntriggers\noff plot-1\ndisconnect\n"
        )
    };
    let server = || {
        scripted_server(vec![
            (
                Duration::from_millis(300),
                b"T=21.5 H=40\r\nnoise\nT=22 H=n/a\n".to_vec(),
            ),
            (Duration::from_millis(200), b"end\n".to_vec()),
        ])
    };
    let out = muxcat(&["run", "--json"], &script(server().await)).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let events = json_lines(&out.stdout);
    let samples: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "sample").collect();
    assert_eq!(samples.len(), 2, "{}", out.stdout);
    assert_eq!(samples[0]["plot"], "plot-1");
    assert_eq!(samples[0]["series"], serde_json::json!(["temp", "humidity"]));
    assert_eq!(samples[0]["values"], serde_json::json!([21.5, 40.0]));
    assert_eq!(samples[1]["values"], serde_json::json!([22.0, null]));
    assert!(samples[0]["sessionId"].as_str().unwrap().starts_with("sess-"));
    let listed = events
        .iter()
        .find(|e| e["event"] == "triggers")
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert_eq!(listed["triggers"][0]["triggerId"], "plot-1");
    let out = muxcat(&["run"], &script(server().await)).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("sample plot-1 temp=21.5 humidity=40"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("plot plot-1 removed"), "{}", out.stdout);
    for command in ["highlight", "filter"] {
        assert!(
            out.stdout.contains(&format!(
                "{command}: only the TUI shows it; nothing to do without a screen"
            )),
            "{}",
            out.stdout
        );
    }
    // A bad colour or regex fails the line, naming it.
    let out = muxcat(&["run", "--json"], "highlight ERROR mauve\n").await;
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("\\\"mauve\\\" is not a colour"),
        "{}",
        out.stdout
    );
    let out = muxcat(&["run", "--json"], "plot 'T=('\n").await;
    assert!(out.stdout.contains("REGEX_INVALID"), "{}", out.stdout);
}

/// `muxcat man [SUBCOMMAND]`: a man page made from the clap definitions,
/// every option in it (the one for proxies on its own page).
#[test]
fn man_pages_come_from_the_command_line_definitions() {
    let page = |args: &[&str]| {
        let out = Command::new(muxcat_bin()).arg("man").args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, main) = page(&[]);
    assert_eq!(code, Some(0));
    assert!(
        main.contains(".TH muxcat 1") && main.contains("allow\\-exec") && main.contains("config"),
        "{main}"
    );
    let (_, proxy) = page(&["proxy"]);
    assert!(
        proxy.contains(".TH muxcat\\-proxy 1") || proxy.contains(".TH muxcat-proxy 1"),
        "{proxy}"
    );
    for option in ["tls\\-in", "tls\\-out", "allowfile", "quiet"] {
        assert!(proxy.contains(option), "{option} missing");
    }
    let (_, connect) = page(&["connect"]);
    for option in [
        "proxy\\-type",
        "proxy\\-auth",
        "proxy\\-dns",
        "pty",
        "source\\-port",
    ] {
        assert!(connect.contains(option), "{option} missing");
    }
    assert_eq!(page(&["nosuch"]).0, Some(2));
}

/// Shell completions know every option, the newest included.
#[test]
fn completions_know_every_option() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(muxcat_bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        for option in [
            "proxy-type",
            "proxy-auth",
            "proxy-dns",
            "pty",
            "sh-exec",
            "allowfile",
            "config",
            "telnet",
        ] {
            assert!(text.contains(option), "{shell}: {option} missing");
        }
    }
}
