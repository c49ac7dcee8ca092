//! `plot [SESSION] REGEX`: the samples the core takes from a session's
//! lines (`sample` events), kept per plot and drawn under the scrollback
//! as a braille line chart over a time window that follows the tail, or
//! ends where the scrolled-back scrollback is. Samples are bounded per
//! plot; drawing looks at the samples in the window only, two points per
//! column at most (each column's lowest and highest).

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::Span;
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType};

/// Samples kept per plot (the oldest go first).
pub const MAX_SAMPLES: usize = 50_000;
/// Series kept per plot (groups past it are not drawn).
const MAX_SERIES: usize = 8;
/// The most time a chart spans; a plot younger than that spans its age
/// (at least [`MIN_WINDOW_SECS`]), so its first samples are not a sliver.
pub const WINDOW_SECS: f64 = 60.0;
const MIN_WINDOW_SECS: f64 = 10.0;

/// Colours of series (and of a merged pane's sessions), in turn.
pub const SERIES_COLOURS: [Color; MAX_SERIES] = [
    Color::Cyan,
    Color::Yellow,
    Color::Magenta,
    Color::Green,
    Color::LightRed,
    Color::LightBlue,
    Color::White,
    Color::Red,
];

#[derive(Debug)]
pub struct Plot {
    pub id: String,
    pub series: Vec<String>,
    samples: VecDeque<(DateTime<Utc>, Vec<Option<f64>>)>,
}

impl Plot {
    pub fn new(id: &str, series: &[String]) -> Plot {
        Plot {
            id: id.to_string(),
            series: series.iter().take(MAX_SERIES).cloned().collect(),
            samples: VecDeque::new(),
        }
    }

    pub fn push(&mut self, at: DateTime<Utc>, values: &[Option<f64>]) {
        if self.samples.len() == MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.samples
            .push_back((at, values.iter().take(MAX_SERIES).copied().collect()));
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    fn first(&self) -> Option<DateTime<Utc>> {
        self.samples.front().map(|(at, _)| *at)
    }

    /// The samples in the window ending at `end` (`secs` long), oldest first.
    fn window(
        &self,
        end: DateTime<Utc>,
        secs: f64,
    ) -> impl Iterator<Item = &(DateTime<Utc>, Vec<Option<f64>>)> {
        let start = end - chrono::TimeDelta::milliseconds((secs * 1000.0) as i64);
        let first = self.samples.partition_point(|(at, _)| *at < start);
        let last = self.samples.partition_point(|(at, _)| *at <= end);
        self.samples.range(first..last)
    }

    /// Series `k` in the window as (seconds before `end`, value) points,
    /// at most two per column of `columns` (its lowest and highest).
    pub fn points(&self, k: usize, end: DateTime<Utc>, secs: f64, columns: usize) -> Vec<(f64, f64)> {
        let columns = columns.max(1);
        let mut buckets: Vec<Option<(f64, f64, f64, f64)>> = vec![None; columns];
        let mut raw = Vec::new();
        for (at, values) in self.window(end, secs) {
            let Some(v) = values.get(k).copied().flatten() else {
                continue;
            };
            let x = -((end - *at).num_microseconds().unwrap_or(0) as f64 / 1e6);
            raw.push((x, v));
            let col = (((x + secs) / secs) * (columns - 1) as f64)
                .round()
                .clamp(0.0, (columns - 1) as f64) as usize;
            let b = buckets[col].get_or_insert((x, v, x, v));
            if v < b.1 {
                (b.0, b.1) = (x, v);
            }
            if v > b.3 {
                (b.2, b.3) = (x, v);
            }
        }
        if raw.len() <= 2 * columns {
            return raw;
        }
        let mut out = Vec::with_capacity(2 * columns);
        for (lx, lo, hx, hi) in buckets.into_iter().flatten() {
            // In time order, so the line goes through both.
            if lx <= hx {
                out.extend([(lx, lo), (hx, hi)]);
            } else {
                out.extend([(hx, hi), (lx, lo)]);
            }
        }
        out
    }

    /// Last, lowest and highest value of series `k` in the window.
    pub fn stats(&self, k: usize, end: DateTime<Utc>, secs: f64) -> Option<(f64, f64, f64)> {
        let mut stats: Option<(f64, f64, f64)> = None;
        for (_, values) in self.window(end, secs) {
            let Some(v) = values.get(k).copied().flatten() else {
                continue;
            };
            let s = stats.get_or_insert((v, v, v));
            *s = (v, s.1.min(v), s.2.max(v));
        }
        stats
    }
}

/// A number in few columns: `21.5`, `1.2e6`.
fn short(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-3) {
        format!("{v:.2e}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A series as drawn: its name, colour and points.
type Series = (String, Color, Vec<(f64, f64)>);

/// Draws a session's plots in one chart: every series of every plot,
/// over the window ending at `end` (`following`: the tail).
pub fn draw(frame: &mut Frame, area: Rect, plots: &[Plot], end: DateTime<Utc>, following: bool, color: bool) {
    let age = plots
        .iter()
        .filter_map(Plot::first)
        .min()
        .map_or(0.0, |first| (end - first).num_milliseconds() as f64 / 1000.0);
    let secs = age.ceil().clamp(MIN_WINDOW_SECS, WINDOW_SECS);
    let inner_width = area.width.saturating_sub(10) as usize;
    // Two braille dots per column.
    let columns = inner_width * 2;
    let mut data: Vec<Series> = Vec::new();
    let mut legend = Vec::new();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for plot in plots {
        for (k, name) in plot.series.iter().enumerate() {
            let colour = SERIES_COLOURS[data.len() % SERIES_COLOURS.len()];
            let label = if plots.len() > 1 || plot.series.len() > 1 {
                format!("{} {name}", plot.id)
            } else {
                plot.id.clone()
            };
            match plot.stats(k, end, secs) {
                Some((last, min, max)) => {
                    lo = lo.min(min);
                    hi = hi.max(max);
                    legend.push(format!(
                        "{label}: {} (min {} max {})",
                        short(last),
                        short(min),
                        short(max)
                    ));
                }
                None => legend.push(format!("{label}: no samples in view")),
            }
            data.push((label, colour, plot.points(k, end, secs, columns)));
        }
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if (hi - lo).abs() < f64::EPSILON {
        (lo, hi) = (lo - 1.0, hi + 1.0);
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let style = |c: Color| if color { Style::new().fg(c) } else { Style::new() };
    let datasets: Vec<Dataset> = data
        .iter()
        .map(|(name, colour, points)| {
            Dataset::default()
                .name(name.clone())
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(style(*colour))
                .data(points)
        })
        .collect();
    let when = if following {
        "now".to_string()
    } else {
        end.format("%H:%M:%S").to_string()
    };
    let title = format!(" {} · last {}s ", legend.join(" · "), secs as u64);
    let chart = Chart::new(datasets)
        .block(Block::new().borders(Borders::ALL).title(Span::raw(title)))
        .x_axis(Axis::default().bounds([-secs, 0.0]).labels([
            format!("-{}s", secs as u64),
            format!("-{}s", (secs / 2.0) as u64),
            when,
        ]))
        .y_axis(Axis::default().bounds([lo, hi]).labels([short(lo), short(hi)]))
        .legend_position(None);
    frame.render_widget(chart, area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_of_many_samples_draws_two_points_a_column_and_keeps_the_extremes() {
        let mut p = Plot::new("plot-1", &["temp".into()]);
        let end = Utc::now();
        for i in 0..10_000 {
            let at = end - chrono::TimeDelta::milliseconds(10_000 - i);
            p.push(at, &[Some(if i == 5_000 { 99.0 } else { (i % 7) as f64 })]);
        }
        let points = p.points(0, end, 60.0, 40);
        assert!(points.len() <= 80, "{}", points.len());
        assert!(points.iter().any(|&(_, v)| v == 99.0));
        assert_eq!(p.stats(0, end, 60.0), Some((3.0, 0.0, 99.0)));
        // An older window has none of them.
        assert_eq!(p.stats(0, end - chrono::TimeDelta::seconds(30), 5.0), None);
        assert_eq!(short(21.5), "21.5");
        assert_eq!(short(1_500_000.0), "1.50e6");
    }

    #[test]
    fn samples_are_bounded() {
        let mut p = Plot::new("plot-1", &["v".into()]);
        for i in 0..(MAX_SAMPLES + 10) {
            p.push(Utc::now(), &[Some(i as f64)]);
        }
        assert_eq!(p.len(), MAX_SAMPLES);
    }
}
