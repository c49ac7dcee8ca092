//! Auto-replies: `on REGEX send PAYLOAD` answers every received line (or
//! chunk in binary mode, or datagram) that matches, with `$1`…`$9` and
//! `${name}` capture groups substituted — enough to make muxcat answer
//! like the device it stands in for. A plot (`plot REGEX`) is a trigger
//! too: its matches become `sample` events instead of replies.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use serde::Serialize;

/// What a trigger listens to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every session, present and future.
    All,
    Session(String),
    /// Every client of the listener, present and future.
    Listener(String),
}

#[derive(Debug)]
pub struct Trigger {
    pub id: String,
    pub scope: Scope,
    pub regex: regex::bytes::Regex,
    /// The reply, escapes decoded, `$1`/`${name}` still to expand.
    pub template: Bytes,
    /// No end of line appended (hex payloads, `--raw`).
    pub raw: bool,
    pub once: bool,
    /// Appended to each reply (after the captures are filled in).
    checksum: Option<(super::checksum::Checksum, super::checksum::Range)>,
    /// The reply is computed elsewhere: matches go here.
    notify: Option<tokio::sync::mpsc::Sender<TriggerHit>>,
    /// `plot`: no reply; each match's numbers are a sample.
    sample: bool,
    /// A proxy's direction it watches (None: what the session receives).
    pub dir: Option<super::session::RelayDir>,
    /// `--rewrite`: replaces matches in the relayed stream.
    pub rewrite: bool,
    fired: AtomicU64,
    spent: AtomicBool,
}

/// One row of the `triggers` listing.
/// A match of a trigger whose reply is computed elsewhere.
#[derive(Clone, Debug)]
pub struct TriggerHit {
    pub trigger: String,
    pub session: String,
    /// The received line (or chunk) that matched.
    pub data: Bytes,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerInfo {
    pub trigger_id: String,
    /// `all`, or the session or listener id.
    pub on: String,
    pub regex: String,
    pub reply: String,
    pub once: bool,
    pub fired: u64,
}

impl Trigger {
    pub fn new(
        id: String,
        scope: Scope,
        regex: regex::bytes::Regex,
        template: Bytes,
        raw: bool,
        once: bool,
    ) -> Self {
        Trigger {
            id,
            scope,
            regex,
            template,
            raw,
            once,
            checksum: None,
            notify: None,
            sample: false,
            dir: None,
            rewrite: false,
            fired: AtomicU64::new(0),
            spent: AtomicBool::new(false),
        }
    }

    /// `on --crc`: each reply gets this checksum.
    pub fn with_checksum(
        mut self,
        checksum: Option<(super::checksum::Checksum, super::checksum::Range)>,
    ) -> Self {
        self.checksum = checksum;
        self
    }

    pub fn with_notify(mut self, notify: Option<tokio::sync::mpsc::Sender<TriggerHit>>) -> Self {
        self.notify = notify;
        self
    }

    /// A proxy trigger: the direction it watches, and whether it rewrites.
    pub fn relaying(mut self, dir: Option<super::session::RelayDir>, rewrite: bool) -> Self {
        self.dir = dir;
        self.rewrite = rewrite;
        self
    }

    /// Whether it answers what the session receives (not a proxy's s2c
    /// stream, not a rewrite, not a plot).
    pub fn watches_received(&self) -> bool {
        !self.rewrite && self.dir != Some(super::session::RelayDir::S2c)
    }

    /// `--rewrite`: `data` with every match replaced (captures filled
    /// in); None when nothing matched.
    pub fn rewritten(&self, data: &[u8]) -> Option<Vec<u8>> {
        if !self.regex.is_match(data) || !self.fire() {
            return None;
        }
        Some(self.regex.replace_all(data, &self.template[..]).into_owned())
    }

    /// A plot: matches are samples, not replies.
    pub fn sampling(mut self, sample: bool) -> Self {
        self.sample = sample;
        self
    }

    /// Its reply is computed elsewhere (a Lua function).
    pub fn is_computed(&self) -> bool {
        self.notify.is_some()
    }

    pub fn is_plot(&self) -> bool {
        self.sample
    }

    /// A plot's sample of `data`: the number in each capture group (the
    /// whole match without groups), None where a group took no part or
    /// holds no number; None when it does not match or holds no number.
    pub fn sample(&self, data: &[u8]) -> Option<Vec<Option<f64>>> {
        let caps = self.regex.captures(data)?;
        let number = |m: Option<regex::bytes::Match>| {
            let text = std::str::from_utf8(m?.as_bytes()).ok()?.trim();
            text.parse::<f64>().ok().filter(|v| v.is_finite())
        };
        let values: Vec<Option<f64>> = if caps.len() == 1 {
            vec![number(caps.get(0))]
        } else {
            (1..caps.len()).map(|i| number(caps.get(i))).collect()
        };
        if values.iter().all(Option::is_none) || !self.fire() {
            return None;
        }
        Some(values)
    }

    /// A plot's series: each group's name, or its number (`value` for a
    /// regex without groups).
    pub fn series(&self) -> Vec<String> {
        let names: Vec<String> = self
            .regex
            .capture_names()
            .enumerate()
            .skip(1)
            .map(|(i, name)| name.map_or_else(|| i.to_string(), str::to_string))
            .collect();
        if names.is_empty() {
            vec!["value".to_string()]
        } else {
            names
        }
    }

    /// A computed reply: the match is handed over (false: nobody takes
    /// them any more, or too many wait — the caller reports it).
    pub fn notify(&self, session: &str, data: &[u8]) -> Option<bool> {
        let notify = self.notify.as_ref()?;
        if !self.regex.is_match(data) || !self.fire() {
            return None;
        }
        let hit = TriggerHit {
            trigger: self.id.clone(),
            session: session.to_string(),
            data: Bytes::copy_from_slice(data),
        };
        Some(notify.try_send(hit).is_ok())
    }

    pub fn applies_to(&self, session: &str, listener: Option<&str>) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Session(id) => id == session,
            Scope::Listener(id) => listener == Some(id.as_str()),
        }
    }

    /// The reply to `data` if it matches (and a `--once` trigger has not
    /// fired yet).
    pub fn reply(&self, data: &[u8]) -> Option<Vec<u8>> {
        let caps = self.regex.captures(data)?;
        if !self.fire() {
            return None;
        }
        let mut out = Vec::with_capacity(self.template.len() + 16);
        caps.expand(&self.template, &mut out);
        if let Some((sum, range)) = self.checksum {
            super::checksum::append(&mut out, sum, range);
        }
        Some(out)
    }

    /// A match fires it: counted, unless a `--once` trigger already fired.
    fn fire(&self) -> bool {
        if self.once && self.spent.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.fired.fetch_add(1, Ordering::Relaxed);
        true
    }

    pub fn is_spent(&self) -> bool {
        self.spent.load(Ordering::Acquire)
    }

    pub fn info(&self) -> TriggerInfo {
        TriggerInfo {
            trigger_id: self.id.clone(),
            on: match &self.scope {
                Scope::All => "all".to_string(),
                Scope::Session(id) | Scope::Listener(id) => id.clone(),
            },
            regex: self.regex.as_str().to_string(),
            reply: if self.rewrite {
                format!(
                    "(rewrites {} to {})",
                    self.dir.map_or("c2s", |d| d.as_str()),
                    crate::core::escape::escape_transcript(&self.template)
                )
            } else if self.sample {
                format!("(plot: samples of {})", self.series().join(", "))
            } else if self.is_computed() {
                "(computed by the script)".to_string()
            } else {
                crate::core::escape::escape_transcript(&self.template)
            },
            once: self.once,
            fired: self.fired.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(re: &str, reply: &str, once: bool) -> Trigger {
        Trigger::new(
            "trig-1".into(),
            Scope::All,
            regex::bytes::Regex::new(re).unwrap(),
            Bytes::copy_from_slice(reply.as_bytes()),
            false,
            once,
        )
    }

    #[test]
    fn captures_are_substituted() {
        let t = trigger(r"^GET (\w+) (?P<unit>\w+)$", "VALUE $1=42 ${unit} $$", false);
        assert_eq!(t.reply(b"GET temp C").unwrap(), b"VALUE temp=42 C $");
        assert!(t.reply(b"PUT temp C").is_none());
        assert_eq!(t.info().fired, 1);
    }

    #[test]
    fn once_fires_once() {
        let t = trigger("ping", "pong", true);
        assert!(t.reply(b"ping").is_some());
        assert!(t.reply(b"ping").is_none());
        assert!(t.is_spent());
    }

    #[test]
    fn plots_take_the_number_in_each_group() {
        let t = Trigger::new(
            "plot-1".into(),
            Scope::All,
            regex::bytes::Regex::new(r"T=(?P<temp>\S+)(?: H=(\S+))?").unwrap(),
            Bytes::new(),
            false,
            false,
        )
        .sampling(true);
        assert_eq!(t.series(), ["temp", "2"]);
        assert_eq!(t.sample(b"T=21.5 H=40"), Some(vec![Some(21.5), Some(40.0)]));
        assert_eq!(t.sample(b"T=-3e1"), Some(vec![Some(-30.0), None]));
        // No number anywhere: no sample.
        assert_eq!(t.sample(b"T=warm H=nan"), None);
        assert_eq!(t.sample(b"nothing"), None);
        assert_eq!(t.info().fired, 2);
        let whole = trigger(r"\d+\.\d+", "", false).sampling(true);
        assert_eq!(whole.series(), ["value"]);
        assert_eq!(whole.sample(b"v 1.25 V"), Some(vec![Some(1.25)]));
    }

    #[test]
    fn scopes() {
        let mut t = trigger("x", "y", false);
        assert!(t.applies_to("s1", None));
        t.scope = Scope::Listener("l1".into());
        assert!(t.applies_to("s2", Some("l1")) && !t.applies_to("s2", None));
        t.scope = Scope::Session("s1".into());
        assert!(t.applies_to("s1", Some("l1")) && !t.applies_to("s2", Some("l1")));
    }
}
