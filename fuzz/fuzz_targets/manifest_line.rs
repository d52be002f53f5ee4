//! The manifest parser: arbitrary bytes as a JSON Lines manifest, drained record by record.
//!
//! Checked beyond "no panic": line numbers rise, ids and texts stay within their limits, and a
//! media path that resolves stays inside the root. The first byte is a mode: the reader's buffer
//! size (high nibble), and 0 stretches the input past the 1 MiB line limit so the
//! skip-without-holding path runs too.
#![no_main]

use attune_event::{EventSource, ManifestSource, Payload, MAX_LINE_BYTES, MAX_TEXT_BYTES};
use libfuzzer_sys::fuzz_target;
use std::io::{BufReader, Cursor};
use std::path::PathBuf;
use std::sync::OnceLock;

/// A root with a file, a folder and a symlink out of it, so paths in the input can hit each.
fn root() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("attune-fuzz-manifest-{}", std::process::id()));
        let _ = std::fs::create_dir_all(dir.join("sub"));
        let _ = std::fs::write(dir.join("a.jpg"), b"x");
        let _ = std::os::unix::fs::symlink("/etc/passwd", dir.join("out.jpg"));
        let _ = std::os::unix::fs::symlink("a.jpg", dir.join("in.jpg"));
        dir.canonicalize().unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut input = rest.to_vec();
    if mode == 0 && !rest.is_empty() {
        // Stretch: a run longer than a line may be, inserted somewhere in the input.
        let at = rest[0] as usize % (rest.len() + 1);
        let fill = rest[rest.len() - 1];
        let run = MAX_LINE_BYTES + 1 + rest.len() % 7;
        input.splice(at..at, std::iter::repeat_n(fill, run));
    }
    // Small buffers split lines across reads; a stretched input gets a usual one.
    let capacity = if mode == 0 { 8 << 10 } else { 1 + (mode as usize >> 4) * 37 };
    let reader = BufReader::with_capacity(capacity, Cursor::new(input));
    let mut source = ManifestSource::from_reader(reader, root().clone());
    let mut last_line = 0;
    while let Some(record) = source.next_record().expect("an in-memory reader does not fail") {
        let line = match record {
            Ok((origin, event)) => {
                assert!(!event.event_id.trim().is_empty() && event.event_id.len() <= 256);
                assert!(!event.user_id.trim().is_empty() && event.user_id.len() <= 256);
                match &event.payload {
                    Payload::Text(text) => assert!(text.len() <= MAX_TEXT_BYTES),
                    Payload::Media { path, .. } => {
                        if let Ok(real) = path.resolve() {
                            assert!(real.starts_with(root()), "{} escaped the root", real.display());
                            assert!(real.is_file());
                        }
                    }
                }
                origin.line
            }
            Err(failure) => {
                let _ = failure.report_id();
                let _ = failure.error.to_string();
                failure.origin.line
            }
        };
        assert!(line > last_line, "line numbers must rise: {last_line} then {line}");
        last_line = line;
    }
});
