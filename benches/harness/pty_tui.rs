//! The TUI as a user runs it: the real binary in a pseudo-terminal of
//! 140×40, its output read (and, when asked, drawn into a vt100 screen the
//! harness can look at), its keys written to the terminal.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ROWS: u16 = 40;
pub const COLS: u16 = 140;

pub struct PtyTui {
    child: Box<dyn portable_pty::Child + Send + Sync>,
    keys: Box<dyn Write + Send>,
    /// The screen as drawn so far (None: the output is thrown away).
    screen: Option<Arc<Mutex<vt100::Parser>>>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
    _home: tempfile::TempDir,
}

impl PtyTui {
    /// Starts `muxcat ARGS` with a home, config and data directory of its
    /// own; `watch`: keep a screen to look at (costs a parse of every frame).
    pub fn start(muxcat: &Path, args: &[String], watch: bool) -> Option<PtyTui> {
        use portable_pty::{CommandBuilder, PtySize, native_pty_system};
        let home = tempfile::tempdir().ok()?;
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .ok()?;
        let mut cmd = CommandBuilder::new(muxcat);
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        for dir in ["HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"] {
            cmd.env(dir, home.path());
        }
        let child = pty.slave.spawn_command(cmd).ok()?;
        drop(pty.slave);
        let mut reader = pty.master.try_clone_reader().ok()?;
        let keys = pty.master.take_writer().ok()?;
        let screen = watch.then(|| {
            Arc::new(Mutex::new(vt100::Parser::new(
                std::num::NonZeroU16::new(ROWS).expect("rows"),
                std::num::NonZeroU16::new(COLS).expect("cols"),
                0,
            )))
        });
        let feed = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64 << 10];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Some(Ok(mut p)) = feed.as_ref().map(|f| f.lock()) {
                    p.process(&buf[..n]);
                }
            }
        });
        Some(PtyTui {
            child,
            keys,
            screen,
            _master: pty.master,
            _home: home,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.process_id()
    }

    /// Where keys go.
    pub fn keys(&mut self) -> &mut dyn Write {
        &mut *self.keys
    }

    /// The screen's text now (empty unless started with `watch`).
    pub fn screen(&self) -> String {
        self.screen
            .as_ref()
            .and_then(|s| s.lock().ok().map(|p| p.screen().contents()))
            .unwrap_or_default()
    }

    /// Waits (bounded) until the screen passes `test`; how long it took.
    pub fn wait_for(&self, test: &dyn Fn(&str) -> bool, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if test(&self.screen()) {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        None
    }

    /// `:connect --label LABEL 127.0.0.1:PORT` from the command bar, and
    /// once the list holds `sessions`, that newest one (the last row)
    /// selected; false when it did not open within 10 s.
    pub fn open_and_select(&mut self, label: &str, port: u16, sessions: usize) -> bool {
        let _ = self
            .keys()
            .write_all(format!(":connect --label {label} 127.0.0.1:{port}\r").as_bytes());
        let listed = format!("Sessions {sessions}");
        if self
            .wait_for(&|s| s.contains(&listed), Duration::from_secs(10))
            .is_none()
        {
            return false;
        }
        let _ = self.keys().write_all(&vec![b'j'; sessions]);
        let _ = self.keys().flush();
        true
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
