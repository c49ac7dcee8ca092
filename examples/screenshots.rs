//! Regenerates `screenshots/*.svg` from a real run: a listener and clients
//! on loopback exchange real bytes through the session manager; the TUI
//! model takes the real events and is drawn on ratatui's `TestBackend`,
//! whose cells (with their colours) are written out as SVG.
//!
//!     cargo run --example screenshots

use std::fmt::Write as _;
use std::time::Duration;

use muxcat::core::{Manager, ManagerConfig};
use muxcat::lang::{Parsed, parse_line};
use muxcat::tui::app::App;
use muxcat::tui::keymap::{Action, Keymap};
use muxcat::tui::view::{Theme, view};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

const W: u16 = 120;
const H: u16 = 32;

fn rgb(c: Color, default: &str) -> String {
    match c {
        Color::Reset => default.to_string(),
        Color::Black => "#1d1f21".into(),
        Color::Red => "#cc6666".into(),
        Color::Green => "#8fbc5a".into(),
        Color::Yellow => "#e0b050".into(),
        Color::Blue => "#81a2be".into(),
        Color::Magenta => "#b294bb".into(),
        Color::Cyan => "#6fc3c8".into(),
        Color::Gray => "#c5c8c6".into(),
        Color::DarkGray => "#707880".into(),
        Color::White => "#ffffff".into(),
        Color::Rgb(r, g, b) => format!("#{r:02x}{g:02x}{b:02x}"),
        _ => default.to_string(),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The buffer as an SVG: one text run per stretch of equally styled cells.
fn svg(buf: &Buffer) -> String {
    let (cw, ch) = (8.4_f32, 17.0_f32);
    let (fg0, bg0) = ("#d8dadb", "#1d1f21");
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="14">"#,
        (W as f32 * cw) as u32 + 16,
        (H as f32 * ch) as u32 + 16
    );
    let _ = write!(
        out,
        r#"<rect width="100%" height="100%" fill="{bg0}"/><g transform="translate(8,8)">"#
    );
    for y in 0..H {
        let mut x = 0;
        while x < W {
            let cell = &buf[(x, y)];
            let style = (cell.fg, cell.bg, cell.modifier);
            let start = x;
            let mut text = String::new();
            while x < W && (buf[(x, y)].fg, buf[(x, y)].bg, buf[(x, y)].modifier) == style {
                text.push_str(buf[(x, y)].symbol());
                x += 1;
            }
            let reversed = style.2.contains(Modifier::REVERSED);
            let (mut fg, mut bg) = (rgb(style.0, fg0), rgb(style.1, bg0));
            if reversed {
                std::mem::swap(&mut fg, &mut bg);
            }
            let (px, py) = (start as f32 * cw, y as f32 * ch);
            if bg != bg0 {
                let _ = write!(
                    out,
                    r#"<rect x="{px}" y="{py}" width="{}" height="{ch}" fill="{bg}"/>"#,
                    (x - start) as f32 * cw
                );
            }
            if text.trim().is_empty() {
                continue;
            }
            let mut attrs = String::new();
            if style.2.contains(Modifier::BOLD) {
                attrs.push_str(r#" font-weight="bold""#);
            }
            if style.2.contains(Modifier::DIM) {
                attrs.push_str(r#" opacity="0.6""#);
            }
            if style.2.contains(Modifier::UNDERLINED) {
                attrs.push_str(r#" text-decoration="underline""#);
            }
            let _ = write!(
                out,
                r#"<text x="{px}" y="{}" fill="{fg}" xml:space="preserve" textLength="{}" lengthAdjust="spacingAndGlyphs"{attrs}>{}</text>"#,
                py + ch * 0.78,
                (x - start) as f32 * cw,
                escape(&text)
            );
        }
    }
    out.push_str("</g></svg>\n");
    out
}

async fn run(manager: &Manager, line: &str) {
    if let Ok(Some(Parsed::Core(cmd))) = parse_line(line)
        && let Err(e) = manager.execute(cmd).await
    {
        eprintln!("{line}: {e}");
    }
}

fn draw(app: &App, name: &str) {
    let mut term = Terminal::new(TestBackend::new(W, H)).expect("test backend");
    term.draw(|f| view(app, f, Theme { color: true })).expect("draw");
    let path = format!("screenshots/{name}.svg");
    std::fs::write(&path, svg(term.backend().buffer())).expect("write the screenshot");
    println!("wrote {path}");
}

#[tokio::main]
async fn main() {
    let (manager, mut events) = Manager::start(ManagerConfig::default());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let script = [
        format!("listen --label dev-board 127.0.0.1:{port}"),
        "listen --label tls-console --tls 127.0.0.1:0".to_string(),
        format!("connect --label console --eol crlf 127.0.0.1:{port}"),
        "accept --on dev-board".to_string(),
        "send 'WELCOME to dev-board v2.1\\r'".to_string(),
        "send --to console AT+VERSION?".to_string(),
        "waitfor AT.VERSION".to_string(),
        "send '+VERSION: 2.1.7\\r'".to_string(),
        "send 'OK\\r'".to_string(),
        "send '\\x1b[31mALARM\\x1b[0m temp=81\\r'".to_string(),
        "send --to console AT+RESET".to_string(),
        "udp --label telemetry 127.0.0.1:0".to_string(),
    ];
    for line in &script {
        run(&manager, line).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut app = App::new(Keymap::load(None).expect("keymap"), 100_000);
    app.page = muxcat::tui::view::page_rows(H);
    while let Ok(ev) = events.try_recv() {
        app.on_event(&ev);
    }
    app.status = "ok: send --to console AT+RESET".to_string();
    draw(&app, "line-view");
    app.apply(Action::ToggleHex);
    draw(&app, "hex-view");
    app.apply(Action::ToggleHex);
    app.apply(Action::Help);
    draw(&app, "help");
    manager.shutdown().await;
}
