use crate::{
    CountryCode, Event, EventError, EventSource, Kind, LineFailure, Media, MediaPath, Origin, Product, Record, Role,
    Turn,
};
use chrono::{DateTime, Utc};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// The longest manifest line accepted; a longer one is a failure of that line, skipped without
/// being held in memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// The most bytes of words an event may carry: its `text`, or all of its `turns` together.
pub const MAX_TEXT_BYTES: usize = 256 * 1024;
/// The most turns a chat may have. Every turn is checked for special categories, so a longer
/// chat is refused (a failure of that line) rather than cut.
pub const MAX_TURNS: usize = 512;
const MAX_ID_BYTES: usize = 256;

/// A JSON Lines manifest, read one line at a time.
pub struct ManifestSource {
    reader: Box<dyn BufRead + Send>,
    root: PathBuf,
    line_no: u64,
    buf: Vec<u8>,
}

/// The first bytes of a gzip stream and of a Zstandard frame.
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// The UTF-8 byte order mark some tools put before the first line.
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// The manifest's lines as bytes: `-` is standard input; a gzip or Zstandard file (told by its
/// first bytes, not its name) is decompressed as it is read, so a compressed manifest never
/// sits in memory whole.
pub fn open_manifest_reader(path: &Path) -> Result<Box<dyn BufRead + Send>, EventError> {
    let err = |source| EventError::OpenManifest { path: path.display().to_string(), source };
    let raw: Box<dyn Read + Send> =
        if path == Path::new("-") { Box::new(std::io::stdin()) } else { Box::new(File::open(path).map_err(err)?) };
    let mut reader = BufReader::with_capacity(1 << 16, raw);
    let head = reader.fill_buf().map_err(err)?;
    let reader: Box<dyn BufRead + Send> = if head.starts_with(GZIP_MAGIC) {
        Box::new(BufReader::with_capacity(1 << 16, flate2::bufread::MultiGzDecoder::new(reader)))
    } else if head.starts_with(ZSTD_MAGIC) {
        let decoder = ruzstd::decoding::StreamingDecoder::new(reader).map_err(|e| {
            err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not a valid Zstandard stream: {e}")))
        })?;
        Box::new(BufReader::with_capacity(1 << 16, decoder))
    } else {
        Box::new(reader)
    };
    Ok(reader)
}

/// How many records a manifest file holds (its lines that are not blank), for a progress bar's
/// total: one pass over the bytes (~1 GB/s). `None` for standard input and for compressed
/// files, which would have to be decompressed twice to tell.
pub fn count_records(path: &Path) -> Option<u64> {
    if path == Path::new("-") {
        return None;
    }
    let mut reader = BufReader::with_capacity(1 << 16, File::open(path).ok()?);
    let head = reader.fill_buf().ok()?;
    if head.starts_with(GZIP_MAGIC) || head.starts_with(ZSTD_MAGIC) {
        return None;
    }
    let (mut records, mut blank) = (0u64, true);
    loop {
        let chunk = reader.fill_buf().ok()?;
        if chunk.is_empty() {
            break;
        }
        for &b in chunk {
            if b == b'\n' {
                records += u64::from(!blank);
                blank = true;
            } else if !b.is_ascii_whitespace() {
                blank = false;
            }
        }
        let n = chunk.len();
        reader.consume(n);
    }
    Some(records + u64::from(!blank))
}

impl ManifestSource {
    /// Open a manifest (a file, gzip- or Zstandard-compressed or not, or `-` for standard
    /// input); media paths in it are confined to its folder (the working directory for `-`).
    pub fn open(path: &Path) -> Result<ManifestSource, EventError> {
        let err = |source| EventError::OpenManifest { path: path.display().to_string(), source };
        let root = if path == Path::new("-") {
            std::env::current_dir().map_err(err)?
        } else {
            path.canonicalize().map_err(err)?.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"))
        };
        Ok(ManifestSource::from_reader(open_manifest_reader(path)?, root))
    }

    /// A manifest from any reader; `root` is the folder media paths are confined to.
    pub fn from_reader(reader: impl BufRead + Send + 'static, root: PathBuf) -> ManifestSource {
        ManifestSource { reader: Box::new(reader), root, line_no: 0, buf: Vec::new() }
    }

    /// Read one line into `buf`, never holding more than `MAX_LINE_BYTES + 1` bytes of it.
    /// Returns `None` at the end, `Some(false)` when the line was too long (and was skipped).
    fn read_line(&mut self) -> Result<Option<bool>, EventError> {
        self.buf.clear();
        let n = (&mut self.reader).take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        if self.buf.last() == Some(&b'\n') || self.buf.len() <= MAX_LINE_BYTES {
            return Ok(Some(true));
        }
        // Too long: discard the rest of the line in bounded pieces.
        loop {
            let available = self.reader.fill_buf()?;
            if available.is_empty() {
                break;
            }
            match available.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.reader.consume(i + 1);
                    break;
                }
                None => {
                    let len = available.len();
                    self.reader.consume(len);
                }
            }
        }
        self.buf.clear();
        Ok(Some(false))
    }
}

impl EventSource for ManifestSource {
    fn next_record(&mut self) -> Result<Option<Record>, EventError> {
        loop {
            let Some(fits) = self.read_line()? else { return Ok(None) };
            self.line_no += 1;
            let origin = Origin { line: self.line_no };
            if !fits {
                let error = EventError::LineTooLong { limit: MAX_LINE_BYTES };
                return Ok(Some(Err(LineFailure { origin, event_id: None, error })));
            }
            // A byte order mark before the first line is not part of it.
            let bytes = match self.buf.strip_prefix(UTF8_BOM) {
                Some(rest) if self.line_no == 1 => rest,
                _ => &self.buf[..],
            };
            let line = match std::str::from_utf8(bytes) {
                Ok(s) => s.trim(),
                Err(_) => return Ok(Some(Err(LineFailure { origin, event_id: None, error: EventError::NotUtf8 }))),
            };
            if line.is_empty() {
                continue; // blank lines separate nothing and cost nothing
            }
            return Ok(Some(
                parse_line(line, &self.root).map(|e| (origin.clone(), e)).map_err(|(event_id, error)| LineFailure {
                    origin,
                    event_id,
                    error,
                }),
            ));
        }
    }
}

/// The keys a line may carry; unknown keys are ignored.
#[derive(serde::Deserialize)]
struct RawEvent {
    event_id: Option<serde_json::Value>,
    user_id: Option<serde_json::Value>,
    country: Option<serde_json::Value>,
    product: Option<String>,
    captured_at: Option<String>,
    kind: Option<String>,
    text: Option<serde_json::Value>,
    turns: Option<serde_json::Value>,
    media: Option<String>,
}

fn parse_line(line: &str, root: &Path) -> Result<Event, (Option<String>, EventError)> {
    let raw: RawEvent = serde_json::from_str(line).map_err(|e| (None, EventError::Json(e.to_string())))?;
    let event_id = id_value(raw.event_id, "event_id").map_err(|e| (None, e))?;
    let with_id = |e: EventError| (Some(event_id.clone()), e);
    let user_id = id_value(raw.user_id, "user_id").map_err(with_id)?;
    let country = match raw.country {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => None,
        Some(serde_json::Value::String(s)) => Some(CountryCode::new(&s)),
        Some(_) => return Err(with_id(bad("country", "must be a string"))),
    };
    let product = raw.product.ok_or(EventError::MissingKey("product")).map_err(with_id)?;
    let product = Product::parse(&product)
        .ok_or_else(|| bad("product", "must be glasses, vibes, imagine or assistant"))
        .map_err(with_id)?;
    let captured_at = raw.captured_at.ok_or(EventError::MissingKey("captured_at")).map_err(with_id)?;
    let captured_at = DateTime::parse_from_rfc3339(&captured_at)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| bad("captured_at", &format!("not RFC 3339 ({e})")))
        .map_err(with_id)?;
    let kind = raw.kind.ok_or(EventError::MissingKey("kind")).map_err(with_id)?;
    let kind = Kind::parse(&kind).ok_or_else(|| bad("kind", "must be text, audio, image or video")).map_err(with_id)?;
    let turns = words(raw.text, raw.turns).map_err(with_id)?;
    let media = match (kind, raw.media) {
        (Kind::Text, Some(_)) => {
            return Err(with_id(bad("media", "a text event has no `media` (give the media's kind instead)")))
        }
        (Kind::Text, None) if turns.is_empty() => return Err(with_id(EventError::MissingKey("text"))),
        (Kind::Text, None) => None,
        (kind, Some(media)) => Some(Media { kind, path: MediaPath::new(root, &media).map_err(with_id)? }),
        (_, None) => return Err(with_id(EventError::MissingKey("media"))),
    };
    Ok(Event { event_id, user_id, country, product, captured_at, turns, media })
}

/// The event's words: `text` (one user turn: a message, a prompt, a caption, a question) or
/// `turns` (a chat), never both; empty when neither is given.
fn words(text: Option<serde_json::Value>, turns: Option<serde_json::Value>) -> Result<Vec<Turn>, EventError> {
    use serde_json::Value;
    let turns = match (text, turns) {
        (Some(t), Some(u)) if !t.is_null() && !u.is_null() => {
            return Err(bad("turns", "give `text` or `turns`, not both"))
        }
        (Some(Value::String(text)), _) => vec![Turn::user(text)],
        (Some(Value::Null) | None, Some(Value::Array(items))) => {
            if items.len() > MAX_TURNS {
                return Err(bad("turns", &format!("{} turns; at most {MAX_TURNS} are accepted", items.len())));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(n, item)| {
                    let Value::Object(mut turn) = item else {
                        return Err(bad("turns", &format!("turn {n} is not an object with `role` and `text`")));
                    };
                    let role = match turn.remove("role") {
                        Some(Value::String(r)) => Role::parse(&r).ok_or_else(|| {
                            let shown: String = r.chars().take(32).collect();
                            bad("turns", &format!("turn {n} has role {shown:?}; it must be user or assistant"))
                        })?,
                        _ => return Err(bad("turns", &format!("turn {n} has no `role` string"))),
                    };
                    match turn.remove("text") {
                        Some(Value::String(text)) => Ok(Turn { role, text }),
                        _ => Err(bad("turns", &format!("turn {n} has no `text` string"))),
                    }
                })
                .collect::<Result<Vec<Turn>, EventError>>()?
        }
        (Some(Value::Null) | None, Some(Value::Null) | None) => Vec::new(),
        (Some(_), _) => return Err(bad("text", "must be a string")),
        (_, Some(_)) => return Err(bad("turns", "must be an array of {\"role\", \"text\"} objects")),
    };
    let bytes: usize = turns.iter().map(|t| t.text.len()).sum();
    if bytes > MAX_TEXT_BYTES {
        let key = if turns.len() == 1 { "text" } else { "turns" };
        return Err(bad(key, &format!("{bytes} bytes of words; at most {MAX_TEXT_BYTES} are accepted")));
    }
    if !turns.is_empty() && turns.iter().all(|t| t.text.trim().is_empty()) {
        let key = if turns.len() == 1 { "text" } else { "turns" };
        return Err(bad(key, "has no words"));
    }
    Ok(turns)
}

fn bad(key: &'static str, message: &str) -> EventError {
    EventError::BadValue { key, message: message.to_string() }
}

/// Ids are non-empty strings (numbers are accepted and kept as their decimal text).
fn id_value(v: Option<serde_json::Value>, key: &'static str) -> Result<String, EventError> {
    let s = match v {
        None | Some(serde_json::Value::Null) => return Err(EventError::MissingKey(key)),
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(_) => return Err(bad(key, "must be a string")),
    };
    if s.trim().is_empty() {
        return Err(bad(key, "is empty"));
    }
    if s.len() > MAX_ID_BYTES {
        return Err(bad(key, &format!("longer than {MAX_ID_BYTES} bytes")));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn records_are_counted_without_blank_lines_and_not_for_compressed_files() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("m.jsonl");
        std::fs::write(&plain, "{\"a\":1}\n\n   \n{\"a\":2}\r\n{\"a\":3}").unwrap();
        assert_eq!(count_records(&plain), Some(3));
        std::fs::write(&plain, "").unwrap();
        assert_eq!(count_records(&plain), Some(0));
        let gz = dir.path().join("m.jsonl.gz");
        std::fs::write(&gz, [0x1f, 0x8b, 0, 0]).unwrap();
        assert_eq!(count_records(&gz), None);
        assert_eq!(count_records(std::path::Path::new("-")), None);
        assert_eq!(count_records(&dir.path().join("missing.jsonl")), None);
    }

    fn records(input: &[u8]) -> Vec<Record> {
        let mut src = ManifestSource::from_reader(Cursor::new(input.to_vec()), PathBuf::from("/data"));
        std::iter::from_fn(|| src.next_record().unwrap()).collect()
    }

    const GOOD: &str = r#"{"event_id":"e1","user_id":"u1","country":"us","product":"assistant","captured_at":"2026-01-02T03:04:05Z","kind":"text","text":"hello","extra":{"ignored":true}}"#;

    #[test]
    fn a_byte_order_mark_on_the_first_line_only_is_not_part_of_it() {
        let input = [b"\xef\xbb\xbf".as_slice(), GOOD.as_bytes(), b"\n\xef\xbb\xbf", GOOD.as_bytes()].concat();
        let r = records(&input);
        assert!(r[0].is_ok(), "line 1 with a BOM parses");
        assert!(r[1].is_err(), "a BOM inside the file is still a broken line");
    }

    #[test]
    fn gzip_and_zstandard_manifests_are_read_as_streams() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let plain = [GOOD, "{broken", GOOD].join("\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(plain.as_bytes()).unwrap();
        let zst = ruzstd::encoding::compress_to_vec(plain.as_bytes(), ruzstd::encoding::CompressionLevel::Fastest);
        // Told by their first bytes, whatever the names say.
        for (name, bytes) in
            [("m.jsonl.gz", gz.finish().unwrap()), ("m.jsonl", zst), ("plain.jsonl", plain.clone().into_bytes())]
        {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let mut src = ManifestSource::open(&path).unwrap();
            let r: Vec<Record> = std::iter::from_fn(|| src.next_record().unwrap()).collect();
            assert_eq!(r.len(), 3, "{name}");
            assert!(r[0].is_ok() && r[1].is_err() && r[2].is_ok(), "{name}");
        }
        // A file that starts like Zstandard but is not: an error opening it, not a panic.
        let bad = dir.path().join("bad.zst");
        std::fs::write(&bad, [0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff]).unwrap();
        assert!(
            ManifestSource::open(&bad).is_err() || {
                let mut src = ManifestSource::open(&bad).unwrap();
                src.next_record().is_err()
            }
        );
    }

    #[test]
    fn parses_a_good_line_and_ignores_unknown_keys() {
        let r = records(GOOD.as_bytes());
        let (origin, e) = r.into_iter().next().unwrap().unwrap();
        assert_eq!(origin.line, 1);
        assert_eq!(e.event_id, "e1");
        assert_eq!(e.country.as_ref().unwrap().as_str(), "US");
        assert_eq!(e.product, Product::Assistant);
        assert_eq!(e.turns, [Turn::user("hello")]);
        assert_eq!(e.media, None);
        assert_eq!(e.kind(), Kind::Text);
    }

    #[test]
    fn bad_lines_fail_alone_and_the_stream_goes_on() {
        let mut input = Vec::new();
        input.extend_from_slice(b"{not json\n");
        input.extend_from_slice(b"\n");
        input.extend_from_slice(&[0xff, 0xfe, b'\n']);
        input.extend_from_slice(br#"{"event_id":"e2","user_id":"u","product":"tv","captured_at":"2026-01-01T00:00:00Z","kind":"text","text":"x"}"#);
        input.push(b'\n');
        input.extend_from_slice(br#"{"event_id":"e3","user_id":"u","product":"glasses","captured_at":"2026-01-01T00:00:00Z","kind":"image","media":"../x.jpg"}"#);
        input.push(b'\n');
        input.extend_from_slice(br#"{"event_id":"e4","user_id":"u","product":"glasses","captured_at":"yesterday","kind":"text","text":"x"}"#);
        input.push(b'\n');
        input.extend_from_slice(GOOD.as_bytes());
        let r = records(&input);
        assert_eq!(r.len(), 6);
        let fails: Vec<_> = r.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(fails.len(), 5);
        assert_eq!(fails[0].report_id(), "line:1");
        assert!(matches!(fails[1].error, EventError::NotUtf8));
        assert_eq!(fails[1].origin.line, 3);
        assert_eq!(fails[2].report_id(), "e2");
        assert!(matches!(fails[3].error, EventError::PathRefused { .. }));
        assert!(matches!(fails[4].error, EventError::BadValue { key: "captured_at", .. }));
        assert!(r[5].is_ok());
    }

    #[test]
    fn overlong_line_is_skipped_in_bounded_memory() {
        let mut input = vec![b'a'; MAX_LINE_BYTES * 3];
        input.push(b'\n');
        input.extend_from_slice(GOOD.as_bytes());
        let r = records(&input);
        assert_eq!(r.len(), 2);
        assert!(matches!(r[0].as_ref().unwrap_err().error, EventError::LineTooLong { .. }));
        assert_eq!(r[1].as_ref().unwrap().0.line, 2);
    }

    #[test]
    fn text_and_media_must_match_kind() {
        let text_with_media = r#"{"event_id":"e","user_id":"u","product":"glasses","captured_at":"2026-01-01T00:00:00Z","kind":"text","text":"x","media":"a.wav"}"#;
        let none = r#"{"event_id":"e","user_id":"u","product":"assistant","captured_at":"2026-01-01T00:00:00Z","kind":"text"}"#;
        let abs = r#"{"event_id":"e","user_id":"u","product":"glasses","captured_at":"2026-01-01T00:00:00Z","kind":"audio","media":"/etc/passwd"}"#;
        let words_without_media = r#"{"event_id":"e","user_id":"u","product":"imagine","captured_at":"2026-01-01T00:00:00Z","kind":"image","text":"a fox"}"#;
        for line in [text_with_media, none, abs, words_without_media] {
            assert!(records(line.as_bytes())[0].is_err(), "{line}");
        }
        let absent_country = r#"{"event_id":"e","user_id":"u","product":"glasses","captured_at":"2026-01-01T00:00:00+02:00","kind":"audio","media":"a.wav"}"#;
        let (_, e) = records(absent_country.as_bytes()).remove(0).unwrap();
        assert_eq!(e.country, None);
        assert_eq!(e.kind(), Kind::Audio);
        assert_eq!(e.captured_at.to_rfc3339(), "2025-12-31T22:00:00+00:00");
    }

    fn line_with(extra: &str) -> String {
        format!(
            r#"{{"event_id":"e","user_id":"u","product":"assistant","captured_at":"2026-01-01T00:00:00Z",{extra}}}"#
        )
    }

    fn parsed(extra: &str) -> Result<Event, EventError> {
        records(line_with(extra).as_bytes()).remove(0).map(|(_, e)| e).map_err(|f| f.error)
    }

    #[test]
    fn a_prompt_caption_or_question_comes_with_its_media() {
        let e = parsed(r#""kind":"image","text":"a fox in the snow, watercolour","media":"fox.png""#).unwrap();
        assert_eq!(e.kind(), Kind::Image);
        assert_eq!(e.turns, [Turn::user("a fox in the snow, watercolour")]);
        assert_eq!(e.media.unwrap().path.relative(), std::path::Path::new("fox.png"));
        let e = parsed(r#""kind":"video","turns":[{"role":"user","text":"what is this?"}],"media":"v.mp4""#).unwrap();
        assert_eq!((e.kind(), e.turns.len()), (Kind::Video, 1));
    }

    #[test]
    fn a_chat_keeps_its_turns_and_roles_in_order() {
        let e = parsed(
            r#""kind":"text","turns":[{"role":"user","text":"tents?"},{"role":"assistant","text":"Try a dome tent.","model":"x"},{"role":"user","text":"  "},{"role":"user","text":"thanks"}]"#,
        )
        .unwrap();
        assert_eq!(e.turns.len(), 4);
        assert_eq!(e.words_of(Role::User).unwrap(), "tents?\nthanks", "blank turns add nothing");
        assert_eq!(e.words_of(Role::Assistant).unwrap(), "Try a dome tent.");
        let only_user = parsed(r#""kind":"text","turns":[{"role":"user","text":"hi there"}]"#).unwrap();
        assert_eq!(only_user.words_of(Role::Assistant), None);
    }

    #[test]
    fn malformed_turns_are_a_failure_of_their_line_that_says_why() {
        let too_many =
            format!(r#""kind":"text","turns":[{}]"#, vec![r#"{"role":"user","text":"hi"}"#; MAX_TURNS + 1].join(","));
        let too_long =
            format!(r#""kind":"text","turns":[{{"role":"user","text":"{}"}}]"#, "a".repeat(MAX_TEXT_BYTES + 1));
        let cases: Vec<(String, &str)> = vec![
            (r#""kind":"text","turns":[{"role":"system","text":"be nice"}]"#.into(), "must be user or assistant"),
            (r#""kind":"text","turns":[{"text":"hi"}]"#.into(), "no `role`"),
            (r#""kind":"text","turns":[{"role":"user","text":5}]"#.into(), "no `text`"),
            (r#""kind":"text","turns":["hi"]"#.into(), "not an object"),
            (r#""kind":"text","turns":"hi""#.into(), "must be an array"),
            (r#""kind":"text","turns":[]"#.into(), "missing key `text`"),
            (r#""kind":"text","turns":[{"role":"user","text":"   "}]"#.into(), "has no words"),
            (r#""kind":"text","text":"hi","turns":[{"role":"user","text":"hi"}]"#.into(), "not both"),
            (r#""kind":"text","text":["hi"]"#.into(), "must be a string"),
            (too_many, "at most 512"),
            (too_long, "bytes of words"),
        ];
        for (extra, why) in cases {
            let err = parsed(&extra).expect_err(&extra[..extra.len().min(80)]).to_string();
            assert!(err.contains(why), "{why:?} not in {err:?}");
        }
    }
}
