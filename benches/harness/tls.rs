//! TLS pipe: `size` bytes of zeros from `head` through a TLS client to a
//! TLS server writing /dev/null, every side with the same RSA-2048
//! certificate made by `openssl req` (verification off on the clients, as
//! the peers' usual benchmark lines have it); muxcat, socat `OPENSSL:`
//! and `ncat --ssl` in interleaved rounds. Each pair's agreed TLS version
//! and cipher suite is printed, so the comparison is seen to be fair.

use std::path::Path;
use std::process::{Command, Stdio};

/// One timed transfer (the harness's `pipe_once`).
pub type PipeOnce = fn(&str, &str, &str, u64) -> Option<f64>;

pub fn tls(size: u64, runs: usize, have: fn(&str) -> bool, muxcat: &Path, pipe_once: PipeOnce) {
    println!(
        "\n## 1b. TLS pipe: {} MiB of zeros, RSA-2048 certificate, median of {runs}",
        size >> 20
    );
    let Ok(dir) = tempfile::tempdir() else {
        return println!("no temporary directory");
    };
    let (cert, key, both) = (
        dir.path().join("c.pem"),
        dir.path().join("k.pem"),
        dir.path().join("both.pem"),
    );
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let joined = [std::fs::read(&cert), std::fs::read(&key)];
    if !made || joined.iter().any(Result::is_err) {
        return println!("openssl req failed: no certificate, no TLS row");
    }
    let _ = std::fs::write(&both, joined.into_iter().flatten().flatten().collect::<Vec<u8>>());
    let (c, k, b, m) = (cert.display(), key.display(), both.display(), muxcat.display());
    let mut pairs: Vec<(&str, String, String)> = vec![(
        "muxcat",
        format!("{m} -q listen --tls --cert {c} --key {k} 127.0.0.1:{{P}}"),
        format!("{m} -q connect --tls --insecure 127.0.0.1:{{P}}"),
    )];
    if have("socat") {
        pairs.push((
            "socat",
            format!("socat -u OPENSSL-LISTEN:{{P}},reuseaddr,cert={b},verify=0 STDOUT"),
            "socat -u STDIN OPENSSL:127.0.0.1:{P},verify=0".into(),
        ));
    }
    if have("ncat") {
        pairs.push((
            "ncat",
            format!("ncat -l --ssl --ssl-cert {c} --ssl-key {k} --recv-only 127.0.0.1 {{P}}"),
            "ncat --ssl --send-only 127.0.0.1 {P}".into(),
        ));
    }
    let source = format!("head -c {size} /dev/zero");
    let mut figures: Vec<Vec<f64>> = vec![Vec::new(); pairs.len()];
    for _ in 0..runs {
        for ((_, server, client), got) in pairs.iter().zip(figures.iter_mut()) {
            got.extend(pipe_once(&source, server, client, size));
        }
    }
    let medians: Vec<Option<f64>> = figures
        .into_iter()
        .map(|mut v| {
            v.sort_by(|a, b| a.total_cmp(b));
            v.get(v.len() / 2).copied()
        })
        .collect();
    let fastest_peer = pairs
        .iter()
        .zip(&medians)
        .filter(|((name, ..), _)| *name != "muxcat")
        .filter_map(|(_, f)| *f)
        .fold(0.0f64, f64::max);
    println!("{:<10} {:>8} {:>14}  agreed", "pair", "GB/s", "÷ fastest peer");
    for ((name, server, _), figure) in pairs.iter().zip(&medians) {
        let agreed = agreed(name, server, muxcat).unwrap_or_else(|| "?".into());
        match figure {
            Some(f) if fastest_peer > 0.0 => {
                println!("{name:<10} {f:>8.2} {:>14.2}  {agreed}", f / fastest_peer)
            }
            Some(f) => println!("{name:<10} {f:>8.2} {:>14}  {agreed}", "-"),
            None => println!("{name:<10} failed"),
        }
    }
}

/// The TLS version and cipher suite a pair agrees on, from one short
/// connection: muxcat says it (`tlsCipher`), socat logs it (`-d -d`), and
/// ncat's listener is asked by `openssl s_client` (ncat's client is
/// OpenSSL with its defaults too).
fn agreed(name: &str, server: &str, muxcat: &Path) -> Option<String> {
    let (mut srv, port) = super::start_server(server)?;
    let client = match name {
        "muxcat" => format!(
            "{} --json connect --tls --insecure 127.0.0.1:{port} < /dev/null",
            muxcat.display()
        ),
        "socat" => format!("socat -d -d -u STDIN OPENSSL:127.0.0.1:{port},verify=0 < /dev/null"),
        _ => format!("openssl s_client -brief -connect 127.0.0.1:{port} < /dev/null"),
    };
    let out = Command::new("sh")
        .args(["-c", &client])
        .stdout(Stdio::null())
        .output()
        .ok();
    let _ = srv.kill();
    let _ = srv.wait();
    let log = String::from_utf8_lossy(&out?.stderr).into_owned();
    let after = |tag: &str| {
        log.lines().find_map(|l| {
            l.split_once(tag)
                .map(|(_, rest)| rest.trim().trim_matches('"').to_string())
        })
    };
    match name {
        "muxcat" => {
            let json = log.lines().find(|l| l.contains("\"tlsCipher\""))?;
            let v: serde_json::Value = serde_json::from_str(json).ok()?;
            v["tlsCipher"].as_str().map(str::to_string)
        }
        "socat" => Some(format!(
            "{} {}",
            after("SSL proto version used:")?,
            after("SSL connection using")?
        )),
        _ => Some(format!(
            "{} {}",
            after("Protocol version:")?,
            after("Ciphersuite:")?
        )),
    }
}
