//! Script round trips: `send` then wait for the answer, N times, against
//! an echo server: a Lua loop (`s:send` + `s:expect`), the same in the
//! command language, and pexpect over socat where both are installed.
//! Whole-process time, start-up included (a few ms), same run.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// An echo server on 127.0.0.1 (a thread per client); its port.
fn echo() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = stream;
                let _ = s.set_nodelay(true);
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn timed(mut cmd: Command) -> Option<f64> {
    let start = Instant::now();
    let out = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().ok()?;
    out.success().then(|| start.elapsed().as_secs_f64())
}

pub fn roundtrips(n: usize, have: impl Fn(&str) -> bool, muxcat: &Path) {
    println!("\n## 10. Script round trips: send, wait for the echo, {n} times (whole process)");
    let port = echo();
    let dir = tempfile::tempdir().expect("tempdir");
    let lua = dir.path().join("rt.lua");
    let _ = std::fs::write(
        &lua,
        format!(
            "local s = mux.connect('127.0.0.1:{port}')\nfor i = 1, {n} do\n  s:send('ping ' .. i)\n  assert(s:expect('^ping ' .. i .. '$', 5))\nend\n"
        ),
    );
    let mux_script = dir.path().join("rt.mux");
    let mut text = format!("connect 127.0.0.1:{port}\n");
    for i in 1..=n {
        text.push_str(&format!("send ping {i}\nwaitfor ^ping {i}$\n"));
    }
    let _ = std::fs::write(&mux_script, text);
    let mut rows = Vec::new();
    let mut run = Command::new(muxcat);
    run.arg("run").arg(&lua);
    rows.push(("muxcat, Lua", timed(run)));
    let mut run = Command::new(muxcat);
    run.arg("run").arg(&mux_script);
    rows.push(("muxcat, command language", timed(run)));
    let pexpect = have("python3")
        && have("socat")
        && Command::new("python3")
            .args(["-c", "import pexpect"])
            .status()
            .is_ok_and(|s| s.success());
    if pexpect {
        let py = format!(
            "import pexpect\np = pexpect.spawn('socat - TCP:127.0.0.1:{port}', echo=False)\np.delaybeforesend = None\nfor i in range(1, {n} + 1):\n    p.sendline('ping %d' % i)\n    p.expect('ping %d\\r?\\n' % i)\np.close()\n"
        );
        let mut run = Command::new("python3");
        run.args(["-c", &py]);
        rows.push(("pexpect + socat", timed(run)));
    } else {
        println!("pexpect or socat not installed: its row left out");
    }
    for (name, secs) in rows {
        match secs {
            Some(s) => println!("{name}: {:.0} round trips/s ({s:.2} s)", n as f64 / s),
            None => println!("{name}: failed"),
        }
    }
}
