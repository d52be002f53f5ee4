//! Voice recordings to 16 kHz mono f32 PCM, the input of the speech model.
//!
//! - Containers and codecs through symphonia (WAV, MP3, FLAC, Ogg Vorbis, M4A/AAC, MKV/WebM) and
//!   Opus through libopus (symphonia has no Opus decoder of its own); the format is probed from
//!   the bytes, not the file name.
//! - The duration the header claims is checked against the limit before decoding; streams that
//!   do not say are cut off (and refused) once they pass it.
//! - A stream that stops early — fewer frames than the header promised — is an error, not a
//!   silently shorter recording. Corrupt packets are skipped and counted.
//! - Downmixed to mono by averaging the channels, resampled with rubato's FFT resampler.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use std::fs::File;
use std::path::Path;
use std::sync::OnceLock;
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::codecs::registry::CodecRegistry;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

/// The sample rate the speech model takes.
pub const TARGET_RATE: u32 = 16_000;

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
}

/// Bounds on untrusted recordings.
#[derive(Debug, Clone, Copy)]
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
    let bytes = std::fs::metadata(path)?.len();
    if bytes == 0 {
        return Err(AudioError::Empty);
    }
    if bytes > limits.max_file_bytes {
        return Err(AudioError::FileTooLarge { bytes, limit: limits.max_file_bytes });
    }
    let stream = MediaSourceStream::new(Box::new(File::open(path)?), Default::default());
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

    let mut mono: Vec<f32> = Vec::new();
    let mut interleaved: Vec<f32> = Vec::new();
    let mut corrupt_packets = 0u64;
    let mut channels_seen = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A read error mid-stream is where the file stops; the frame count below decides
            // whether that is the end or a truncation.
            Err(SymphoniaError::IoError(_)) => break,
            Err(SymphoniaError::DecodeError(_)) => {
                corrupt_packets += 1;
                continue;
            }
            Err(e) => return Err(AudioError::BadStream(e.to_string())),
        };
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
        mono.extend(interleaved.chunks_exact(channels).map(|frame| frame.iter().sum::<f32>() / channels as f32));
        if mono.len() as u64 > max_frames {
            return Err(AudioError::TooLong { seconds: mono.len() as f64 / rate as f64, limit: limits.max_seconds });
        }
    }
    if mono.is_empty() {
        return Err(AudioError::NothingDecoded { corrupt_packets });
    }
    if let Some(expected) = expected_frames {
        // Encoder delay and padding can make a few packets' worth of difference; more is a cut.
        let slack = (rate as u64 / 10).max(4096);
        if (mono.len() as u64) + slack < expected {
            return Err(AudioError::Truncated { decoded: mono.len() as u64, expected });
        }
    }
    let samples = resample(&mono, rate)?;
    Ok(Pcm { samples, source_rate: rate, source_channels: channels_seen, corrupt_packets })
}

/// Mono `input` at `rate` to [`TARGET_RATE`] with rubato's FFT resampler.
pub fn resample(input: &[f32], rate: u32) -> Result<Vec<f32>, AudioError> {
    if rate == TARGET_RATE {
        return Ok(input.to_vec());
    }
    let err = |e: &dyn std::fmt::Display| AudioError::Resample(e.to_string());
    let mut resampler =
        Fft::<f32>::new(rate as usize, TARGET_RATE as usize, 1024, 1, FixedSync::Both).map_err(|e| err(&e))?;
    let needed = resampler.process_all_needed_output_len(input.len());
    let mut output = vec![0f32; needed];
    let src = InterleavedSlice::new(input, 1, input.len()).map_err(|e| err(&e))?;
    let mut dst = InterleavedSlice::new_mut(&mut output, 1, needed).map_err(|e| err(&e))?;
    let (_, produced) = resampler.process_all_into_buffer(&src, &mut dst, input.len(), None).map_err(|e| err(&e))?;
    output.truncate(produced);
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

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
