//! Reading files an operator names, with a size cap: `--cert /dev/zero`
//! or a runaway file is an error naming the file and the cap, never the
//! end of memory. And writing the user's own files owner-only.

use std::io::Read;
use std::path::Path;

/// PEM certificates and keys.
pub const PEM_MAX: u64 = 1 << 20;
/// Keymaps and macro files.
pub const KEYMAP_MAX: u64 = 1 << 20;
/// Scripts run by `source`.
pub const SCRIPT_MAX: u64 = 16 << 20;
/// One line of a script (`muxcat run`, `source`).
pub const LINE_MAX: usize = 1 << 20;
/// The command history.
pub const HISTORY_MAX: u64 = 4 << 20;

fn too_big(limit: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("larger than {}, the most muxcat reads for it", size(limit)),
    )
}

/// `1 MiB`, `16 MiB`, `512 KiB`.
pub fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

/// The whole file, or an error once it passes `limit` bytes.
pub fn read_capped(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut data = Vec::new();
    file.take(limit + 1).read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(too_big(limit));
    }
    Ok(data)
}

/// [`read_capped`] from async code.
pub async fn read_capped_async(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path).await?;
    let mut data = Vec::new();
    file.take(limit + 1).read_to_end(&mut data).await?;
    if data.len() as u64 > limit {
        return Err(too_big(limit));
    }
    Ok(data)
}

/// Writes `data` to `path` (replacing it), readable by its owner only, its
/// folder made first: the command history, saved sequences.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_file_is_refused_at_the_cap() {
        let err = read_capped(Path::new("/dev/zero"), 4096).unwrap_err();
        assert!(err.to_string().contains("larger than 4 KiB"), "{err}");
    }
}
