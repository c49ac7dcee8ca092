//! Session profiles (tio's config sections): one TOML file per device in
//! `$XDG_CONFIG_HOME/muxcat/profiles/NAME.toml`, turned into command lines
//! that the one executor runs (`profile NAME`, `--profile NAME`).
//!
//! ```toml
//! connect = "127.0.0.1:7000"          # or listen = "7000", or udp = "5000"
//! options = "--reconnect --wait --omap onlcr"
//! label = "board"
//! triggers = ["'^login: ' send admin"]
//! highlights = ["ERROR red", "'temp=\\d+'"]   # highlight lines without the `highlight`
//! plots = ["'T=(?P<temp>\\S+)'"]              # of the session it opens
//! filter = "-v ^DEBUG"
//! commands = ["waitfor --timeout 30s '\\$ $'"]
//! keymap = "vim"                      # the TUI's
//! sequences = "board-seqs.toml"       # the TUI's send panel (next to this file)
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub connect: Option<String>,
    pub listen: Option<String>,
    pub udp: Option<String>,
    /// The opening command's options, as written on a command line.
    pub options: Option<String>,
    pub label: Option<String>,
    /// `on` lines without the `on`: `REGEX send PAYLOAD…`.
    #[serde(default)]
    pub triggers: Vec<String>,
    /// `highlight` lines without the `highlight`: `REGEX [COLOUR]`.
    #[serde(default)]
    pub highlights: Vec<String>,
    /// `plot` lines without the `plot`, of the session it opens: `REGEX`.
    #[serde(default)]
    pub plots: Vec<String>,
    /// A `filter` line without the `filter`, for the session it opens.
    pub filter: Option<String>,
    /// Command lines run after it opens.
    #[serde(default)]
    pub commands: Vec<String>,
    pub keymap: Option<String>,
    pub sequences: Option<PathBuf>,
}

/// Where `profile NAME` looks: a path as given (it has a `/` or ends in
/// `.toml`), else `NAME.toml` in the user's profiles folder.
pub fn locate(name: &str) -> Option<PathBuf> {
    if name.contains('/') || name.ends_with(".toml") {
        return Some(PathBuf::from(name));
    }
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !valid || name.starts_with('.') {
        return None;
    }
    directories::ProjectDirs::from("", "", "muxcat")
        .map(|d| d.config_dir().join("profiles").join(format!("{name}.toml")))
}

impl Profile {
    pub fn parse(text: &str, file: &Path) -> Result<Profile, String> {
        let profile: Profile =
            toml::from_str(text).map_err(|e| format!("{}: {}", file.display(), e.message()))?;
        let opens = [&profile.connect, &profile.listen, &profile.udp]
            .iter()
            .filter(|o| o.is_some())
            .count();
        if opens > 1 {
            return Err(format!("{}: give one of connect, listen or udp", file.display()));
        }
        Ok(profile)
    }

    /// The command lines it stands for, in order: open, arm, run.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let open = [
            ("connect", &self.connect),
            ("listen", &self.listen),
            ("udp", &self.udp),
        ]
        .into_iter()
        .find_map(|(cmd, target)| target.as_ref().map(|t| (cmd, t)));
        if let Some((cmd, target)) = open {
            let mut line = cmd.to_string();
            if let Some(label) = &self.label {
                line.push_str(&format!(
                    " --label {}",
                    crate::lang::words::join(std::slice::from_ref(label))
                ));
            }
            if let Some(options) = &self.options {
                line.push(' ');
                line.push_str(options);
            }
            line.push(' ');
            line.push_str(target);
            lines.push(line);
        }
        lines.extend(self.triggers.iter().map(|t| format!("on {t}")));
        lines.extend(self.highlights.iter().map(|h| format!("highlight {h}")));
        lines.extend(self.plots.iter().map(|p| format!("plot {p}")));
        lines.extend(self.filter.iter().map(|f| format!("filter {f}")));
        lines.extend(self.commands.iter().cloned());
        lines
    }

    /// Its sequences file, relative to the profile's folder.
    pub fn sequences_in(&self, file: &Path) -> Option<PathBuf> {
        let seqs = self.sequences.as_ref()?;
        Some(match file.parent() {
            Some(dir) if seqs.is_relative() => dir.join(seqs),
            _ => seqs.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_is_the_lines_it_stands_for() {
        let text = r#"
connect = "127.0.0.1:7000"
options = "--reconnect --omap onlcr"
label = "my board"
triggers = ["'^login: ' send admin"]
highlights = ["ERROR red"]
plots = ["'T=(\\d+)'"]
filter = "-v ^DEBUG"
commands = ["send AT"]
keymap = "vim"
sequences = "seqs.toml"
"#;
        let p = Profile::parse(text, Path::new("/home/u/.config/muxcat/profiles/b.toml")).unwrap();
        assert_eq!(
            p.lines(),
            [
                "connect --label 'my board' --reconnect --omap onlcr 127.0.0.1:7000",
                "on '^login: ' send admin",
                "highlight ERROR red",
                "plot 'T=(\\d+)'",
                "filter -v ^DEBUG",
                "send AT"
            ]
        );
        for line in p.lines() {
            crate::lang::parse_line(&line).unwrap();
        }
        assert_eq!(
            p.sequences_in(Path::new("/p/b.toml")),
            Some(PathBuf::from("/p/seqs.toml"))
        );
        assert!(Profile::parse("connect = \"a:1\"\nlisten = \"2\"\n", Path::new("x")).is_err());
        assert!(Profile::parse("bogus = 1\n", Path::new("x")).is_err());
        assert!(locate("../etc/passwd").is_some_and(|p| p == Path::new("../etc/passwd")));
        assert!(locate(".hidden").is_none());
    }
}
