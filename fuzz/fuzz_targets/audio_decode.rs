//! The audio decoder on arbitrary bytes, with the default limits (as `attune run` uses them) and
//! with small ones. A decoded recording must be non-empty and within the duration limit.
//!
//! Every panic is a finding (libfuzzer-sys aborts on it, even where `decode_bytes` would contain
//! it), except the known ones in `CONTAINED`: panics inside third-party decoders that
//! `attune-decode-audio` turns into an error of that recording, each with a regression input in
//! `fuzz/regressions/audio_decode/`. They are let through so fuzzing can go past them.
#![no_main]

use attune_decode_audio::{decode_bytes, AudioLimits, TARGET_RATE};
use libfuzzer_sys::fuzz_target;

/// (source file, part of the message) of third-party panics known and contained.
const CONTAINED: &[(&str, &str)] = &[
    // Channel counts of WAVE headers the probe finds past leading junk overflow u16/u32 arithmetic
    // (`num_channels * (bits / 8)`, the channel-mask fix-up); overflow checks make that a panic.
    ("symphonia-format-riff", "overflow"),
];

fn contained(info: &std::panic::PanicHookInfo<'_>) -> bool {
    let file = info.location().map(|l| l.file()).unwrap_or("");
    let message = info.payload_as_str().unwrap_or("");
    CONTAINED.iter().any(|(f, m)| file.contains(f) && message.contains(m))
}

fuzz_target!(
    init: {
        let abort = std::panic::take_hook(); // libfuzzer-sys's: report and abort
        std::panic::set_hook(Box::new(move |info| {
            if !contained(info) {
                abort(info);
            }
        }));
    },
    |data: &[u8]| {
        let small = AudioLimits { max_file_bytes: 1 << 20, max_seconds: 30.0, max_channels: 2, max_sample_rate: 48_000 };
        for limits in [AudioLimits::default(), small] {
            // Errors, `AudioError::Panicked` (a contained panic) among them, are clean failures.
            if let Ok(pcm) = decode_bytes(data, &limits) {
                assert!(!pcm.samples.is_empty());
                assert!(pcm.samples.iter().all(|s| s.is_finite()));
                // Resampling may add a little at the edges; never a second past the limit.
                assert!(pcm.samples.len() as f64 <= (limits.max_seconds + 1.0) * TARGET_RATE as f64);
                assert!(pcm.source_channels <= limits.max_channels);
            }
        }
    }
);
