//! The layout of scrollback panes: split side by side or stacked (up to
//! [`MAX_PANES`]), each with its own session, scroll, view and marks; and
//! merged panes, which interleave several sessions' chunks by time.
//!
//! A merged pane's place is where each of its sessions' entries ends
//! (counted from the first entry ever pushed), so it stays on its rows as
//! new ones arrive and is found again in O(rows × sessions) — walking from
//! there, each step takes the newer of the sessions' next entries —
//! whatever the scrollbacks hold.

use ratatui::layout::{Constraint, Layout, Rect};

use super::app::{App, Focus, Pane, SessionRow};

/// Panes at most.
pub const MAX_PANES: usize = 4;

/// How the scrollback area is split.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SplitDir {
    /// Side by side.
    #[default]
    Vertical,
    /// Stacked.
    Horizontal,
}

/// The panes' rectangles in `area`, in order. A pane too small to show
/// anything gets what there is (ratatui clips; nothing panics).
pub fn rects(area: Rect, n: usize, dir: SplitDir) -> Vec<Rect> {
    let n = n.max(1);
    let parts = vec![Constraint::Ratio(1, n as u32); n];
    let layout = match dir {
        SplitDir::Vertical => Layout::horizontal(parts),
        SplitDir::Horizontal => Layout::vertical(parts),
    };
    layout.split(area).to_vec()
}

/// One row source of a merged pane: which of its sessions, which entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergedEntry {
    /// Index into the pane's `merge` list.
    pub member: usize,
    /// Index into that session's scrollback.
    pub idx: usize,
}

/// A merged pane's sessions (those still in the list), in its order.
pub fn members<'a>(app: &'a App, pane: &Pane) -> Vec<Option<&'a SessionRow>> {
    pane.merge.iter().map(|id| app.session(id)).collect()
}

/// Where each member's entries end now: its place when following the tail.
fn tail(members: &[Option<&SessionRow>]) -> Vec<u64> {
    members
        .iter()
        .map(|m| m.map_or(0, |s| s.scrollback.dropped + s.scrollback.len() as u64))
        .collect()
}

/// The entries above `ends` (newest first), at most `n`, and where they
/// start: the k-way walk back in time.
pub fn walk_back(members: &[Option<&SessionRow>], ends: &[u64], n: usize) -> (Vec<MergedEntry>, Vec<u64>) {
    let mut at: Vec<u64> = ends.to_vec();
    let mut out = Vec::with_capacity(n.min(4096));
    while out.len() < n {
        // The newest of the entries just above each member's place.
        let mut best: Option<(usize, usize, chrono::DateTime<chrono::Utc>)> = None;
        for (k, m) in members.iter().enumerate() {
            let Some(s) = m else { continue };
            let first = s.scrollback.dropped;
            if at[k] <= first {
                continue;
            }
            let idx = (at[k] - 1 - first) as usize;
            let Some(e) = s.scrollback.get(idx) else { continue };
            if best.is_none_or(|(_, _, t)| e.at > t) {
                best = Some((k, idx, e.at));
            }
        }
        let Some((k, idx, _)) = best else { break };
        at[k] -= 1;
        out.push(MergedEntry { member: k, idx });
    }
    (out, at)
}

/// The place `n` entries below `ends` (towards the tail); None at the tail.
fn walk_forward(members: &[Option<&SessionRow>], ends: &[u64], n: usize) -> Option<Vec<u64>> {
    let last = tail(members);
    let mut at: Vec<u64> = ends.to_vec();
    for _ in 0..n {
        // The oldest of the entries just below each member's place.
        let mut best: Option<(usize, chrono::DateTime<chrono::Utc>)> = None;
        for (k, m) in members.iter().enumerate() {
            let Some(s) = m else { continue };
            let first = s.scrollback.dropped;
            let next = at[k].max(first);
            if next >= last[k] {
                continue;
            }
            let Some(e) = s.scrollback.get((next - first) as usize) else {
                continue;
            };
            if best.is_none_or(|(_, t)| e.at < t) {
                best = Some((k, e.at));
            }
        }
        let (k, _) = best?;
        at[k] = at[k].max(members[k].map_or(0, |s| s.scrollback.dropped)) + 1;
    }
    (at != last).then_some(at)
}

fn matches(members: &[Option<&SessionRow>], k: usize, n: u64, re: &regex::bytes::Regex) -> bool {
    members[k]
        .and_then(|s| s.scrollback.get(n.checked_sub(s.scrollback.dropped)? as usize))
        .is_some_and(|e| re.is_match(&e.data))
}

/// The rows a merged pane shows (oldest first), `height` at most.
pub fn merged_rows(app: &App, pane: &Pane, height: usize) -> Vec<MergedEntry> {
    let members = members(app, pane);
    let ends = pane.merge_ends.clone().unwrap_or_else(|| tail(&members));
    let (mut rows, _) = walk_back(&members, &ends, height);
    rows.reverse();
    rows
}

impl App {
    /// `split [SESSION]`: a new pane showing `session` (or the selected
    /// one), focused.
    pub fn split(&mut self, session: Option<String>, dir: SplitDir) -> Result<String, String> {
        if self.panes.len() >= MAX_PANES {
            return Err(format!(
                "split: {MAX_PANES} panes at most (unsplit closes the focused one)"
            ));
        }
        let session = session.or_else(|| self.focused().session.clone());
        self.split_dir = dir;
        self.panes.push(Pane {
            session,
            ..Pane::default()
        });
        self.focus_pane(self.panes.len() - 1);
        Ok(format!("{} panes", self.panes.len()))
    }

    /// `unsplit`: closes the focused pane (the last one stays).
    pub fn unsplit(&mut self) -> Result<String, String> {
        if self.panes.len() == 1 {
            return Err("unsplit: there is only one pane".to_string());
        }
        let at = self.pane.min(self.panes.len() - 1);
        self.panes.remove(at);
        self.focus_pane(at.min(self.panes.len() - 1));
        Ok(format!("{} left", super::view::counted(self.panes.len(), "pane")))
    }

    /// `merge SESSION…`: a new pane interleaving their chunks by time.
    pub fn merge(&mut self, ids: Vec<String>) -> Result<String, String> {
        if ids.len() < 2 {
            return Err("merge: name two sessions or more".to_string());
        }
        if self.panes.len() >= MAX_PANES {
            return Err(format!(
                "merge: {MAX_PANES} panes at most (unsplit closes the focused one)"
            ));
        }
        self.panes.push(Pane {
            merge: ids,
            ..Pane::default()
        });
        self.focus_pane(self.panes.len() - 1);
        Ok(String::new())
    }

    /// Focuses pane `i`; the sessions list selects what it shows.
    pub fn focus_pane(&mut self, i: usize) {
        self.pane = i.min(self.panes.len() - 1);
        self.focus = Focus::Scrollback;
        let pane = &self.panes[self.pane];
        let shows = pane.session.clone().or_else(|| pane.merge.first().cloned());
        if let Some(i) = shows.and_then(|id| self.sessions.iter().position(|s| s.id == id)) {
            self.selected = Some(i);
            self.sessions[i].unread = false;
        }
    }

    /// Focuses pane `i`, for an action's result.
    pub(super) fn focus_then(&mut self, i: usize) -> Vec<super::app::Effect> {
        self.focus_pane(i);
        Vec::new()
    }

    /// Scrolls the focused merged pane by `delta` entries (up: positive).
    pub(super) fn scroll_merged(&mut self, delta: i64) {
        let at = self.pane.min(self.panes.len() - 1);
        let ends = {
            let pane = &self.panes[at];
            let members = members(self, pane);
            let now = pane.merge_ends.clone().unwrap_or_else(|| tail(&members));
            if delta > 0 {
                let (rows, start) = walk_back(&members, &now, delta as usize);
                // Not past the oldest page.
                let (above, _) = walk_back(&members, &start, self.page as usize);
                if rows.is_empty() {
                    Some(now)
                } else if above.len() < self.page as usize {
                    // The oldest page: a page below where every member starts.
                    let top: Vec<u64> = members
                        .iter()
                        .map(|m| m.map_or(0, |s| s.scrollback.dropped))
                        .collect();
                    walk_forward(&members, &top, self.page as usize)
                } else {
                    Some(start)
                }
            } else {
                walk_forward(&members, &now, delta.unsigned_abs() as usize)
            }
        };
        self.panes[at].merge_ends = ends;
    }

    /// `n` / `N` in a merged pane: the next older (or newer) entry that
    /// matches, from the last hit or the view's bottom; the view moves to
    /// show it. False when there is none.
    pub(super) fn search_merged(&mut self, re: &regex::bytes::Regex, newer: bool) -> bool {
        let at = self.pane.min(self.panes.len() - 1);
        let page = self.page.max(1) as usize;
        let pane = &self.panes[at];
        let members = members(self, pane);
        let view_end = pane.merge_ends.clone().unwrap_or_else(|| tail(&members));
        // Where to look from: just above (or below) the last hit.
        let mut place = match pane.merge_found {
            Some((k, n)) => {
                let mut p = view_end.clone();
                p[k] = if newer { n + 1 } else { n };
                p
            }
            None => view_end,
        };
        let hit = loop {
            if newer {
                let Some(next) = walk_forward(&members, &place, 1) else {
                    break None;
                };
                // The entry just passed: the one whose member moved.
                let Some(k) = (0..next.len()).find(|&k| next[k] != place[k]) else {
                    break None;
                };
                let n = next[k] - 1;
                place = next;
                if matches(&members, k, n, re) {
                    break Some((k, n, place.clone()));
                }
            } else {
                let (entries, before) = walk_back(&members, &place, 1);
                let Some(e) = entries.first() else { break None };
                let n = members[e.member].map_or(0, |s| s.scrollback.dropped) + e.idx as u64;
                let after = place.clone();
                place = before;
                if matches(&members, e.member, n, re) {
                    break Some((e.member, n, after));
                }
            }
        };
        let Some((k, n, after)) = hit else { return false };
        // The hit a third of a page up from the bottom (or at the tail,
        // followed, when it is that near).
        let ends = if page / 3 == 0 {
            Some(after)
        } else {
            walk_forward(&members, &after, page / 3)
        };
        let pane = &mut self.panes[at];
        pane.merge_found = Some((k, n));
        pane.merge_ends = ends;
        true
    }

    /// The focused pane is a merged one.
    pub fn merged_focused(&self) -> bool {
        !self.focused().merge.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::app::tests::{app, connected, data, sid};

    fn texts(a: &App, height: usize) -> (Vec<MergedEntry>, Vec<String>) {
        let pane = a.focused().clone();
        let rows = merged_rows(a, &pane, height);
        let text = rows
            .iter()
            .map(|e| {
                let s = a.session(&pane.merge[e.member]).unwrap();
                String::from_utf8_lossy(&s.scrollback.get(e.idx).unwrap().data).into_owned()
            })
            .collect();
        (rows, text)
    }

    #[test]
    fn a_merged_pane_interleaves_by_time_and_scrolls_by_entries() {
        let mut a = app();
        connected(&mut a, 1, Some("one"));
        connected(&mut a, 2, Some("two"));
        for i in 0..50 {
            let n = if i % 3 == 0 { 2 } else { 1 };
            data(&mut a, n, format!("line {i}").as_bytes());
        }
        a.merge(vec![sid(1), sid(2)]).unwrap();
        let (rows, shown) = texts(&a, 10);
        assert_eq!(rows.len(), 10);
        // The newest ten, oldest first, from both sessions in arrival order.
        assert_eq!(shown.last().unwrap(), "line 49\n");
        assert_eq!(shown.first().unwrap(), "line 40\n");
        assert!(rows.iter().any(|r| r.member == 1) && rows.iter().any(|r| r.member == 0));
        a.page = 10;
        a.scroll_merged(5);
        let (_, shown) = texts(&a, 10);
        assert_eq!(shown.last().unwrap(), "line 44\n");
        // New lines do not move a scrolled-back view.
        data(&mut a, 1, b"late");
        assert_eq!(texts(&a, 10).1, shown);
        a.scroll_merged(-100);
        assert_eq!(a.focused().merge_ends, None, "back at the tail, following");
        // Far up stops at the oldest page.
        a.scroll_merged(10_000);
        let (_, top) = texts(&a, 10);
        assert_eq!(top.len(), 10);
        assert_eq!(top[0], "connected", "{top:?}");
    }

    #[test]
    fn split_and_unsplit_keep_each_panes_session_and_focus() {
        let mut a = app();
        connected(&mut a, 1, None);
        connected(&mut a, 2, None);
        a.split(Some(sid(2)), SplitDir::Horizontal).unwrap();
        assert_eq!(a.panes.len(), 2);
        assert_eq!(a.pane, 1);
        assert_eq!(a.selected, Some(1));
        a.focus_pane(0);
        assert_eq!(a.selected, Some(0));
        for _ in 0..2 {
            a.split(None, SplitDir::Vertical).unwrap();
        }
        assert!(a.split(None, SplitDir::Vertical).is_err(), "4 at most");
        for _ in 0..3 {
            a.unsplit().unwrap();
        }
        assert!(a.unsplit().is_err());
        assert!(a.merge(vec![sid(1)]).is_err());
    }
}
