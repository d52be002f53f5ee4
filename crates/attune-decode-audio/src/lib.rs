//! Voice recordings to 16 kHz mono f32 PCM, the input of the speech model.
//!
//! - Containers and codecs through symphonia (WAV, MP3, FLAC, Ogg Vorbis, M4A/AAC, MKV/WebM) and
//!   Opus through libopus (symphonia has no Opus decoder of its own); the format is probed from
//!   the bytes, not the file name.
//! - The duration the header claims is checked against the limit before decoding; streams that
//!   do not say are cut off (and refused) once they pass it.
//! - A stream that stops early — fewer frames than the header promised — is an error, not a
//!   silently shorter recording. Corrupt packets are skipped and counted.
//! - Downmixed to mono by averaging the channels (each sample clamped to [-1, 1], NaN and ±∞ as
//!   silence), resampled with rubato's FFT resampler.
//! - Hostile input costs one recording, never the batch: WAVE channel counts are checked before
//!   symphonia parses the header, a demuxer that keeps failing in place is given up, and a panic
//!   inside symphonia or rubato is an error ([`AudioError::Panicked`]). `decode_bytes` takes the
//!   same path as `decode_file` (it is what `fuzz/fuzz_targets/audio_decode.rs` drives).

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};
use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::OnceLock;
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::codecs::registry::CodecRegistry;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

/// The sample rate the speech model takes.
pub const TARGET_RATE: u32 = 16_000;

/// Demuxing errors in a row after which a stream is given up.
const MAX_ERRORS_IN_A_ROW: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("cannot read the recording: {0}")]
    Io(#[from] std::io::Error),
    #[error("empty file")]
    Empty,
    #[error("file is {bytes} bytes, over the {limit}-byte limit")]
    FileTooLarge { bytes: u64, limit: u64 },
    #[error("not a supported audio format: {0}")]
    Unsupported(String),
    #[error("recording is {seconds:.0} s long, over the {limit:.0} s limit")]
    TooLong { seconds: f64, limit: f64 },
    #[error("{0}")]
    BadStream(String),
    #[error("stream stops early: {decoded} of {expected} frames decoded")]
    Truncated { decoded: u64, expected: u64 },
    #[error("no audio could be decoded ({corrupt_packets} corrupt packets)")]
    NothingDecoded { corrupt_packets: u64 },
    #[error("resampling failed: {0}")]
    Resample(String),
    #[error("the decoder failed on this input (panic: {0})")]
    Panicked(String),
}

/// Bounds on untrusted recordings.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioLimits {
    pub max_file_bytes: u64,
    pub max_seconds: f64,
    pub max_channels: usize,
    pub max_sample_rate: u32,
}

impl Default for AudioLimits {
    fn default() -> Self {
        AudioLimits { max_file_bytes: 256 << 20, max_seconds: 2.0 * 3600.0, max_channels: 8, max_sample_rate: 384_000 }
    }
}

/// A decoded recording at [`TARGET_RATE`], mono.
#[derive(Clone)]
pub struct Pcm {
    pub samples: Vec<f32>,
    pub source_rate: u32,
    pub source_channels: usize,
    /// Packets that failed to decode and were skipped.
    pub corrupt_packets: u64,
}

impl Pcm {
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / TARGET_RATE as f64
    }
}

impl std::fmt::Debug for Pcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pcm({:.2} s from {} Hz × {})", self.seconds(), self.source_rate, self.source_channels)
    }
}

fn codecs() -> &'static CodecRegistry {
    static REGISTRY: OnceLock<CodecRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut registry = CodecRegistry::new();
        symphonia::default::register_enabled_codecs(&mut registry);
        registry.register_audio_decoder::<symphonia_adapter_libopus::OpusDecoder>();
        registry
    })
}

/// Decode a recording file to 16 kHz mono.
pub fn decode_file(path: &Path, limits: &AudioLimits) -> Result<Pcm, AudioError> {
    check_size(std::fs::metadata(path)?.len(), limits)?;
    decode_source(File::open(path)?, limits)
}

/// Decode a recording held in memory (see [`decode_file`]; the same checks, the same code path).
pub fn decode_bytes(bytes: &[u8], limits: &AudioLimits) -> Result<Pcm, AudioError> {
    check_size(bytes.len() as u64, limits)?;
    decode_source(Cursor::new(bytes), limits)
}

fn check_size(bytes: u64, limits: &AudioLimits) -> Result<(), AudioError> {
    if bytes == 0 {
        return Err(AudioError::Empty);
    }
    if bytes > limits.max_file_bytes {
        return Err(AudioError::FileTooLarge { bytes, limit: limits.max_file_bytes });
    }
    Ok(())
}

/// Check the header, then decode. symphonia and rubato are memory-safe, not panic-free on hostile
/// input (arithmetic overflow in header parsing, found by fuzzing): a panic inside them is a
/// failure of this recording, never of the batch.
fn decode_source<'a>(mut source: impl MediaSource + 'a, limits: &AudioLimits) -> Result<Pcm, AudioError> {
    check_wave_channels(&mut source, limits)?;
    std::panic::catch_unwind(AssertUnwindSafe(|| decode_stream(source, limits))).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(AudioError::Panicked(message))
    })
}

/// Probe, check the header against the limits, decode, downmix and resample.
fn decode_stream<'a>(source: impl MediaSource + 'a, limits: &AudioLimits) -> Result<Pcm, AudioError> {
    let stream = MediaSourceStream::new(Box::new(source), Default::default());
    let mut format = symphonia::default::get_probe()
        .probe(&Hint::new(), stream, FormatOptions::default(), MetadataOptions::default())
        .map_err(|e| AudioError::Unsupported(e.to_string()))?;
    let track =
        format.default_track(TrackType::Audio).ok_or_else(|| AudioError::Unsupported("no audio track".into()))?;
    let track_id = track.id;
    let expected_frames = track.num_frames;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioError::Unsupported("audio track without codec parameters".into()))?
        .clone();
    let rate = params.sample_rate.ok_or_else(|| AudioError::BadStream("no sample rate in the header".into()))?;
    if rate == 0 || rate > limits.max_sample_rate {
        return Err(AudioError::BadStream(format!("sample rate {rate} Hz")));
    }
    if let Some(channels) = &params.channels {
        if channels.count() == 0 || channels.count() > limits.max_channels {
            return Err(AudioError::BadStream(format!("{} channels", channels.count())));
        }
    }
    let max_frames = (limits.max_seconds * rate as f64) as u64;
    if let Some(n) = expected_frames {
        if n > max_frames {
            return Err(AudioError::TooLong { seconds: n as f64 / rate as f64, limit: limits.max_seconds });
        }
    }
    let mut decoder = codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| AudioError::Unsupported(e.to_string()))?;

    // Resampled as it is decoded: only the 16 kHz output is held, never the whole recording at
    // its own rate (two hours at 384 kHz would be 11 GB of f32).
    let mut resampler = Resampling::new(rate)?;
    let mut decoded = 0u64;
    let mut interleaved: Vec<f32> = Vec::new();
    let mut mono: Vec<f32> = Vec::new();
    let mut corrupt_packets = 0u64;
    let mut channels_seen = 0usize;
    let mut errors_in_a_row = 0u32;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A read error mid-stream is where the file stops; the frame count below decides
            // whether that is the end or a truncation.
            Err(SymphoniaError::IoError(_)) => break,
            // A corrupt packet is skipped, but a demuxer can fail without moving on (symphonia's
            // Matroska reader seeks back to an unexpected element): many errors in a row are a
            // stream that cannot be read past, not many corrupt packets.
            Err(SymphoniaError::DecodeError(e)) => {
                corrupt_packets += 1;
                errors_in_a_row += 1;
                if errors_in_a_row >= MAX_ERRORS_IN_A_ROW {
                    return Err(AudioError::BadStream(format!("{errors_in_a_row} demuxing errors in a row ({e})")));
                }
                continue;
            }
            Err(e) => return Err(AudioError::BadStream(e.to_string())),
        };
        errors_in_a_row = 0;
        if packet.track_id != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(buf) => buf,
            Err(SymphoniaError::DecodeError(_)) | Err(SymphoniaError::IoError(_)) => {
                corrupt_packets += 1;
                continue;
            }
            Err(e) => return Err(AudioError::BadStream(e.to_string())),
        };
        let channels = buf.spec().channels().count().max(1);
        if channels > limits.max_channels {
            return Err(AudioError::BadStream(format!("{channels} channels")));
        }
        channels_seen = channels;
        interleaved.resize(buf.samples_interleaved(), 0.0);
        buf.copy_to_slice_interleaved(&mut interleaved);
        mono.clear();
        mono.extend(
            interleaved
                .chunks_exact(channels)
                .map(|frame| frame.iter().map(|&s| sample(s)).sum::<f32>() / channels as f32),
        );
        decoded += mono.len() as u64;
        if decoded > max_frames {
            return Err(AudioError::TooLong { seconds: decoded as f64 / rate as f64, limit: limits.max_seconds });
        }
        resampler.push(&mono)?;
    }
    if decoded == 0 {
        return Err(AudioError::NothingDecoded { corrupt_packets });
    }
    if let Some(expected) = expected_frames {
        // Encoder delay and padding can make a few packets' worth of difference; more is a cut.
        let slack = (rate as u64 / 10).max(4096);
        if decoded + slack < expected {
            return Err(AudioError::Truncated { decoded, expected });
        }
    }
    let samples = resampler.finish()?;
    Ok(Pcm { samples, source_rate: rate, source_channels: channels_seen, corrupt_packets })
}

/// One decoded sample as the model may take it: within [-1, 1], and silence for NaN or ±∞ (which
/// float PCM can carry, and which would otherwise poison the FFT resampler and the mel front end).
fn sample(s: f32) -> f32 {
    if s.is_finite() {
        s.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

/// A WAVE file's channel count, checked before symphonia reads the header: its extensible-format
/// reader overflows a shift on counts above 32 (a panic where overflow checks are on). Walks the
/// RIFF chunks to `fmt `, then rewinds; anything that is not a readable WAVE header is left to the
/// probe.
fn check_wave_channels(source: &mut (impl Read + Seek), limits: &AudioLimits) -> Result<(), AudioError> {
    fn channels(r: &mut (impl Read + Seek)) -> std::io::Result<Option<u16>> {
        let mut head = [0u8; 12];
        r.read_exact(&mut head)?;
        if !matches!(&head[..4], b"RIFF" | b"RF64") || &head[8..] != b"WAVE" {
            return Ok(None);
        }
        for _ in 0..1024 {
            let mut chunk = [0u8; 8];
            r.read_exact(&mut chunk)?;
            let size = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]) as i64;
            if &chunk[..4] == b"fmt " {
                let mut fmt = [0u8; 4];
                r.read_exact(&mut fmt)?;
                return Ok(Some(u16::from_le_bytes([fmt[2], fmt[3]])));
            }
            r.seek(SeekFrom::Current(size + (size & 1)))?;
        }
        Ok(None)
    }
    let start = source.stream_position()?;
    let found = channels(source);
    source.seek(SeekFrom::Start(start))?;
    match found {
        Ok(Some(n)) if n == 0 || n as usize > limits.max_channels.min(32) => {
            Err(AudioError::BadStream(format!("{n} channels")))
        }
        _ => Ok(()),
    }
}

/// Mono `input` at `rate` to [`TARGET_RATE`] with rubato's FFT resampler. Every sample must be
/// finite (rubato panics on NaN).
pub fn resample(input: &[f32], rate: u32) -> Result<Vec<f32>, AudioError> {
    let mut resampling = Resampling::new(rate)?;
    resampling.push(input)?;
    resampling.finish()
}

/// rubato's FFT resampler fed in pieces of any length, as the decoder produces them; the same
/// output as its `process_all_into_buffer` on the whole recording (startup delay trimmed, length
/// `ceil(n × ratio)`), holding only the output and less than one chunk of input.
struct Resampling {
    /// `None` at [`TARGET_RATE`]: samples pass through.
    fft: Option<Fft<f32>>,
    pending: Vec<f32>,
    chunk: Vec<f32>,
    output: Vec<f32>,
    to_trim: usize,
    fed: u64,
}

impl Resampling {
    fn new(rate: u32) -> Result<Resampling, AudioError> {
        let fft = if rate == TARGET_RATE {
            None
        } else {
            Some(
                Fft::<f32>::new(rate as usize, TARGET_RATE as usize, 1024, 1, FixedSync::Both)
                    .map_err(|e| AudioError::Resample(e.to_string()))?,
            )
        };
        let (to_trim, chunk) =
            fft.as_ref().map(|f| (f.output_delay(), vec![0.0; f.output_frames_max()])).unwrap_or_default();
        Ok(Resampling { fft, pending: Vec::new(), chunk, output: Vec::new(), to_trim, fed: 0 })
    }

    fn push(&mut self, samples: &[f32]) -> Result<(), AudioError> {
        if samples.iter().any(|s| !s.is_finite()) {
            return Err(AudioError::Resample("samples that are NaN or infinite".into()));
        }
        self.fed += samples.len() as u64;
        let Some(fft) = self.fft.as_ref() else {
            self.output.extend_from_slice(samples);
            return Ok(());
        };
        let n = fft.input_frames_next(); // fixed for FixedSync::Both
        self.pending.extend_from_slice(samples);
        let mut start = 0;
        while self.pending.len() - start >= n {
            self.process(start, None)?;
            start += n;
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// Resample one chunk of `pending` from `start` (`partial`: only that many frames are real,
    /// the rest silence) and append it, less what is left of the startup delay.
    fn process(&mut self, start: usize, partial: Option<usize>) -> Result<(), AudioError> {
        let err = |e: &dyn std::fmt::Display| AudioError::Resample(e.to_string());
        let fft = self.fft.as_mut().expect("only called when resampling");
        let input = &self.pending[start..];
        let src = InterleavedSlice::new(input, 1, input.len()).map_err(|e| err(&e))?;
        let frames = self.chunk.len();
        let mut dst = InterleavedSlice::new_mut(&mut self.chunk, 1, frames).map_err(|e| err(&e))?;
        let indexing = Indexing { partial_len: partial, ..Indexing::default() };
        let (_, produced) = fft.process_into_buffer(&src, &mut dst, Some(&indexing)).map_err(|e| err(&e))?;
        let skip = self.to_trim.min(produced);
        self.to_trim -= skip;
        self.output.extend_from_slice(&self.chunk[skip..produced]);
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<f32>, AudioError> {
        let Some(fft) = self.fft.as_ref() else { return Ok(self.output) };
        let expected = (fft.resample_ratio() * self.fed as f64).ceil() as usize;
        if !self.pending.is_empty() {
            self.process(0, Some(self.pending.len()))?;
        }
        while self.output.len() < expected {
            self.process(0, Some(0))?; // silence pushes out what the delay holds back
        }
        self.output.truncate(expected);
        Ok(self.output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_testkit::{tone, wav};

    #[test]
    fn bytes_and_file_take_the_same_path() {
        let bytes = wav(1, 1, 22_050, 16, &tone(22_050, 0.5), None);
        let path = std::env::temp_dir().join(format!("attune-decode-audio-{}.wav", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let from_file = decode_file(&path, &AudioLimits::default());
        std::fs::remove_file(&path).unwrap();
        let (from_file, from_bytes) = (from_file.unwrap(), decode_bytes(&bytes, &AudioLimits::default()).unwrap());
        assert_eq!(from_file.samples, from_bytes.samples);
        assert_eq!((from_bytes.source_rate, from_bytes.source_channels), (22_050, 1));
        assert!((from_bytes.seconds() - 0.5).abs() < 0.01, "{from_bytes:?}");
        assert!(matches!(decode_bytes(&[], &AudioLimits::default()), Err(AudioError::Empty)));
        let small = AudioLimits { max_file_bytes: 100, ..AudioLimits::default() };
        assert!(matches!(decode_bytes(&bytes, &small), Err(AudioError::FileTooLarge { .. })));
    }

    #[test]
    fn an_enormous_claimed_duration_is_refused_before_decoding() {
        let bytes = wav(1, 1, 8_000, 16, &tone(8_000, 0.1), Some(0xFFFF_FFF0));
        let err = decode_bytes(&bytes, &AudioLimits::default()).unwrap_err();
        assert!(matches!(err, AudioError::TooLong { .. }), "{err:?}");
    }

    /// Found by `fuzz/fuzz_targets/audio_decode.rs`: float PCM carrying NaN reached rubato's FFT,
    /// which panics on it (`fuzz/regressions/audio_decode/float-wav-nan-panics-resampler.wav`).
    #[test]
    fn float_samples_that_are_nan_or_infinite_become_silence() {
        let rate = 16_000;
        let mut data = Vec::new();
        for i in 0..rate {
            let v = match i % 4 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                2 => -1e30,
                _ => 0.25,
            };
            data.extend_from_slice(&v.to_le_bytes());
        }
        for rate in [16_000, 44_100] {
            let pcm = decode_bytes(&wav(3, 1, rate, 32, &data, None), &AudioLimits::default()).unwrap();
            assert!(pcm.samples.iter().all(|s| s.is_finite()), "{rate} Hz");
        }
        assert!(matches!(resample(&[0.0, f32::NAN], 44_100), Err(AudioError::Resample(_))));
    }

    /// Found by `fuzz/fuzz_targets/audio_decode.rs`: a WebM whose Matroska reader returns the same
    /// error for ever (it seeks back to the unexpected element) kept the packet loop spinning.
    #[test]
    fn a_demuxer_that_does_not_advance_is_given_up() {
        let bytes = include_bytes!("../../../fuzz/regressions/audio_decode/webm-unexpected-element-loops-forever.webm");
        let err = decode_bytes(bytes, &AudioLimits::default()).unwrap_err();
        assert!(matches!(&err, AudioError::BadStream(m) if m.contains("in a row")), "{err:?}");
    }

    /// Found by `fuzz/fuzz_targets/audio_decode.rs`: a WAVE_FORMAT_EXTENSIBLE header claiming
    /// 54273 channels overflowed a shift in symphonia's channel-mask fix-up (a panic in debug
    /// builds). Channel counts are checked before symphonia reads the header.
    #[test]
    fn wave_channel_counts_are_checked_before_the_header_is_parsed() {
        let bytes =
            include_bytes!("../../../fuzz/regressions/audio_decode/wav-extensible-54273-channels-overflows-mask.wav");
        let err = decode_bytes(bytes, &AudioLimits::default()).unwrap_err();
        assert!(matches!(&err, AudioError::BadStream(m) if m == "54273 channels"), "{err:?}");
        for channels in [0, 9, 4000] {
            let err = decode_bytes(&wav(1, channels, 8_000, 16, &[0; 64], None), &AudioLimits::default()).unwrap_err();
            assert!(matches!(&err, AudioError::BadStream(m) if m == &format!("{channels} channels")), "{err:?}");
        }
        // A chunk before `fmt ` is walked past; the file still decodes.
        let mut junk = wav(1, 1, 8_000, 16, &tone(8_000, 0.2), None);
        junk.splice(12..12, b"JUNK\x03\0\0\0abc\0".iter().copied());
        let riff_size = (junk.len() as u32 - 8).to_le_bytes();
        junk[4..8].copy_from_slice(&riff_size);
        let pcm = decode_bytes(&junk, &AudioLimits::default());
        assert!(pcm.is_ok(), "{pcm:?}");
    }

    /// Found by `fuzz/fuzz_targets/audio_decode.rs`: two junk bytes before `RIFF` (the probe
    /// scans past them, the channel check above does not) and 45569 channels overflow symphonia's
    /// block-align product. With overflow checks on that is a panic, contained as an error.
    #[test]
    fn a_panic_inside_the_decoder_is_an_error_of_that_recording() {
        let bytes = include_bytes!(
            "../../../fuzz/regressions/audio_decode/riff-after-junk-45569-channels-overflows-block-align.wav"
        );
        let err = decode_bytes(bytes, &AudioLimits::default()).unwrap_err();
        if cfg!(debug_assertions) {
            assert!(matches!(&err, AudioError::Panicked(m) if m.contains("overflow")), "{err:?}");
        }
    }

    /// Fed in pieces of any length, the resampler gives exactly what rubato gives on the whole
    /// recording at once.
    #[test]
    fn resampling_in_pieces_matches_resampling_at_once() {
        for (rate, len) in [(44_100u32, 100_000usize), (8_000, 5_000), (48_000, 700), (22_050, 1)] {
            let input: Vec<f32> = (0..len).map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0).collect();
            let mut fft = Fft::<f32>::new(rate as usize, TARGET_RATE as usize, 1024, 1, FixedSync::Both).unwrap();
            let needed = fft.process_all_needed_output_len(len);
            let mut whole = vec![0f32; needed];
            let src = InterleavedSlice::new(&input[..], 1, len).unwrap();
            let mut dst = InterleavedSlice::new_mut(&mut whole, 1, needed).unwrap();
            let (_, produced) = fft.process_all_into_buffer(&src, &mut dst, len, None).unwrap();
            whole.truncate(produced);

            let mut pieces = Resampling::new(rate).unwrap();
            let mut at = 0;
            for step in [1, 1023, 1024, 1025, 333, 4096].iter().cycle() {
                if at >= len {
                    break;
                }
                let end = (at + step).min(len);
                pieces.push(&input[at..end]).unwrap();
                at = end;
            }
            assert_eq!(pieces.finish().unwrap(), whole, "{rate} Hz, {len} frames");
        }
    }

    /// Every input a fuzzer found in `fuzz/regressions/audio_decode/` decodes or fails cleanly.
    #[test]
    fn fuzz_regressions_do_not_panic() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/audio_decode");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let _ = decode_bytes(&bytes, &AudioLimits::default());
            n += 1;
        }
        assert!(n > 0, "no regression inputs in {}", dir.display());
    }

    #[test]
    fn resampling_keeps_duration_and_a_tone() {
        let rate = 44_100;
        let tone: Vec<f32> =
            (0..rate).map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin()).collect();
        let out = resample(&tone, rate).unwrap();
        assert!((out.len() as i64 - 16_000).abs() <= 2, "{}", out.len());
        // Still a 440 Hz tone of about the same power, away from the edges.
        let mid = &out[2000..14000];
        let power: f32 = mid.iter().map(|x| x * x).sum::<f32>() / mid.len() as f32;
        assert!((power - 0.5).abs() < 0.02, "{power}");
        let crossings = mid.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
        assert!((crossings as i64 - 330).abs() <= 2, "{crossings}");
    }
}
