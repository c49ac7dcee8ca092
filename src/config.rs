//! The defaults file, `$XDG_CONFIG_HOME/muxcat/config.toml` (or
//! `--config FILE`): values for the global options that the command line
//! did not give. A mistake fails the run naming the file, line and column.
//!
//! ```toml
//! keymap = "vim"                  # default, vim, emacs, or a keymap file
//! record = "~/muxcat/transcripts" # --record for every run
//! scrollback_lines = 200000
//! sequences = "seqs.toml"         # the TUI's send panel (next to this file)
//! log = "/tmp/muxcat.log"
//! transcript_format = "v1"        # for tools that read only v1
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::cli::GlobalArgs;

/// The file's keys; each also has its command-line spelling
/// (`scrollback-lines`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    keymap: Option<Spanned<String>>,
    record: Option<Spanned<PathBuf>>,
    #[serde(alias = "scrollback-lines")]
    scrollback_lines: Option<Spanned<usize>>,
    sequences: Option<Spanned<PathBuf>>,
    log: Option<Spanned<PathBuf>>,
    #[serde(alias = "transcript-format")]
    transcript_format: Option<Spanned<String>>,
}

/// The largest defaults file read.
const CONFIG_MAX: u64 = 1 << 20;

/// The default file's place (it need not exist).
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "muxcat").map(|d| d.config_dir().join("config.toml"))
}

/// Fills `global`'s unset options from the defaults file: `--config FILE`
/// (which must exist) or the default place (if it exists). Err: a message
/// naming the file, line and column.
pub fn apply(global: &mut GlobalArgs) -> Result<(), String> {
    let (path, required) = match &global.config {
        Some(p) => (p.clone(), true),
        None => match default_path() {
            Some(p) => (p, false),
            None => return Ok(()),
        },
    };
    let bytes = match crate::core::files::read_capped(&path, CONFIG_MAX) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let text = String::from_utf8(bytes).map_err(|e| format!("{}: not UTF-8 text: {e}", path.display()))?;
    apply_text(global, &text, &path)
}

/// [`apply`] for the file's text (`path` names it and anchors relative paths).
fn apply_text(global: &mut GlobalArgs, text: &str, path: &Path) -> Result<(), String> {
    let at = |span: Option<std::ops::Range<usize>>| place(path, text, span.map_or(0, |s| s.start));
    let defaults: Defaults =
        toml::from_str(text).map_err(|e| format!("{}: {}", at(e.span()), e.message()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    if global.keymap.is_none()
        && let Some(keymap) = defaults.keymap
    {
        let span = keymap.span();
        let name = keymap.into_inner();
        let name = if name.contains('/') || name.ends_with(".toml") {
            relative_to(dir, Path::new(&name)).display().to_string()
        } else {
            name
        };
        if let Err(errors) = crate::tui::keymap::Keymap::load(Some(&name)) {
            let first = errors.0.first().map(ToString::to_string).unwrap_or_default();
            return Err(format!("{}: keymap {name:?}: {first}", at(Some(span))));
        }
        global.keymap = Some(name);
    }
    if global.scrollback_lines.is_none()
        && let Some(lines) = defaults.scrollback_lines
    {
        if *lines.get_ref() == 0 {
            return Err(format!(
                "{}: scrollback_lines must be at least 1",
                at(Some(lines.span()))
            ));
        }
        global.scrollback_lines = Some(lines.into_inner());
    }
    if global.transcript_format.is_none()
        && let Some(format) = defaults.transcript_format
    {
        use clap::ValueEnum;
        let parsed = crate::transcript::Format::from_str(format.get_ref(), true).map_err(|_| {
            format!(
                "{}: transcript_format is v1, v2 or v3, not {:?}",
                at(Some(format.span())),
                format.get_ref()
            )
        })?;
        global.transcript_format = Some(parsed);
    }
    let path_of = |value: Spanned<PathBuf>| relative_to(dir, &value.into_inner());
    if global.record.is_none() {
        global.record = defaults.record.map(path_of);
    }
    if global.sequences.is_none() {
        global.sequences = defaults.sequences.map(path_of);
    }
    if global.log.is_none() {
        global.log = defaults.log.map(path_of);
    }
    Ok(())
}

/// `~/x` in the home folder, a relative path next to the file.
fn relative_to(dir: &Path, value: &Path) -> PathBuf {
    if let Ok(rest) = value.strip_prefix("~")
        && let Some(home) = directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf())
    {
        return home.join(rest);
    }
    if value.is_relative() {
        dir.join(value)
    } else {
        value.to_path_buf()
    }
}

/// `FILE:LINE:COLUMN` of a byte offset (1-based, as editors count).
fn place(path: &Path, text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{}:{line}:{column}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(text: &str, global: GlobalArgs) -> Result<GlobalArgs, String> {
        let mut g = global;
        apply_text(&mut g, text, Path::new("/etc/muxcat/config.toml")).map(|()| g)
    }

    #[test]
    fn fills_what_the_command_line_left_unset() {
        let text = "keymap = \"vim\"\nrecord = \"logs\"\nscrollback-lines = 500\nlog = \"/tmp/m.log\"\n";
        let g = applied(text, GlobalArgs::default()).unwrap();
        assert_eq!(g.keymap.as_deref(), Some("vim"));
        assert_eq!(g.record, Some(PathBuf::from("/etc/muxcat/logs")));
        assert_eq!(g.scrollback_lines, Some(500));
        assert_eq!(g.log, Some(PathBuf::from("/tmp/m.log")));
        let g = applied("transcript_format = \"v1\"", GlobalArgs::default()).unwrap();
        assert_eq!(g.transcript_format, Some(crate::transcript::Format::V1));
        // The command line wins.
        let given = GlobalArgs {
            keymap: Some("emacs".into()),
            scrollback_lines: Some(7),
            record: Some("here".into()),
            ..Default::default()
        };
        let g = applied(text, given).unwrap();
        assert_eq!(g.keymap.as_deref(), Some("emacs"));
        assert_eq!(g.scrollback_lines, Some(7));
        assert_eq!(g.record, Some(PathBuf::from("here")));
    }

    #[test]
    fn mistakes_name_the_file_line_and_column() {
        let e = applied("record = \"x\"\nkeymapp = \"vim\"\n", GlobalArgs::default()).unwrap_err();
        assert!(
            e.starts_with("/etc/muxcat/config.toml:2:1: unknown field `keymapp`"),
            "{e}"
        );
        let e = applied("\n\nscrollback_lines = \"many\"\n", GlobalArgs::default()).unwrap_err();
        assert!(e.starts_with("/etc/muxcat/config.toml:3:20: "), "{e}");
        let e = applied("scrollback_lines = 0\n", GlobalArgs::default()).unwrap_err();
        assert!(
            e.starts_with("/etc/muxcat/config.toml:1:20: scrollback_lines must be at least 1"),
            "{e}"
        );
        let e = applied("# mine\nkeymap = \"nosuch.toml\"\n", GlobalArgs::default()).unwrap_err();
        assert!(
            e.starts_with("/etc/muxcat/config.toml:2:10: keymap \"/etc/muxcat/nosuch.toml\""),
            "{e}"
        );
        let e = applied("transcript_format = \"v4\"\n", GlobalArgs::default()).unwrap_err();
        assert!(
            e.starts_with("/etc/muxcat/config.toml:1:21: transcript_format is v1, v2 or v3"),
            "{e}"
        );
        let e = applied("keymap = [\n", GlobalArgs::default()).unwrap_err();
        assert!(e.starts_with("/etc/muxcat/config.toml:"), "{e}");
    }
}
