//! The whole TUI in-process: its Elm loop driven with keys from a channel,
//! drawn on ratatui's `TestBackend`, against a real session manager and
//! real sockets on loopback. Screens are compared as `insta` snapshots with
//! times, ports and ids filtered out.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::echo_server;
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use muxcat::core::{Manager, ManagerConfig};
use muxcat::tui::app::App;
use muxcat::tui::keymap::Keymap;
use muxcat::tui::{Startup, run_loop, view};
use ratatui::Terminal;
use ratatui::backend::{Backend, ClearType, TestBackend, WindowSize};
use ratatui::buffer::Cell;
use ratatui::layout::{Position, Size};
use tokio::sync::{mpsc, oneshot};

/// A `TestBackend` the test can read while the loop draws on it.
#[derive(Clone)]
struct Shared(Arc<Mutex<TestBackend>>);

impl Backend for Shared {
    type Error = Infallible;

    fn draw<'a, I>(&mut self, content: I) -> Result<(), Infallible>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        self.0.lock().unwrap().draw(content)
    }
    fn hide_cursor(&mut self) -> Result<(), Infallible> {
        self.0.lock().unwrap().hide_cursor()
    }
    fn show_cursor(&mut self) -> Result<(), Infallible> {
        self.0.lock().unwrap().show_cursor()
    }
    fn get_cursor_position(&mut self) -> Result<Position, Infallible> {
        self.0.lock().unwrap().get_cursor_position()
    }
    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> Result<(), Infallible> {
        self.0.lock().unwrap().set_cursor_position(position)
    }
    fn clear(&mut self) -> Result<(), Infallible> {
        self.0.lock().unwrap().clear()
    }
    fn clear_region(&mut self, clear_type: ClearType) -> Result<(), Infallible> {
        self.0.lock().unwrap().clear_region(clear_type)
    }
    fn size(&self) -> Result<Size, Infallible> {
        self.0.lock().unwrap().size()
    }
    fn window_size(&mut self) -> Result<WindowSize, Infallible> {
        self.0.lock().unwrap().window_size()
    }
    fn flush(&mut self) -> Result<(), Infallible> {
        self.0.lock().unwrap().flush()
    }
}

type Input = mpsc::UnboundedSender<std::io::Result<TermEvent>>;

struct Ui {
    screen: Shared,
    input: Input,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<App>,
}

impl Ui {
    /// The TUI with `commands` as its `-c` lines, on a 100×30 screen.
    fn start(commands: &[String]) -> Ui {
        let (manager, events) = Manager::start(ManagerConfig::default());
        let screen = Shared(Arc::new(Mutex::new(TestBackend::new(100, 30))));
        let mut terminal = Terminal::new(screen.clone()).unwrap();
        let (input, rx) = mpsc::unbounded_channel();
        let keys = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|ev| (ev, rx))
        }));
        let (stop, stopped) = oneshot::channel::<()>();
        let startup = Startup {
            initial: None,
            commands: commands.to_vec(),
            ..Startup::default()
        };
        let task = tokio::spawn(async move {
            let mut app = App::new(Keymap::load(None).unwrap(), 1000);
            app.page = view::page_rows(30);
            // Snapshots must not depend on timing.
            app.measure_rates = false;
            let shutdown = async move {
                let _ = stopped.await;
            };
            run_loop(&mut terminal, &mut app, &manager, events, keys, shutdown, startup)
                .await
                .unwrap();
            manager.shutdown().await;
            app
        });
        Ui {
            screen,
            input,
            stop: Some(stop),
            task,
        }
    }

    fn text(&self) -> String {
        view::buffer_text(self.screen.0.lock().unwrap().buffer())
    }

    async fn wait_for(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let screen = self.text();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the screen never showed {text:?}:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn keys(&self, keys: &str) {
        for c in keys.chars() {
            let code = match c {
                '\r' => KeyCode::Enter,
                '\x1b' => KeyCode::Esc,
                c => KeyCode::Char(c),
            };
            let _ = self
                .input
                .send(Ok(TermEvent::Key(KeyEvent::new(code, KeyModifiers::NONE))));
        }
    }

    async fn stop(mut self) -> App {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap()
    }
}

/// Screens without what changes from run to run.
fn snapshot(name: &str, screen: &str) {
    insta::with_settings!({
        filters => vec![
            (r"\d\d:\d\d:\d\d\.\d{3}", "HH:MM:SS.mmm"),
            (r"\b(sess|lstn)-[0-9a-f]{8}(-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?", "$1-XXXXXXXX"),
            (r"\b[0-9a-f]{8}\b", "XXXXXXXX"),
            (r"127\.0\.0\.1:\d{2,5}", "127.0.0.1:PORT"),
            // A peer the sessions list cuts keeps its port.
            (r"…:\d{5}\b", "…:PORT"),
            // A short id an overlay cuts.
            (r"▶ [0-9a-f]{1,7}\b", "▶ XXXXXXX"),
        ],
    }, {
        insta::assert_snapshot!(name, screen);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_a_client_and_the_line_view() {
    let echo = echo_server().await;
    let ui = Ui::start(&[
        "listen --label board 127.0.0.1:0".to_string(),
        format!("connect --label echo {echo}"),
        "send hello from the bar".to_string(),
    ]);
    ui.wait_for("< hello from the bar").await;
    snapshot("line_view", &ui.text());
    ui.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_by_position_switches_that_session_to_hex() {
    let echo = echo_server().await;
    let ui = Ui::start(&[format!("connect --label one {echo}"), "send ABC".to_string()]);
    ui.wait_for("< ABC").await;
    // `@1` is resolved by the core; the TUI shows the session it named.
    ui.keys(":view @1 hex\r");
    ui.wait_for("41 42 43").await;
    let screen = ui.wait_for("· ? help · q quit").await;
    snapshot("hex_view_by_position", &screen);
    let app = ui.stop().await;
    assert_eq!(app.shown().view, muxcat::core::View::Hex);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_help_shows_the_usage_and_sends_nothing() {
    let echo = echo_server().await;
    let ui = Ui::start(&[format!("connect --label one {echo}")]);
    ui.wait_for("* connected").await;
    ui.wait_for("ok: connect").await;
    ui.keys(":send --help\r");
    // The usage shows, then the line's result.
    ui.wait_for("Usage").await;
    ui.wait_for("ok: send --help").await;
    // The line's run has ended too (the status no longer shows it).
    let screen = ui.wait_for("· ? help · q quit").await;
    snapshot("send_help", &screen);
    ui.keys("\x1b");
    let app = ui.stop().await;
    assert_eq!(app.sessions[0].bytes_out, 0, "send --help sent bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_help_overlay_lists_the_commands_of_the_parser() {
    let ui = Ui::start(&[]);
    ui.wait_for("Listeners").await;
    ui.keys("?");
    let screen = ui.wait_for("commands:").await;
    for name in muxcat::lang::command_names() {
        assert!(screen.contains(&name), "{name} missing from the help:\n{screen}");
    }
    snapshot("help_overlay", &screen);
    ui.stop().await;
}

/// `source x.lua` from the command bar runs Lua through the one executor:
/// its session opens in the TUI, its sends and matches show, its
/// `mux.log` lands in the status line; `lua CHUNK` runs a line of Lua.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_runs_a_lua_script_in_the_tui() {
    let echo = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("probe.lua");
    std::fs::write(
        &script,
        format!(
            "local s = mux.connect('{echo}', {{ label = 'probe' }})\ns:send('ping from lua')\nlocal i, m = s:expect({{'^pong', '^ping (\\\\w+)'}}, 5)\nmux.log('matched pattern ' .. i)\n"
        ),
    )
    .unwrap();
    let ui = Ui::start(&[]);
    ui.keys(&format!(":source {}\r", script.display()));
    ui.wait_for("< ping from lua").await;
    ui.wait_for("probe").await;
    // What the script logged is in the message log (the status line shows
    // whichever came last: the log line or the script's result).
    ui.keys("m");
    ui.wait_for("matched pattern 2").await;
    ui.wait_for(": done").await;
    ui.keys("\x1b");
    ui.wait_for(" NORMAL ").await;
    ui.keys(":lua mux.log(\"two and \" .. 2)\r");
    ui.keys("m");
    ui.wait_for("two and 2").await;
    ui.stop().await;
}

/// `plot`, `highlight` and `filter` typed into the command bar: the chart
/// appears under the scrollback with its values, the highlight colours
/// the matches, the filter hides lines and says how many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plot_highlight_and_filter_from_the_command_bar() {
    let echo = echo_server().await;
    let ui = Ui::start(&[format!("connect --label probe {echo}")]);
    ui.wait_for("* connected").await;
    ui.keys(":plot 'v=(\\d+)'\r");
    ui.wait_for("ok: plot").await;
    for v in ["v=1", "noise", "v=5", "v=3"] {
        ui.keys(&format!(":send {v}\r"));
        ui.wait_for(&format!("< {v}")).await;
    }
    ui.wait_for("plot-1: 3 (min 1 max 5)").await;
    ui.keys(":highlight noise red\r");
    ui.wait_for("ok: highlight").await;
    let red = {
        let backend = ui.screen.0.lock().unwrap();
        let buf = backend.buffer();
        let text = view::buffer_text(buf);
        let (y, line) = text
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains("< noise"))
            .unwrap();
        let x = line[..line.find("noise").unwrap()].chars().count() as u16;
        buf[(x, y as u16)].style().fg
    };
    assert_eq!(red, Some(ratatui::style::Color::Red));
    ui.keys(":filter probe -v noise\r");
    let screen = ui.wait_for("hidden").await;
    assert!(screen.contains("filter -v /noise/: 2 hidden"), "{screen}");
    assert!(!screen.contains("< noise"), "{screen}");
    ui.keys(":filter off\r");
    ui.wait_for("< noise").await;
    ui.keys(":filter nobody x\r");
    ui.wait_for("SESSION_NOT_FOUND").await;
    ui.stop().await;
}
