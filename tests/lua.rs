//! Lua scripts (`run x.lua`, `source x.lua`, `lua CHUNK`) against peers on
//! loopback written here: the API, multi-pattern expect, errors caught and
//! uncaught, computed triggers, timers, the sandbox, a runaway loop
//! stopped, and the shipped examples against stand-in devices.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

fn write_script(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `muxcat run --json FILE` with `env`; its output and the JSON events.
async fn run(args: &[&str], env: &[(&str, String)]) -> (Output, Vec<serde_json::Value>) {
    let mut cmd = Command::new(muxcat_bin());
    cmd.arg("--json").arg("run").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.stdin(Stdio::null()).output().unwrap())
        .await
        .unwrap();
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (out, events)
}

fn infos(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "info")
        .map(|e| e["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn the_api_against_an_echo_peer() {
    let addr = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let transcript = dir.path().join("t.log");
    let script = write_script(
        &dir,
        "api.lua",
        &format!(
            r#"
local s = mux.connect("{addr}", {{ label = "echo" }})
s:record("{transcript}")
s:send("AT+GMR")
local i, m, caps = s:expect({{ "^ERROR (\\d+)$", "^AT\\+(?P<cmd>\\w+)$" }}, 5)
mux.log("expect", i, m, caps.cmd)
s:send("ERROR 42")
i, m, caps = s:expect({{ "^ERROR (\\d+)$", "^OK$" }}, 5)
mux.log("expect", i, m, caps[1])
local none, why = s:expect("^never$", 0.2)
mux.log("timeout", tostring(none), why)
s:sendhex("41 42 0a")
i, m = s:expect("^AB$", 5)
mux.log("hex", m)
s:send("\0\255binary", {{ raw = true }})
s:send("")
i, m, caps = s:expect("binary", 5)
mux.log("bytes", m, #caps.line, mux.hex(caps.line:sub(1, 2)))
mux.log("crc", mux.hex((mux.crc("crc16-modbus", mux.unhex("01 03 00 00 00 0a")))), select(2, mux.crc("crc32", "123456789")))
local list = mux.sessions()
mux.log("sessions", #list, list[1].label, list[1].kind)
mux.command("view echo hex")
s:close()
local t = mux.connect("{addr}")
t:shutdown()
"#,
            transcript = transcript.display()
        ),
    );
    let (out, events) = run(&[script.to_str().unwrap()], &[]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let said = infos(&events);
    let has = |t: &str| said.iter().any(|s| s == t);
    assert!(has("expect\t2\tAT+GMR\tGMR"), "{said:?}");
    assert!(has("expect\t1\tERROR 42\t42"), "{said:?}");
    assert!(has("timeout\tnil\ttimeout"), "{said:?}");
    assert!(has("hex\tAB"), "{said:?}");
    assert!(has("bytes\tbinary\t8\t00ff"), "{said:?}");
    assert!(has(&format!("crc\tc5cd\t{}", 0xCBF4_3926u32)), "{said:?}");
    assert!(has("sessions\t1\techo\ttcp"), "{said:?}");
    // The same events as the command language's: opened, sent, matched.
    for name in ["connected", "sent", "match", "disconnected"] {
        assert!(events.iter().any(|e| e["event"] == name), "no {name} event");
    }
    let text = std::fs::read_to_string(&transcript).unwrap();
    assert!(text.contains("> \\x00\\xffbinary"), "{text}");
}

#[tokio::test]
async fn errors_are_tables_with_codes_and_uncaught_ones_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let caught = write_script(
        &dir,
        "caught.lua",
        r#"
local ok, e = pcall(mux.connect, "127.0.0.1:1")
mux.log("caught", tostring(ok), e.code, e.where)
local ok2, e2 = pcall(mux.connect, "not an address")
mux.log("caught", e2.code)
local ok3, e3 = pcall(function() local s = { id = "sess-nope" }; setmetatable(s, getmetatable(mux.sessions) or {}); return mux.command("send --to nobody x") end)
mux.log("caught", e3.code)
"#,
    );
    let (out, events) = run(&[caught.to_str().unwrap()], &[]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let said = infos(&events);
    let first = format!("caught\tfalse\tCONNECT_REFUSED\t{}:2", caught.display());
    assert!(said.contains(&first), "{said:?}");
    assert!(said.contains(&"caught\tADDRESS_INVALID".to_string()), "{said:?}");
    assert!(
        said.contains(&"caught\tSESSION_NOT_FOUND".to_string()),
        "{said:?}"
    );

    let uncaught = write_script(
        &dir,
        "uncaught.lua",
        "mux.log('before')\n\nmux.connect('127.0.0.1:1')\nmux.log('never')\n",
    );
    let (out, events) = run(&[uncaught.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let last = events.iter().rev().find(|e| e["event"] == "error").unwrap();
    assert_eq!(last["errorCode"], "CONNECT_REFUSED");
    let text = last["errorText"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("{}:3: 127.0.0.1:1", uncaught.display())),
        "{last}"
    );
    assert!(!infos(&events).contains(&"never".to_string()));

    let plain = write_script(&dir, "plain.lua", "local t = nil\nlocal x = t.field\n");
    let (out, events) = run(&[plain.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let last = events.iter().rev().find(|e| e["event"] == "error").unwrap();
    assert_eq!(last["errorCode"], "LUA_ERROR");
    assert!(
        last["errorText"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}:2: ", plain.display())),
        "{last}"
    );

    let syntax = write_script(&dir, "syntax.lua", "if then\n");
    let (out, events) = run(&[syntax.to_str().unwrap()], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        events
            .iter()
            .any(|e| e["errorCode"] == "LUA_ERROR"
                && e["errorText"].as_str().unwrap().contains("syntax.lua:1:"))
    );
}

#[tokio::test]
async fn computed_triggers_and_timers_serve_clients() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let script = write_script(
        &dir,
        "sim.lua",
        &format!(
            r#"
local l = mux.listen("127.0.0.1:{port}")
local asked = 0
mux.on(l, "^GET (?P<name>\\w+)$", function(s, m)
  asked = asked + 1
  return "VALUE " .. m.name .. "=" .. (40 + asked)
end)
mux.on(l, "^QUIET$", function(s, m) return nil end)
local ticks = 0
mux.every(0.05, function() ticks = ticks + 1 end)
mux.serve(1.5)
mux.log("asked", asked, ticks > 10)
"#
        ),
    );
    let path = script.display().to_string();
    let running = tokio::spawn(async move { run(&[&path], &[]).await });
    let client = script_client(port).await;
    let mut client = BufReader::new(client.expect("the script listens"));
    client.write_all(b"GET temp\nQUIET\nGET volt\n").await.unwrap();
    let mut answers = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        client.read_line(&mut line).await.unwrap();
        answers.push(line);
    }
    assert_eq!(answers, ["VALUE temp=41\n", "VALUE volt=42\n"]);
    let (out, events) = running.await.unwrap();
    assert!(out.status.success());
    assert!(
        infos(&events).contains(&"asked\t2\ttrue".to_string()),
        "{:?}",
        infos(&events)
    );
}

#[tokio::test]
async fn the_sandbox_refuses_programs_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        &dir,
        "exec.lua",
        "local ok, e = pcall(os.execute, 'true')\nmux.log('execute', tostring(ok), tostring(e):match('lua%-exec') ~= nil)\nlocal ok2 = pcall(os.exit, 3)\nmux.log('exit', tostring(ok2))\n",
    );
    let (out, events) = run(&[script.to_str().unwrap()], &[]).await;
    assert!(out.status.success());
    let said = infos(&events);
    assert!(said.contains(&"execute\tfalse\ttrue".to_string()), "{said:?}");
    assert!(said.contains(&"exit\tfalse".to_string()), "{said:?}");
    let out = Command::new(muxcat_bin())
        .args(["--json", "--lua-exec", "run"])
        .arg(&script)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("execute\\ttrue"));
}

/// `source x.lua` and `lua CHUNK` go through the one executor; a loop
/// that never waits is stopped by its script's stop (the TUI's Ctrl-C).
#[tokio::test]
async fn source_lua_chunks_and_a_runaway_loop_stopped() {
    use muxcat::exec::{Executor, Headless, Script, Step};
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new();
    let executor = Executor::new(
        h.manager.clone(),
        std::sync::Arc::new(Headless(h.manager.clone())),
    );
    let ok = write_script(&dir, "ok.lua", "mux.log('from a file')\n");
    let mut script = Script::default();
    let step = executor
        .run_line(
            format!("source {}", ok.display()).as_bytes(),
            "line 1",
            &mut script,
            0,
        )
        .await;
    assert!(matches!(step, Step::Done(_)), "{step:?}");
    let step = executor
        .run_line(
            br#"lua mux.log("from " .. "the bar", 1 + 1)"#,
            "bar",
            &mut script,
            0,
        )
        .await;
    assert!(matches!(step, Step::Done(_)), "{step:?}");

    let spin = write_script(&dir, "spin.lua", "local n = 0\nwhile true do n = n + 1 end\n");
    let stop = tokio_util::sync::CancellationToken::new();
    let mut script = Script {
        stop: Some(stop.clone()),
        ..Script::default()
    };
    let canceller = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        canceller.cancel();
    });
    let started = std::time::Instant::now();
    let step = tokio::time::timeout(
        WAIT,
        executor.run_line(
            format!("source {}", spin.display()).as_bytes(),
            "line 2",
            &mut script,
            0,
        ),
    )
    .await
    .expect("the loop was stopped");
    assert!(matches!(step, Step::Stopped { .. } | Step::Failed(_)), "{step:?}");
    assert!(started.elapsed() < WAIT);
    // The process, the manager and other sessions carry on.
    let step = executor
        .run_line(b"lua mux.log('after')", "line 3", &mut Script::default(), 0)
        .await;
    assert!(matches!(step, Step::Done(_)), "{step:?}");
}

/// A client of the port a script listens on, once its triggers are armed.
async fn script_client(port: u16) -> Option<tokio::net::TcpStream> {
    for _ in 0..100 {
        if let Ok(c) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            // Its triggers are armed just after it listens.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return Some(c);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// A console that asks for a login twice (the first password is wrong).
async fn login_device() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((s, _)) = listener.accept().await else {
            return;
        };
        let (r, mut w) = s.into_split();
        let mut lines = BufReader::new(r).lines();
        let mut tries = 0;
        loop {
            w.write_all(b"\r\nlogin: ").await.unwrap();
            let Ok(Some(user)) = lines.next_line().await else {
                return;
            };
            w.write_all(b"Password: ").await.unwrap();
            let Ok(Some(pass)) = lines.next_line().await else {
                return;
            };
            tries += 1;
            if user.trim() == "admin" && pass.trim() == "secret" && tries > 1 {
                w.write_all(b"\r\n# ").await.unwrap();
                break;
            }
            w.write_all(b"\r\nLogin incorrect\r\n").await.unwrap();
        }
        while let Ok(Some(cmd)) = lines.next_line().await {
            // A shell echoes the command, then answers.
            w.write_all(format!("{}\r\n", cmd.trim()).as_bytes())
                .await
                .unwrap();
            if cmd.trim() == "uname -a" {
                w.write_all(b"Linux board 6.1.0 armv7l\r\n# ").await.unwrap();
            }
        }
    });
    addr
}

/// Modbus/TCP: register 0 reads 70, 75, 80, … (one more step each poll).
async fn modbus_device() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let mut value: u16 = 70;
        let mut req = [0u8; 12];
        while s.read_exact(&mut req).await.is_ok() {
            let mut answer = vec![req[0], req[1], 0, 0, 0, 5, req[6], 3, 2];
            answer.extend_from_slice(&value.to_be_bytes());
            value += 5;
            if s.write_all(&answer).await.is_err() {
                return;
            }
        }
    });
    addr
}

/// Busy on the first connection, silent on the second, answers on the third.
async fn flaky_device() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((s, _)) = listener.accept().await {
            n += 1;
            let (r, mut w) = s.into_split();
            let mut lines = BufReader::new(r).lines();
            let Ok(Some(_)) = lines.next_line().await else {
                continue;
            };
            match n {
                1 => {
                    let _ = w.write_all(b"BUSY\n").await;
                }
                2 => {}
                _ => {
                    let _ = w.write_all(b"OK ready 42\n").await;
                }
            }
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                drop(w);
            });
        }
    });
    addr
}

fn example(name: &str) -> String {
    format!("{}/examples/lua/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn the_shipped_examples_run_against_stand_in_devices() {
    let device = login_device().await;
    let env = [
        ("DEVICE", device.to_string()),
        ("DEVICE_PASSWORD", "secret".to_string()),
    ];
    let (out, events) = run(&[&example("login.lua")], &env).await;
    let said = infos(&events);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        said.iter().any(|s| s == "logged in after 2 attempt(s)"),
        "{said:?}"
    );
    assert!(
        said.iter().any(|s| s.starts_with("device: Linux board")),
        "{said:?}"
    );

    let plc = modbus_device().await;
    let (out, events) = run(&[&example("modbus_poll.lua")], &[("DEVICE", plc.to_string())]).await;
    let said = infos(&events);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        said,
        [
            "poll 1: register 0 = 70",
            "poll 2: register 0 = 75",
            "poll 3: register 0 = 80",
            "threshold 80 crossed"
        ]
    );

    let flaky = flaky_device().await;
    let (out, events) = run(&[&example("retry.lua")], &[("DEVICE", flaky.to_string())]).await;
    let said = infos(&events);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(said[0], "attempt 1 failed: BUSY");
    assert_eq!(said[1], "attempt 2 failed: WAITFOR_TIMEOUT");
    assert_eq!(said[2], "answer: OK ready 42");

    let port = free_port();
    let env = [("PORT", port.to_string()), ("SECONDS", "2".to_string())];
    let sim = tokio::spawn(async move { run(&[&example("simulator.lua")], &env).await });
    let client = script_client(port).await;
    let mut client = BufReader::new(client.expect("the simulator listens"));
    client
        .write_all(b"SET volt 11.5\nGET volt\nGET nothing\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let mut line = String::new();
        client.read_line(&mut line).await.unwrap();
        got.push(line);
    }
    assert_eq!(got, ["OK\n", "VALUE volt=11.5\n", "ERROR unknown nothing\n"]);
    let (out, _) = sim.await.unwrap();
    assert!(out.status.success());
}

/// Listeners, accept, UDP and serial ports from Lua; a script that piles
/// up memory fails alone.
#[tokio::test]
async fn listen_accept_udp_serial_and_a_memory_hog() {
    let dir = tempfile::tempdir().unwrap();
    let pair = PtyPair::new();
    let serial = match &pair {
        Some(p) => format!(
            "local port = mux.serial('{}', {{ params = '9600,8N1' }})\nport:send('to the device')\nmux.log('serial', port.id)\n",
            p.a.display()
        ),
        None => String::new(),
    };
    let text = format!(
        r#"
local l = mux.listen("127.0.0.1:0", {{ label = "srv" }})
local u = mux.udp("127.0.0.1:0", {{ label = "dgram" }})
mux.log("udp", tostring(u):match("^session") ~= nil)
local ok, e = pcall(function() local x = l:accept(0.2); return x end)
mux.log("accept", tostring(ok), e and e.code)
{serial}
l:close()
local hog = {{}}
local okm, em = pcall(function() for i = 1, 1e9 do hog[i] = string.rep("x", 1024) .. i end end)
hog = nil
collectgarbage()
mux.log("memory", tostring(okm), tostring(em):match("memory") ~= nil)
"#
    );
    let script = write_script(&dir, "more.lua", &text);
    let (out, events) = run(&[script.to_str().unwrap()], &[]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let said = infos(&events);
    assert!(said.contains(&"udp\ttrue".to_string()), "{said:?}");
    assert!(said.iter().any(|s| s.starts_with("accept\tfalse\t")), "{said:?}");
    assert!(said.contains(&"memory\tfalse\ttrue".to_string()), "{said:?}");
    if let Some(pair) = pair {
        assert!(said.iter().any(|s| s.starts_with("serial\t")), "{said:?}");
        drop(pair);
        assert!(
            events
                .iter()
                .any(|e| e["event"] == "connected" && e["kind"] == "serial")
        );
    }
}

/// Thousands of send/expect round trips on one thread (`#[tokio::test]`
/// is a current-thread runtime): the instruction-count hook that lets
/// other tasks run once yielded inside mlua's async wrapper between a
/// pending poll and its yield, and the reply's wake-up was lost there (a
/// script stalled for good after ~2000 round trips; on the multi-thread
/// runtime the same race is only rarer).
#[tokio::test]
async fn thousands_of_round_trips_on_one_thread_never_stall() {
    use muxcat::exec::{Executor, Headless, Script, Step};
    let addr = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::new();
    let mut events = h.events;
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let executor = Executor::new(
        h.manager.clone(),
        std::sync::Arc::new(Headless(h.manager.clone())),
    );
    let script = write_script(
        &dir,
        "round_trips.lua",
        &format!(
            "local s = mux.connect('{addr}')\n\
             for i = 1, 4000 do\n\
               s:send('ping ' .. i)\n\
               assert(s:expect('^ping ' .. i .. '$', 5))\n\
             end\n"
        ),
    );
    let step = tokio::time::timeout(
        Duration::from_secs(120),
        executor.run_line(
            format!("source {}", script.display()).as_bytes(),
            "line 1",
            &mut Script::default(),
            0,
        ),
    )
    .await
    .expect("the script stalled");
    assert!(matches!(step, Step::Done(_)), "{step:?}");
}
