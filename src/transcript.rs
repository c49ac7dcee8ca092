//! The transcript format (CONTRACT section 5), written and read: one line
//! per chunk, `TIMESTAMP MARK ESCAPED-BYTES`, after a header line. A leaf
//! module: it uses nothing of the core but the byte escapes; the writer
//! thread that records sessions is `core::recording`.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use lz4_flex::frame::{BlockMode, BlockSize, FrameDecoder, FrameEncoder, FrameInfo};

use crate::core::escape::{
    escape_transcript_into, escape_transcript_to_slice, escaped_room, unescape_transcript,
};

pub const HEADER_PREFIX: &str = "# muxcat transcript v1 ";
/// Version 2: v1 plus the compact form of mostly binary chunks.
pub const HEADER_PREFIX_V2: &str = "# muxcat transcript v2 ";
/// Version 3: v2 plus LZ4-compressed binary chunks.
pub const HEADER_PREFIX_V3: &str = "# muxcat transcript v3 ";

/// Which transcript version a recording writes (`--transcript-format`).
/// Each version reads every line form of the ones before it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Format {
    /// Every chunk escaped (`\xHH`): four bytes a byte for binary data
    V1,
    /// As v1, but a chunk that is mostly not text is written as base64 (`<=`, `>=`)
    V2,
    /// As v2, but a binary chunk of 2 KiB or more that LZ4 shrinks by a
    /// quarter is written as the base64 of an LZ4 frame (`<~`, `>~`)
    #[default]
    V3,
}

impl Format {
    /// Every version, oldest first.
    const ALL: [Format; 3] = [Format::V1, Format::V2, Format::V3];

    /// How this version's header line starts.
    fn prefix(self) -> &'static str {
        match self {
            Format::V1 => HEADER_PREFIX,
            Format::V2 => HEADER_PREFIX_V2,
            Format::V3 => HEADER_PREFIX_V3,
        }
    }

    /// `header` (as [`header`] makes it) for this version.
    pub fn header(self, header: &str) -> String {
        match header.strip_prefix(HEADER_PREFIX) {
            Some(rest) => format!("{}{rest}", self.prefix()),
            None => header.to_string(),
        }
    }

    /// The version a header line names, if this muxcat reads it.
    fn of_header(line: &[u8]) -> Option<Format> {
        Format::ALL
            .into_iter()
            .find(|f| line.starts_with(f.prefix().as_bytes()))
    }

    /// The header line's text after its version word.
    pub fn strip_header(line: &str) -> &str {
        Format::ALL
            .iter()
            .find_map(|f| line.strip_prefix(f.prefix()))
            .unwrap_or(line)
    }
}

/// Whether a chunk goes out compact (base64) in v2: when a third or more
/// of its bytes are not printable ASCII, so escaping would about double
/// it. Text with a few odd bytes (line ends included) stays escaped,
/// readable and greppable; zeros and other binary floods cost 4/3 of a
/// byte a byte instead of up to 4. (One branch-free pass: it vectorizes,
/// so text pays little for the question.)
pub fn compact_pays(data: &[u8]) -> bool {
    // Byte-wide counters over blocks of 255: the loop becomes a few
    // vector instructions per 16 or 32 bytes.
    let mut odd = 0usize;
    for block in data.chunks(255) {
        let mut n = 0u8;
        for &b in block {
            n += u8::from(b.wrapping_sub(0x20) > 0x5e);
        }
        odd += usize::from(n);
    }
    data.len() >= 8 && odd * 3 > data.len()
}

/// v3 tries LZ4 on binary chunks of this many bytes or more: below it a
/// frame's fixed costs (a 16 KiB match table cleared per chunk, 15 bytes
/// of framing) buy little.
pub const LZ4_MIN: usize = 2048;

/// Whether an LZ4 frame of `len` bytes is worth writing for a chunk of
/// `raw` bytes: a quarter smaller, so reading it back costs less than the
/// space it saves.
fn lz4_pays(len: usize, raw: usize) -> bool {
    len * 4 <= raw * 3
}

/// How a chunk's bytes are written on its line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// `<`, `>`, `*`: escaped text.
    Escaped,
    /// `<=`, `>=` (v2): base64 of the chunk.
    Base64,
    /// `<~`, `>~` (v3): base64 of an LZ4 frame of the chunk.
    Lz4,
}

/// The direction mark of a transcript line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// `<` received
    In,
    /// `>` sent
    Out,
    /// `*` event
    Event,
}

/// Base64 with padding: the compact form's alphabet.
const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl Mark {
    fn byte(self) -> u8 {
        match self {
            Mark::In => b'<',
            Mark::Out => b'>',
            Mark::Event => b'*',
        }
    }

    /// The mark a line of this direction and form starts with.
    fn text(self, form: Form) -> &'static str {
        match (self, form) {
            (Mark::Event, _) => "*",
            (Mark::In, Form::Escaped) => "<",
            (Mark::Out, Form::Escaped) => ">",
            (Mark::In, Form::Base64) => "<=",
            (Mark::Out, Form::Base64) => ">=",
            (Mark::In, Form::Lz4) => "<~",
            (Mark::Out, Form::Lz4) => ">~",
        }
    }

    /// `<`, `>` or `*`.
    pub fn symbol(self) -> char {
        char::from(self.byte())
    }
}

/// `2026-11-23T03:44:01.123456Z < hello\r\n` plus the newline.
pub fn format_line(out: &mut Vec<u8>, at: DateTime<Utc>, mark: Mark, data: &[u8]) {
    let (prefix, len) = line_prefix(at, &mark.symbol().to_string());
    out.extend_from_slice(&prefix[..len]);
    escape_transcript_into(data, out);
    out.push(b'\n');
}

/// [`format_line`] as a recording of `format` writes it (v2: mostly
/// binary chunks as base64; v3: those that compress as LZ4 frames).
pub fn format_line_as(format: Format, out: &mut Vec<u8>, at: DateTime<Utc>, mark: Mark, data: &[u8]) {
    let _ = LineWriter::default().write(out, at, mark, data, format);
}

/// `2026-11-23T03:44:01.123456Z < ` (31 bytes; room for years past 9999).
fn line_prefix(at: DateTime<Utc>, mark: &str) -> ([u8; 48], usize) {
    let mut prefix = [0u8; 48];
    let mut cursor = std::io::Cursor::new(&mut prefix[..]);
    let _ = write!(cursor, "{} {mark} ", at.format("%Y-%m-%dT%H:%M:%S%.6fZ"));
    let len = usize::try_from(cursor.position()).unwrap_or(0);
    (prefix, len)
}

/// Input bytes encoded per write: the buffer stays at about 4× this. A
/// multiple of 3, so base64 pieces join into the base64 of the whole.
const PIECE: usize = 3 * 43_690;

/// Writes transcript lines through one buffer kept between lines, so it
/// is zeroed once rather than per line, and long chunks go out in pieces
/// (the line is still one line; the buffer stays bounded).
#[derive(Default)]
pub struct LineWriter {
    buf: Vec<u8>,
    /// v3's LZ4 encoder, kept between chunks (one frame each): a new one
    /// per chunk would allocate its buffers and table every time.
    lz4: Option<FrameEncoder<Vec<u8>>>,
}

impl LineWriter {
    /// One chunk as one line in `format`: escaped; base64 when
    /// [`compact_pays`] (v2 and on); an LZ4 frame in base64 when that also
    /// [`lz4_pays`] (v3).
    pub fn write(
        &mut self,
        out: &mut impl Write,
        at: DateTime<Utc>,
        mark: Mark,
        data: &[u8],
        format: Format,
    ) -> std::io::Result<()> {
        let binary = format >= Format::V2 && mark != Mark::Event && compact_pays(data);
        let form = match binary {
            false => Form::Escaped,
            true if format >= Format::V3 && data.len() >= LZ4_MIN && self.compress(data) => Form::Lz4,
            true => Form::Base64,
        };
        let (prefix, used) = line_prefix(at, mark.text(form));
        // An LZ4 line's body is the frame `compress` left in the encoder.
        let body = match &self.lz4 {
            Some(encoder) if form == Form::Lz4 => encoder.get_ref(),
            _ => data,
        };
        write_body(&mut self.buf, out, &prefix[..used], body, form)
    }

    /// Compresses `data` into one LZ4 frame in the encoder's buffer; true
    /// when it [`lz4_pays`].
    fn compress(&mut self, data: &[u8]) -> bool {
        let encoder = self.lz4.get_or_insert_with(|| {
            let info = FrameInfo::new()
                .block_size(BlockSize::Max64KB)
                .block_mode(BlockMode::Independent);
            FrameEncoder::with_frame_info(info, Vec::new())
        });
        encoder.get_mut().clear();
        let made = encoder
            .write_all(data)
            .and_then(|()| encoder.try_finish().map_err(std::io::Error::other));
        if made.is_err() {
            // Into a Vec this does not fail; if it ever did, a frame left
            // open must not run into the next chunk's: start afresh.
            self.lz4 = None;
            return false;
        }
        lz4_pays(encoder.get_ref().len(), data.len())
    }
}

/// `prefix`, `body` (escaped, or in base64 for the other forms) and the
/// newline, through `buf` a piece at a time.
fn write_body(
    buf: &mut Vec<u8>,
    out: &mut impl Write,
    prefix: &[u8],
    body: &[u8],
    form: Form,
) -> std::io::Result<()> {
    let mut used = prefix.len();
    let room = used + escaped_room(body.len().min(PIECE)) + 1;
    if buf.len() < room {
        buf.resize(room, 0);
    }
    buf[..used].copy_from_slice(prefix);
    let mut pieces = body.chunks(PIECE).peekable();
    while let Some(piece) = pieces.next() {
        used += if form == Form::Escaped {
            escape_transcript_to_slice(piece, &mut buf[used..])
        } else {
            // SIMD base64 (AVX2/SSSE3 picked at run time): the scalar
            // engine was a quarter of a binary recording's CPU time.
            // The buffer holds 4x a piece, more than its base64.
            base64_simd::STANDARD
                .encode(piece, base64_simd::Out::from_slice(&mut buf[used..]))
                .len()
        };
        if pieces.peek().is_some() {
            out.write_all(&buf[..used])?;
            used = 0;
        }
    }
    buf[used] = b'\n';
    out.write_all(&buf[..=used])
}

/// The transcript header line (without the newline).
pub fn header(session: &str, kind: &str, from: &str, to: &str, mode: &str) -> String {
    format!("{HEADER_PREFIX}{session} {kind} {from} -> {to} mode={mode}")
}

/// `DIR/<YYYYMMDD-HHMMSS>-<sessionId>.log`.
pub fn file_in(dir: &Path, session: &str) -> PathBuf {
    dir.join(format!("{}-{session}.log", Utc::now().format("%Y%m%d-%H%M%S")))
}

/// One decoded line of a transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub at: String,
    pub mark: Mark,
    pub data: Vec<u8>,
}

/// A transcript read back: the lines before any bad one, and the error
/// naming the bad line (a file cut by a crash still yields what it holds).
#[derive(Debug)]
pub struct Parsed {
    pub header: String,
    pub entries: Vec<Entry>,
    pub error: Option<String>,
}

impl Parsed {
    /// The decoded received (`In`) or sent (`Out`) byte stream.
    pub fn stream(&self, mark: Mark) -> Vec<u8> {
        let mut out = Vec::new();
        for e in self.entries.iter().filter(|e| e.mark == mark) {
            out.extend_from_slice(&e.data);
        }
        out
    }
}

/// Reads a whole transcript; any bad line is an error naming it.
pub fn parse(text: &[u8], name: &str) -> Result<Parsed, String> {
    let parsed = parse_lenient(text, name)?;
    match parsed.error {
        Some(e) => Err(e),
        None => Ok(parsed),
    }
}

/// Reads a transcript up to its first bad line. Only a missing header is
/// an error outright.
pub fn parse_lenient(text: &[u8], name: &str) -> Result<Parsed, String> {
    let mut reader = Reader::new(text, name)?;
    let mut entries = Vec::new();
    let mut error = None;
    for entry in &mut reader {
        match entry {
            Ok(e) => entries.push(e),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    Ok(Parsed {
        header: reader.header,
        entries,
        error,
    })
}

/// The longest transcript line read back: a chunk is written as one line,
/// and a chunk (a read, a line of at most 1 MiB) escapes to at most four
/// bytes a byte.
pub const LINE_MAX: usize = 64 * 1024 * 1024;

/// The most one LZ4 line (v3) may expand to when read back: a chunk is a
/// read or a line of at most 1 MiB, and this keeps a crafted line (LZ4
/// expands up to 255 times) from taking memory without bound.
pub const CHUNK_MAX: usize = 64 * 1024 * 1024;

/// Reads a transcript a line at a time, so a file of any size is read in
/// bounded memory (`replay` of a long capture).
pub struct Reader<R> {
    input: R,
    name: String,
    pub header: String,
    /// Which line forms it may hold.
    pub version: Format,
    line: usize,
    failed: bool,
    buf: Vec<u8>,
}

impl<R: std::io::BufRead> Reader<R> {
    /// Reads the header; a file that does not start with one is an error.
    pub fn new(mut input: R, name: &str) -> Result<Reader<R>, String> {
        let mut first = Vec::new();
        read_line(&mut input, &mut first).map_err(|e| format!("{name}: {e}"))?;
        let Some(version) = Format::of_header(&first) else {
            if first.starts_with(b"# muxcat transcript v") {
                let word = String::from_utf8_lossy(first.split(|&b| b == b' ').nth(3).unwrap_or_default())
                    .into_owned();
                return Err(format!(
                    "{name}: transcript version {:?} is newer than this muxcat reads (v1, v2, v3)",
                    crate::core::escape::escape_display(word.trim_end().as_bytes())
                ));
            }
            return Err(format!(
                "{name}: line 1 is not a muxcat transcript header (expected {:?})",
                HEADER_PREFIX.trim_end()
            ));
        };
        if !first.ends_with(b"\n") {
            return Err(format!("{name}: line 1 is truncated (no end of line)"));
        }
        let header = String::from_utf8_lossy(&first[..first.len() - 1]).into_owned();
        Ok(Reader {
            input,
            name: name.to_string(),
            header,
            version,
            line: 1,
            failed: false,
            buf: Vec::new(),
        })
    }
}

/// One line, at most [`LINE_MAX`] bytes.
fn read_line(input: &mut impl std::io::BufRead, buf: &mut Vec<u8>) -> Result<usize, String> {
    use std::io::{BufRead, Read};
    buf.clear();
    let n = (&mut *input)
        .take(LINE_MAX as u64 + 1)
        .read_until(b'\n', buf)
        .map_err(|e| e.to_string())?;
    if n > LINE_MAX {
        return Err(format!("a line is longer than {} MiB", LINE_MAX >> 20));
    }
    Ok(n)
}

impl<R: std::io::BufRead> Iterator for Reader<R> {
    type Item = Result<Entry, String>;

    /// The next entry; after an error (named with its line), nothing.
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        self.line += 1;
        let result = match read_line(&mut self.input, &mut self.buf) {
            Ok(0) => return None,
            Ok(_) => parse_entry(&self.buf, self.line, &self.name, self.version),
            Err(e) => Err(format!("{}: line {}: {e}", self.name, self.line)),
        };
        self.failed = result.is_err();
        Some(result)
    }
}

fn parse_entry(raw: &[u8], n: usize, name: &str, version: Format) -> Result<Entry, String> {
    let Some(body) = raw.strip_suffix(b"\n") else {
        return Err(format!("{name}: line {n} is truncated (no end of line)"));
    };
    let bad = |why: &str| format!("{name}: line {n} is not a transcript line: {why}");
    let mut parts = body.splitn(3, |&b| b == b' ');
    let at = parts.next().unwrap_or_default();
    let mark = parts.next().unwrap_or_default();
    let rest = parts.next().ok_or_else(|| bad("expected TIMESTAMP MARK BYTES"))?;
    if at.len() != "2026-11-23T03:44:01.123456Z".len() || !at.ends_with(b"Z") {
        return Err(bad("the timestamp is malformed"));
    }
    let (mark, form) = match mark {
        b"<" => (Mark::In, Form::Escaped),
        b">" => (Mark::Out, Form::Escaped),
        b"*" => (Mark::Event, Form::Escaped),
        b"<=" if version >= Format::V2 => (Mark::In, Form::Base64),
        b">=" if version >= Format::V2 => (Mark::Out, Form::Base64),
        b"<~" if version >= Format::V3 => (Mark::In, Form::Lz4),
        b">~" if version >= Format::V3 => (Mark::Out, Form::Lz4),
        _ => {
            return Err(bad(match version {
                Format::V1 => "the mark is not <, > or *",
                Format::V2 => "the mark is not <, >, *, <= or >=",
                Format::V3 => "the mark is not <, >, *, <=, >=, <~ or >~",
            }));
        }
    };
    let base64 = |text: &[u8]| {
        use base64::Engine;
        BASE64.decode(text).map_err(|e| bad(&format!("bad base64: {e}")))
    };
    let data = match form {
        Form::Escaped => unescape_transcript(rest).map_err(|e| bad(&e))?,
        Form::Base64 => base64(rest)?,
        Form::Lz4 => lz4_chunk(&base64(rest)?).map_err(|e| bad(&e))?,
    };
    Ok(Entry {
        at: String::from_utf8_lossy(at).into_owned(),
        mark,
        data,
    })
}

/// The chunk an LZ4 line's frame holds, at most [`CHUNK_MAX`] bytes.
fn lz4_chunk(frame: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut data = Vec::new();
    FrameDecoder::new(frame)
        .take(CHUNK_MAX as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("bad LZ4 frame: {e}"))?;
    if data.len() > CHUNK_MAX {
        return Err(format!("its LZ4 frame holds more than {} MiB", CHUNK_MAX >> 20));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `chunks` as a recording of `format` writes them, header first; the
    /// writer, to go on with.
    fn recorded(format: Format, chunks: &[(Mark, Vec<u8>)]) -> (Vec<u8>, LineWriter) {
        let mut file = format!("{}\n", format.header(&header("s", "tcp", "a", "b", "binary"))).into_bytes();
        let mut writer = LineWriter::default();
        for (mark, data) in chunks {
            writer.write(&mut file, Utc::now(), *mark, data, format).unwrap();
        }
        (file, writer)
    }

    #[test]
    fn lines_round_trip() {
        let at = Utc::now();
        let mut text = b"# muxcat transcript v1 sess-x tcp a -> b mode=line\n".to_vec();
        let chunks: Vec<(Mark, Vec<u8>)> = vec![
            (Mark::In, b"hello\r\n".to_vec()),
            (Mark::Out, (0..=255u8).collect()),
            (Mark::In, Vec::new()),
            (Mark::Event, b"disconnected remote".to_vec()),
        ];
        for (mark, data) in &chunks {
            format_line(&mut text, at, *mark, data);
        }
        let parsed = parse(&text, "t").unwrap();
        let got: Vec<(Mark, Vec<u8>)> = parsed.entries.into_iter().map(|e| (e.mark, e.data)).collect();
        assert_eq!(got, chunks);
        assert!(String::from_utf8(text).unwrap().contains(" < hello\\r\\n\n"));
    }

    #[test]
    fn a_chunk_longer_than_a_piece_is_still_one_line() {
        let data: Vec<u8> = (0..PIECE * 2 + 1234).map(|i| (i * 7 % 251) as u8).collect();
        let mut file = Vec::new();
        let mut writer = LineWriter::default();
        writer
            .write(&mut file, Utc::now(), Mark::In, b"first\n", Format::V1)
            .unwrap();
        writer
            .write(&mut file, Utc::now(), Mark::Out, &data, Format::V1)
            .unwrap();
        writer
            .write(&mut file, Utc::now(), Mark::In, b"", Format::V1)
            .unwrap();
        assert_eq!(file.iter().filter(|&&b| b == b'\n').count(), 3);
        let mut want = Vec::new();
        format_line(&mut want, Utc::now(), Mark::Out, &data);
        let line = file.split(|&b| b == b'\n').nth(1).unwrap();
        // The same line as the one-shot formatter, timestamps aside.
        assert_eq!(line[27..], want[27..want.len() - 1]);
        let text = [
            format!("{HEADER_PREFIX}s tcp a -> b mode=binary\n").into_bytes(),
            file,
        ]
        .concat();
        let parsed = parse(&text, "t").unwrap();
        assert_eq!(parsed.stream(Mark::Out), data);
        assert_eq!(parsed.stream(Mark::In), b"first\n");
    }

    /// v2: text chunks as in v1, mostly binary ones as base64 (`<=`,
    /// `>=`), long ones in pieces that still join; all read back exactly.
    #[test]
    fn version_2_writes_binary_compactly_and_reads_back() {
        let zeros = vec![0u8; PIECE * 2 + 1001];
        let text = b"temperature=42 humidity=40\r\n".to_vec();
        let mostly_text = b"OK \x01 done\n".to_vec();
        let random: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let chunks: Vec<(Mark, Vec<u8>)> = vec![
            (Mark::In, text.clone()),
            (Mark::Out, zeros.clone()),
            (Mark::In, mostly_text.clone()),
            (Mark::In, random.clone()),
            (Mark::Event, b"disconnected remote".to_vec()),
            (Mark::Out, vec![0, 0, 0]),
        ];
        let (file, _) = recorded(Format::V2, &chunks);
        let written = String::from_utf8(file.clone()).unwrap();
        let lines: Vec<&str> = written.lines().collect();
        assert!(
            lines[0].starts_with("# muxcat transcript v2 s tcp a -> b"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with(" < temperature=42 humidity=40\\r\\n"),
            "{}",
            lines[1]
        );
        assert!(lines[2][27..].starts_with(" >= AAAA"), "{}", &lines[2][..40]);
        // Four bytes of zeros are about 5.3 characters of base64, not 16.
        assert!(lines[2].len() < zeros.len() * 4 / 3 + 40);
        assert!(lines[3].ends_with(" < OK \\x01 done\\n"), "{}", lines[3]);
        assert!(lines[4][27..].starts_with(" <= "), "{}", lines[4]);
        // Short chunks stay escaped: nothing to gain.
        assert!(lines[6].ends_with(" > \\x00\\x00\\x00"), "{}", lines[6]);
        let parsed = parse(&file, "t").unwrap();
        let got: Vec<(Mark, Vec<u8>)> = parsed.entries.into_iter().map(|e| (e.mark, e.data)).collect();
        assert_eq!(got, chunks);
        // A v1 file may not hold compact lines; a v2 one may not hold bad base64.
        let v1 = written.replacen("transcript v2", "transcript v1", 1);
        assert!(parse(v1.as_bytes(), "old").unwrap_err().contains("line 3"));
        let mut bad = format!("{HEADER_PREFIX_V2}s tcp a -> b mode=line\n").into_bytes();
        bad.extend_from_slice(b"2026-11-23T03:44:01.123456Z <= AA*A\n");
        let e = parse(&bad, "f").unwrap_err();
        assert!(e.contains("line 2") && e.contains("bad base64"), "{e}");
        // A version from the future is named.
        let future = b"# muxcat transcript v4 s tcp a -> b\n";
        assert!(parse(future, "f").unwrap_err().contains("version \"v4\""));
        // v1 writing: every chunk escaped, v1 header.
        assert_eq!(
            Format::V1.header(&header("s", "tcp", "a", "b", "line")),
            header("s", "tcp", "a", "b", "line")
        );
    }

    /// v3: binary chunks that compress as LZ4 frames in base64 (`<~`,
    /// `>~`), the rest as in v2; the frames are standard ones and read
    /// back exactly; v2 files may not hold them; a frame that expands past
    /// [`CHUNK_MAX`] is refused, not allocated.
    #[test]
    fn version_3_compresses_repetitive_binary_and_reads_back() {
        let zeros = vec![0u8; PIECE * 3 + 17];
        let frames: Vec<u8> = (0..4096u32)
            .flat_map(|i| [1, 3, 0, 0, 0, 10, (i % 7) as u8, 0xc5])
            .collect();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let random: Vec<u8> = (0..8192)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let chunks: Vec<(Mark, Vec<u8>)> = vec![
            (Mark::In, b"OK\r\n".to_vec()),
            (Mark::Out, zeros.clone()),
            (Mark::In, frames.clone()),
            (Mark::In, random.clone()),
            (Mark::Out, vec![0; LZ4_MIN - 1]),
            (Mark::Event, b"disconnected remote".to_vec()),
        ];
        let (file, mut writer) = recorded(Format::V3, &chunks);
        let written = String::from_utf8(file.clone()).unwrap();
        let lines: Vec<&str> = written.lines().collect();
        assert!(
            lines[0].starts_with("# muxcat transcript v3 s tcp a -> b"),
            "{}",
            lines[0]
        );
        assert!(lines[1].ends_with(" < OK\\r\\n"), "{}", lines[1]);
        assert!(lines[2][27..].starts_with(" >~ "), "{}", &lines[2][..40]);
        // 384 KiB of zeros take under 1% of that.
        assert!(lines[2].len() < zeros.len() / 100, "{}", lines[2].len());
        assert!(lines[3][27..].starts_with(" <~ "), "{}", &lines[3][..40]);
        // What LZ4 cannot shrink, and short chunks, stay as in v2.
        assert!(lines[4][27..].starts_with(" <= "), "{}", &lines[4][..40]);
        assert!(lines[5][27..].starts_with(" >= "), "{}", &lines[5][..40]);
        // The frame is a standard LZ4 frame: `base64 -d | lz4 -d` reads it.
        use base64::Engine;
        let frame = BASE64.decode(&lines[3][31..]).unwrap();
        assert_eq!(&frame[..4], &[0x04, 0x22, 0x4d, 0x18]);
        let parsed = parse(&file, "t").unwrap();
        let got: Vec<(Mark, Vec<u8>)> = parsed.entries.into_iter().map(|e| (e.mark, e.data)).collect();
        assert_eq!(got, chunks);
        // The encoder is reused: the same chunk again makes the same frame.
        let mut again = Vec::new();
        writer
            .write(&mut again, Utc::now(), Mark::In, &frames, Format::V3)
            .unwrap();
        assert_eq!(
            String::from_utf8(again).unwrap()[27..],
            lines[3][27..].to_string() + "\n"
        );
        // A v2 file may not hold LZ4 lines.
        let v2 = written.replacen("transcript v3", "transcript v2", 1);
        let e = parse(v2.as_bytes(), "old").unwrap_err();
        assert!(e.contains("line 3") && e.contains("<= or >="), "{e}");
        // A frame that is not LZ4, and one that expands past the bound.
        let mut bad = format!("{HEADER_PREFIX_V3}s tcp a -> b mode=line\n").into_bytes();
        bad.extend_from_slice(b"2026-11-23T03:44:01.123456Z <~ AAAA\n");
        let e = parse(&bad, "f").unwrap_err();
        assert!(e.contains("line 2") && e.contains("LZ4"), "{e}");
        let mut bomb =
            FrameEncoder::with_frame_info(FrameInfo::new().block_size(BlockSize::Max4MB), Vec::new());
        let mut held = 0;
        while held <= CHUNK_MAX {
            bomb.write_all(&[0; 1 << 20]).unwrap();
            held += 1 << 20;
        }
        let bomb = bomb.finish().unwrap();
        let mut file = format!("{HEADER_PREFIX_V3}s tcp a -> b mode=line\n").into_bytes();
        file.extend_from_slice(b"2026-11-23T03:44:01.123456Z <~ ");
        file.extend_from_slice(BASE64.encode(&bomb).as_bytes());
        file.push(b'\n');
        let e = parse(&file, "f").unwrap_err();
        assert!(e.contains("line 2") && e.contains("more than 64 MiB"), "{e}");
    }

    #[test]
    fn compact_only_when_it_pays() {
        assert!(!compact_pays(b"plain text\r\n"));
        assert!(!compact_pays(b"\x00\x01"));
        assert!(!compact_pays(b"text with one \x00 byte in it"));
        assert!(compact_pays(&[0u8; 64]));
        assert!(compact_pays(b"\x00\x01\x02\x03AB\x04\x05\x06\x07"));
    }

    #[test]
    fn bad_files_name_the_line() {
        let err = parse(b"hello\n", "f.log").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        let mut text = b"# muxcat transcript v1 s tcp a -> b mode=line\n".to_vec();
        format_line(&mut text, Utc::now(), Mark::In, b"ok");
        text.extend_from_slice(b"2026-11-23T03:44:01.123456Z < cut");
        let err = parse(&text, "f.log").unwrap_err();
        assert!(err.contains("line 3") && err.contains("truncated"), "{err}");
        let mut text = b"# muxcat transcript v1 s tcp a -> b mode=line\n".to_vec();
        text.extend_from_slice(b"2026-11-23T03:44:01.123456Z ? x\n");
        assert!(parse(&text, "f").unwrap_err().contains("line 2"));
        let mut text = b"# muxcat transcript v1 s tcp a -> b mode=line\n".to_vec();
        text.extend_from_slice(b"2026-11-23T03:44:01.123456Z < bad\\q\n");
        assert!(parse(&text, "f").unwrap_err().contains("line 2"));
    }
}
