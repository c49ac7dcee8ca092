//! In-process figures (criterion): the hot paths of the data path, and the
//! TUI's frame time against scrollback length.
//!
//!     cargo bench --bench hot_paths

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use muxcat::core::escape::{escape_transcript_to_slice, escaped_room};
use muxcat::core::framing::LineSplitter;
use muxcat::core::{Event, EventKind};
use muxcat::transcript::{Format, LineWriter, Mark};
use muxcat::tui::app::App;
use muxcat::tui::keymap::{Action, Keymap};
use muxcat::tui::view::{Theme, hex_line, view};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const SIZE: usize = 16 * 1024 * 1024;

fn text_lines(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 64);
    let mut i = 0u64;
    while out.len() < size {
        out.extend_from_slice(format!("temperature={} humidity=40 status=OK\r\n", i % 1000).as_bytes());
        i += 1;
    }
    out
}

fn random(size: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn hot_paths(c: &mut Criterion) {
    let text = text_lines(SIZE);
    let bin = random(SIZE);
    let mut g = c.benchmark_group("hot_paths");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("line_split_64k_chunks", |b| {
        let chunks: Vec<Bytes> = text.chunks(64 * 1024).map(Bytes::copy_from_slice).collect();
        b.iter(|| {
            let mut s = LineSplitter::default();
            let mut out = Vec::with_capacity(2048);
            let mut n = 0;
            for c in &chunks {
                s.push(c, &mut out);
                n += out.len();
                out.clear();
            }
            black_box(n)
        })
    });
    for (name, data) in [
        ("transcript_escape_text", &text),
        ("transcript_escape_binary", &bin),
        ("transcript_escape_zeros", &vec![0u8; SIZE]),
    ] {
        g.throughput(Throughput::Bytes(data.len() as u64));
        // As the transcript writer does it: one buffer kept between chunks.
        g.bench_function(name, |b| {
            let mut out = vec![0u8; escaped_room(64 * 1024)];
            b.iter(|| {
                let mut n = 0;
                for chunk in data.chunks(64 * 1024) {
                    n += escape_transcript_to_slice(chunk, &mut out);
                    black_box(&out);
                }
                black_box(n)
            })
        });
    }
    // Whole transcript lines as a recording writes them, per version:
    // what v3's LZ4 attempt costs on bytes it cannot shrink, and saves on
    // ones it can.
    let at = chrono::Utc::now();
    for (what, data) in [("binary", &bin), ("zeros", &vec![0u8; SIZE])] {
        for (version, format) in [("v2", Format::V2), ("v3", Format::V3)] {
            g.throughput(Throughput::Bytes(data.len() as u64));
            g.bench_function(format!("transcript_line_{version}_{what}"), |b| {
                let mut writer = LineWriter::default();
                b.iter(|| {
                    let mut out = std::io::sink();
                    for chunk in data.chunks(64 * 1024) {
                        writer.write(&mut out, at, Mark::In, chunk, format).unwrap();
                    }
                })
            });
        }
    }
    g.throughput(Throughput::Bytes(bin.len() as u64));
    g.bench_function("hex_dump_rows", |b| {
        let mut row = String::with_capacity(80);
        b.iter(|| {
            let mut total = 0;
            for (i, chunk) in bin.chunks(16).enumerate() {
                row.clear();
                hex_line(chunk, i * 16, true, &mut row);
                total += row.len();
            }
            black_box(total)
        })
    });
    g.finish();
}

/// Session `id` opening, as the app hears of it.
fn open(app: &mut App, id: &str) {
    app.on_event(
        &Event::new(EventKind::Connecting {
            target: muxcat::core::transport::Target::parse_connect("127.0.0.1:7000").unwrap(),
        })
        .session(id),
    );
}

/// Line `i` received on session `id`.
fn line(app: &mut App, id: &str, i: usize) {
    app.on_event(
        &Event::new(EventKind::Data {
            payload: Bytes::from(format!("line {i} temperature=42 humidity=40 status=OK")),
            count: 45,
            from: None,
            eol: b"\r\n",
            check: None,
        })
        .session(id),
    );
}

/// An app with `sessions` sessions, the selected one holding `lines` lines.
fn app_with(sessions: usize, lines: usize) -> App {
    let mut app = App::new(Keymap::load(None).expect("keymap"), lines.max(1));
    for n in 0..sessions {
        let id = format!("sess-{n:08x}-0000-4000-8000-000000000000");
        open(&mut app, &id);
        if n == 0 {
            for i in 0..lines {
                line(&mut app, &id, i);
            }
        }
    }
    app.selected = Some(0);
    app
}

/// Four sessions of `lines` lines each, their chunks interleaved in time.
fn app_with_four(lines: usize) -> (App, Vec<String>) {
    let mut app = App::new(Keymap::load(None).expect("keymap"), lines.max(1));
    let ids: Vec<String> = (0..4)
        .map(|n| format!("sess-{n:08x}-0000-4000-8000-000000000000"))
        .collect();
    for id in &ids {
        open(&mut app, id);
    }
    for i in 0..lines {
        for id in &ids {
            line(&mut app, id, i);
        }
    }
    app.selected = Some(0);
    (app, ids)
}

/// Four panes: three sessions side by side and the merged timeline of
/// all four, each session holding 1k to 1M lines.
fn frame_time_panes(c: &mut Criterion) {
    let mut g = c.benchmark_group("tui_frame_panes");
    g.sample_size(20);
    for lines in [1_000usize, 100_000, 1_000_000] {
        let (mut app, ids) = app_with_four(lines);
        for id in &ids[1..3] {
            let _ = app.split(Some(id.clone()), muxcat::tui::panes::SplitDir::Vertical);
        }
        let _ = app.merge(ids.clone());
        assert_eq!(app.panes.len(), 4);
        let mut term = Terminal::new(TestBackend::new(200, 50)).expect("backend");
        let theme = Theme { color: true };
        g.bench_with_input(
            BenchmarkId::new("three_panes_and_merged", lines),
            &lines,
            |b, _| b.iter(|| term.draw(|f| view(&app, f, theme)).map(|_| ())),
        );
    }
    g.finish();
}

fn frame_time(c: &mut Criterion) {
    let mut g = c.benchmark_group("tui_frame");
    g.sample_size(30);
    for lines in [1_000usize, 100_000, 1_000_000] {
        let mut app = app_with(1000, lines);
        let mut term = Terminal::new(TestBackend::new(160, 48)).expect("backend");
        let theme = Theme { color: true };
        g.bench_with_input(
            BenchmarkId::new("line_view_1000_sessions", lines),
            &lines,
            |b, _| b.iter(|| term.draw(|f| view(&app, f, theme)).map(|_| ())),
        );
        app.apply(Action::ToggleHex);
        g.bench_with_input(
            BenchmarkId::new("hex_view_1000_sessions", lines),
            &lines,
            |b, _| b.iter(|| term.draw(|f| view(&app, f, theme)).map(|_| ())),
        );
    }
    g.finish();
}

criterion_group!(benches, hot_paths, frame_time, frame_time_panes);
criterion_main!(benches);
