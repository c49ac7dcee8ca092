//! The send panel's sequences (PacketSender's saved packets, Docklight's
//! send sequences): named payloads in a TOML file, each sent to the
//! selected session from the panel or by its key, optionally waiting for
//! an answer or repeating.
//!
//! ```toml
//! [[sequence]]
//! name = "version"
//! send = 'AT+GMR\r'          # as `send` takes it (escapes; a TOML
//!                            # literal string keeps the backslash), or:
//! # hex = "01 03 00 00 00 0a c5 cd"
//! key = "f5"                 # optional
//! expect = "^OK"             # optional: wait for it after sending
//! every = "1s"               # optional: repeat until stopped
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::keymap::Key;

/// One sequence as the file writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sequence {
    pub name: String,
    /// The payload with the command language's escapes (`AT\r`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    /// Or the payload as hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A regex to wait for after sending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    /// Repeat this often (`1s`, `250ms`) until stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    #[serde(default)]
    sequence: Vec<Sequence>,
}

impl Sequence {
    /// The command lines that send it (and wait, or repeat): run as a key
    /// macro is, so a wait sees the answer to this send.
    pub fn lines(&self) -> Vec<String> {
        let send = match (&self.send, &self.hex) {
            (_, Some(hex)) => format!("send --hex {hex}"),
            (Some(text), None) => format!("send {}", crate::lang::words::join(std::slice::from_ref(text))),
            (None, None) => "send".to_string(),
        };
        let mut lines = match &self.every {
            Some(every) => vec![format!("repeat --every {every} {send}")],
            None => vec![send],
        };
        if let (Some(expect), None) = (&self.expect, &self.every) {
            lines.push(format!(
                "waitfor {}",
                crate::lang::words::join(std::slice::from_ref(expect))
            ));
        }
        lines
    }

    /// What the panel shows of the payload.
    pub fn preview(&self) -> String {
        match (&self.send, &self.hex) {
            (_, Some(hex)) => format!("hex {hex}"),
            (Some(text), None) => text.clone(),
            (None, None) => String::new(),
        }
    }

    /// The repeat interval, if any.
    pub fn interval(&self) -> Option<Duration> {
        crate::lang::parse_duration(self.every.as_deref()?).ok()
    }

    /// Checks it the way the parser will run it: every line must parse.
    fn check(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("a sequence needs a name".into());
        }
        if self.send.is_some() && self.hex.is_some() {
            return Err(format!("{}: give send or hex, not both", self.name));
        }
        if let Some(k) = &self.key
            && Key::parse(k).is_none()
        {
            return Err(format!("{}: bad key {k:?}", self.name));
        }
        for line in self.lines() {
            crate::lang::parse_line(&line).map_err(|e| format!("{}: {}", self.name, e.text))?;
        }
        Ok(())
    }
}

/// The panel's list, and where it is saved.
#[derive(Debug, Default)]
pub struct Sequences {
    pub list: Vec<Sequence>,
    pub file: Option<PathBuf>,
    pub selected: usize,
}

impl Sequences {
    /// Parses a file's text; good sequences load, every bad one is an
    /// error naming it.
    pub fn parse(text: &str, file: &Path) -> (Sequences, Vec<String>) {
        let name = file.display();
        let mut seqs = Sequences {
            file: Some(file.to_path_buf()),
            ..Sequences::default()
        };
        let parsed: File = match toml::from_str(text) {
            Ok(f) => f,
            Err(e) => return (seqs, vec![format!("{name}: {}", e.message())]),
        };
        let mut errors = Vec::new();
        for seq in parsed.sequence {
            match seq.check() {
                Ok(()) => seqs.list.push(seq),
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        (seqs, errors)
    }

    /// Reads `path` (at most 1 MiB, as keymaps).
    pub fn load(path: &Path) -> (Sequences, Vec<String>) {
        match crate::core::files::read_capped(path, crate::core::files::KEYMAP_MAX) {
            Ok(bytes) => Sequences::parse(&String::from_utf8_lossy(&bytes), path),
            Err(e) => (
                Sequences {
                    file: Some(path.to_path_buf()),
                    ..Sequences::default()
                },
                vec![format!("{}: {e}", path.display())],
            ),
        }
    }

    /// `seq add NAME PAYLOAD…`: adds (or replaces) a sequence.
    pub fn add(&mut self, seq: Sequence) -> Result<(), String> {
        seq.check()?;
        match self.list.iter_mut().find(|s| s.name == seq.name) {
            Some(old) => *old = seq,
            None => self.list.push(seq),
        }
        Ok(())
    }

    /// The sequences as the file writes them.
    pub fn to_toml(&self) -> String {
        let file = File {
            sequence: self.list.clone(),
        };
        toml::to_string(&file).unwrap_or_default()
    }

    /// `seq save`: writes the file (owner-only), making its folder.
    pub fn save(&self) -> Result<PathBuf, String> {
        let path = self
            .file
            .clone()
            .ok_or("no sequences file (start with --sequences FILE)")?;
        crate::core::files::write_private(&path, self.to_toml().as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }

    /// The sequence bound to `key`, if any.
    pub fn for_key(&self, key: &Key) -> Option<usize> {
        self.list
            .iter()
            .position(|s| s.key.as_deref().and_then(Key::parse).as_ref() == Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_loads_its_good_sequences_and_names_the_bad_ones() {
        let text = r#"
[[sequence]]
name = "version"
send = 'AT+GMR\r'
key = "f5"
expect = "^OK"

[[sequence]]
name = "poll"
hex = "01 03 00 00 00 0a c5 cd"
every = "1s"

[[sequence]]
name = "broken"
hex = "zz"
"#;
        let (seqs, errors) = Sequences::parse(text, Path::new("s.toml"));
        assert_eq!(seqs.list.len(), 2);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("s.toml: broken"), "{errors:?}");
        assert_eq!(seqs.list[0].lines(), ["send AT+GMR\\r", "waitfor ^OK"]);
        assert_eq!(
            seqs.list[1].lines(),
            ["repeat --every 1s send --hex 01 03 00 00 00 0a c5 cd"]
        );
        assert_eq!(seqs.for_key(&Key::parse("f5").unwrap()), Some(0));
        // What is saved loads back the same.
        let (again, errors) = Sequences::parse(&seqs.to_toml(), Path::new("t"));
        assert!(errors.is_empty());
        assert_eq!(again.list, seqs.list);
    }
}
