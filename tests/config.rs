//! The defaults file: `$XDG_CONFIG_HOME/muxcat/config.toml` or `--config
//! FILE` gives the global options the command line did not; a mistake
//! stops the run naming the file, line and column (exit 2).

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::muxcat_bin;

/// muxcat with `home` as its config home and `script` on stdin.
fn muxcat(home: &Path, args: &[&str], script: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(muxcat_bin())
        .args(args)
        .env("XDG_CONFIG_HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn write_config(home: &Path, text: &str) -> std::path::PathBuf {
    let dir = home.join("muxcat");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.toml");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn the_defaults_file_sets_the_keymap_and_the_record_dir() {
    let home = tempfile::tempdir().unwrap();
    let plain = muxcat(home.path(), &["keymap", "--dump"], "");
    assert!(plain.status.success());
    let vim = muxcat(home.path(), &["keymap", "--dump", "--keymap", "vim"], "");
    assert_ne!(plain.stdout, vim.stdout, "vim's keymap differs from the default");

    write_config(home.path(), "keymap = \"vim\"\nrecord = \"transcripts\"\n");
    let from_file = muxcat(home.path(), &["keymap", "--dump"], "");
    assert!(
        from_file.status.success(),
        "{}",
        String::from_utf8_lossy(&from_file.stderr)
    );
    assert_eq!(from_file.stdout, vim.stdout);
    // The command line wins.
    let given = muxcat(home.path(), &["keymap", "--dump", "--keymap", "default"], "");
    assert_eq!(given.stdout, plain.stdout);

    // `record` (next to the file) gets every session's transcript.
    // The folder is made when missing.
    let out = muxcat(home.path(), &["run"], "udp --id sess-u 127.0.0.1:0\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = home.path().join("muxcat").join("transcripts");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        files.iter().any(|f| f.to_string_lossy().ends_with("sess-u.log")),
        "{files:?}"
    );
}

#[test]
fn a_mistake_names_the_file_line_and_column() {
    let home = tempfile::tempdir().unwrap();
    let file = write_config(home.path(), "# defaults\nkeymap = \"vim\"\nscrollback = 5\n");
    let out = muxcat(home.path(), &["run"], "");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3:1: unknown field `scrollback`", file.display())),
        "{err}"
    );
    // --config names another file, which must exist.
    let other = home.path().join("other.toml");
    std::fs::write(&other, "scrollback_lines = 10\n").unwrap();
    let out = muxcat(home.path(), &["--config", other.to_str().unwrap(), "run"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = muxcat(home.path(), &["--config", "/nonexistent/muxcat.toml", "run"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/muxcat.toml"));
}
