//! Silero VAD through ONNX Runtime: where a 16 kHz mono recording speaks. Installed by `just
//! setup` from `models/silero-vad/model.toml` (the package's "sequence" graph, from PyPI).
//!
//! The graph runs the model's LSTM over a block of 32 ms frames in one call, each frame prefixed
//! with the last 64 samples of the one before (zeros before the first), the LSTM's state carried
//! from block to block: a speech probability per frame. A frame is speech from `threshold` up and
//! a stretch of speech goes on while its frames stay at `end_threshold` or above (hysteresis, as
//! the package's own `get_speech_timestamps` reads them, without its minimum speech length: a
//! short word missed would be a word never checked for special categories).

use attune_infer::{InferError, LoadOptions, Loader, ModelCrate, ModelDir, Runtime, VoiceActivity};
use ndarray::{Array2, Array3};
use ort::session::Session;
use ort::value::TensorRef;
use std::ops::Range;

pub const MODEL_NAME: &str = "silero-vad";

/// This crate as the model registry sees it: voice activity.
pub const MODEL_CRATE: ModelCrate =
    ModelCrate { name: env!("CARGO_PKG_NAME"), load: Loader::VoiceActivity { check, load } };

/// The registry's check of an installed folder, before any session is made: its settings make
/// sense and its graph is there.
fn check(dir: &ModelDir) -> Result<(), InferError> {
    let settings = Settings::read(dir)?;
    dir.file(&settings.graph)?;
    Ok(())
}

fn load(runtime: &Runtime, dir: &ModelDir, _: &LoadOptions) -> Result<Box<dyn VoiceActivity>, InferError> {
    Ok(Box::new(SileroVad::load(runtime, dir)?))
}

/// `[runtime]` of `model.toml`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    graph: String,
    sample_rate: usize,
    frame_samples: usize,
    context_samples: usize,
    state_size: usize,
    frames_per_call: usize,
    threshold: f32,
    end_threshold: f32,
    /// In the model's id ([`ModelDir::id`]).
    #[allow(dead_code)]
    version: String,
}

impl Settings {
    /// `[runtime]`, checked: what the graph and the hysteresis need.
    fn read(dir: &ModelDir) -> Result<Settings, InferError> {
        let settings: Settings = dir.config()?;
        let bad = |message: String| Err(dir.invalid(message));
        if settings.sample_rate != SAMPLE_RATE {
            return bad(format!(
                "sample_rate {}: recordings reach the speech models at {SAMPLE_RATE} Hz",
                settings.sample_rate
            ));
        }
        if settings.frame_samples == 0 || settings.context_samples > settings.frame_samples {
            return bad(format!(
                "frame_samples {} and context_samples {}: a frame's context is the end of the frame before",
                settings.frame_samples, settings.context_samples
            ));
        }
        if settings.frames_per_call == 0 || settings.state_size == 0 {
            return bad("frames_per_call and state_size must be positive".into());
        }
        let (t, e) = (settings.threshold, settings.end_threshold);
        if !(0.0 < e && e <= t && t < 1.0) {
            return bad(format!("threshold {t} and end_threshold {e}: need 0 < end_threshold <= threshold < 1"));
        }
        Ok(settings)
    }
}

/// The recordings this crate reads: 16 kHz mono, as the speech models take them.
const SAMPLE_RATE: usize = 16_000;

pub struct SileroVad {
    session: Session,
    settings: Settings,
    id: String,
}

impl SileroVad {
    pub fn load(runtime: &Runtime, dir: &ModelDir) -> Result<SileroVad, InferError> {
        let settings = Settings::read(dir)?;
        let bad = |message: String| Err(dir.invalid(message));
        let session = runtime.session(&dir.name, &dir.file(&settings.graph)?)?;
        // The names `probabilities` reads, so a graph without them is refused here, not at a
        // recording (ort's outputs index by name, and a missing one would panic).
        for input in ["input", "h", "c"] {
            if !session.inputs().iter().any(|i| i.name() == input) {
                return bad(format!("{} has no input `{input}`: not the sequence graph", settings.graph));
            }
        }
        for output in ["speech_probs", "hn", "cn"] {
            if !session.outputs().iter().any(|o| o.name() == output) {
                return bad(format!("{} has no output `{output}`: not the sequence graph", settings.graph));
            }
        }
        Ok(SileroVad { session, settings, id: dir.id() })
    }

    /// The speech probability of each frame of `pcm` (the last frame zero-padded).
    pub fn probabilities(&mut self, pcm: &[f32]) -> Result<Vec<f32>, InferError> {
        let s = &self.settings;
        let (frame, context, width) = (s.frame_samples, s.context_samples, s.frame_samples + s.context_samples);
        let frames = pcm.len().div_ceil(frame);
        let mut state = [Array3::<f32>::zeros((1, 1, s.state_size)), Array3::<f32>::zeros((1, 1, s.state_size))];
        let mut out = Vec::with_capacity(frames);
        let id = self.id.clone();
        let err = |e: ort::Error| InferError::Run { model: id.clone(), message: e.to_string() };
        for first in (0..frames).step_by(s.frames_per_call) {
            let n = s.frames_per_call.min(frames - first);
            let mut block = Array2::<f32>::zeros((n, width));
            for (j, mut row) in block.outer_iter_mut().enumerate() {
                let start = (first + j) * frame;
                // The previous frame's last samples (zeros before the first frame).
                if start >= context {
                    row.as_slice_mut().expect("a row of a standard array")[..context]
                        .copy_from_slice(&pcm[start - context..start]);
                }
                let samples = &pcm[start..(start + frame).min(pcm.len())];
                row.as_slice_mut().expect("a row of a standard array")[context..context + samples.len()]
                    .copy_from_slice(samples);
            }
            let outputs = self
                .session
                .run(ort::inputs![
                    "input" => TensorRef::from_array_view(&block).map_err(err)?,
                    "h" => TensorRef::from_array_view(&state[0]).map_err(err)?,
                    "c" => TensorRef::from_array_view(&state[1]).map_err(err)?,
                ])
                .map_err(err)?;
            let (_, probs) = outputs["speech_probs"].try_extract_tensor::<f32>().map_err(err)?;
            if probs.len() != n {
                let message = format!("{} probabilities for {n} frames", probs.len());
                return Err(InferError::Run { model: id.clone(), message });
            }
            out.extend_from_slice(probs);
            for (k, name) in ["hn", "cn"].into_iter().enumerate() {
                let (_, values) = outputs[name].try_extract_tensor::<f32>().map_err(err)?;
                let slot = state[k].as_slice_mut().expect("standard layout");
                if values.len() != slot.len() {
                    let message = format!("{name} of {} values, expected {}", values.len(), slot.len());
                    return Err(InferError::Run { model: id.clone(), message });
                }
                slot.copy_from_slice(values);
            }
        }
        Ok(out)
    }
}

/// Frames' speech probabilities (frames of `frame` samples) as stretches of speech in a recording of
/// `len` samples: a stretch starts at a frame at `threshold` or above and ends at the first frame
/// under `end_threshold`.
pub fn stretches(
    probabilities: &[f32],
    frame: usize,
    len: usize,
    threshold: f32,
    end_threshold: f32,
) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut start: Option<usize> = None;
    for (f, &p) in probabilities.iter().enumerate() {
        let at = (f * frame).min(len);
        match start {
            None if p >= threshold => start = Some(at),
            Some(s) if p < end_threshold => {
                out.push(s..at);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(s..len);
    }
    out.retain(|r| !r.is_empty());
    out
}

impl VoiceActivity for SileroVad {
    fn id(&self) -> &str {
        &self.id
    }

    fn speech(&mut self, pcm: &[f32]) -> Result<Vec<Range<usize>>, InferError> {
        let probabilities = self.probabilities(pcm)?;
        let s = &self.settings;
        Ok(stretches(&probabilities, s.frame_samples, pcm.len(), s.threshold, s.end_threshold))
    }
}

#[cfg(test)]
mod tests {
    use super::{check, stretches};
    use attune_infer::ModelDir;

    #[test]
    fn a_broken_installation_is_refused_before_any_session() {
        let manifest =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/silero-vad/model.toml"))
                .expect("models/silero-vad/model.toml");
        let root = tempfile::tempdir().unwrap();
        let folder = root.path().join("silero-vad");
        std::fs::create_dir(&folder).unwrap();
        let checked = |toml: &str| {
            std::fs::write(folder.join("model.toml"), toml).unwrap();
            check(&ModelDir::locate("silero-vad", Some(root.path())).unwrap()).map_err(|e| e.to_string())
        };
        let missing = checked(&manifest).unwrap_err();
        assert!(missing.contains("vad-sequence.onnx"), "{missing}");
        std::fs::write(folder.join("vad-sequence.onnx"), b"").unwrap();
        assert_eq!(checked(&manifest), Ok(()));
        let upside_down = checked(&manifest.replace("end_threshold = 0.15", "end_threshold = 0.45")).unwrap_err();
        assert!(upside_down.contains("end_threshold"), "{upside_down}");
        let resampled = checked(&manifest.replace("sample_rate = 16000", "sample_rate = 8000")).unwrap_err();
        assert!(resampled.contains("16000 Hz"), "{resampled}");
    }

    #[test]
    fn a_stretch_starts_at_the_threshold_and_ends_under_the_lower_one() {
        let p = [0.0, 0.2, 0.4, 0.2, 0.16, 0.1, 0.02, 0.31, 0.9];
        // Frame 2 starts speech; 0.2 and 0.16 keep it; 0.1 ends it at frame 5. Frame 7 starts
        // another, which runs to the end of the recording (its last frame is partial).
        assert_eq!(stretches(&p, 10, 85, 0.3, 0.15), vec![20..50, 70..85]);
        // A recording that never reaches the threshold holds no speech, however long.
        assert!(stretches(&[0.29; 1000], 512, 512_000, 0.3, 0.15).is_empty());
        assert!(stretches(&[], 512, 0, 0.3, 0.15).is_empty());
        // One frame alone is a stretch: no minimum length.
        assert_eq!(stretches(&[0.0, 0.5, 0.0], 512, 1536, 0.3, 0.15), vec![512..1024]);
    }
}
