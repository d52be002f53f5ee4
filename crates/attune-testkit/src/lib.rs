//! What the workspace's tests, examples and benches share, so no test keeps its own copy: where
//! the repository and its fixtures are, ONNX Runtime and the installed models as a test needs
//! them (a missing installation is one clear message: run `just setup`), and
//! [`ScriptedEmbedder`], the text embedder for tests of everything around a model, and WAV files
//! made in memory ([`wav`], [`tone`], [`brown_noise`]).
//!
//! A dev-dependency only: no library depends on it.

use attune_infer::{Device, InferError, Model, ModelDir, Runtime, TextEmbedder};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository")
}

/// A file or folder of the repository, by its path from the root (`fixtures/sample/…`).
pub fn repo_path(relative: &str) -> PathBuf {
    repo_root().join(relative)
}

/// ONNX Runtime on the CPU with `threads` intra-op threads.
pub fn cpu_runtime(threads: usize) -> Runtime {
    Runtime::new(threads, Device::Cpu).expect("ONNX Runtime (run `just setup`)")
}

/// The installed model `name` (`.attune/models/NAME`).
pub fn installed_model(name: &str) -> ModelDir {
    ModelDir::locate(name, None).unwrap_or_else(|e| panic!("model {name} is not installed (run `just setup`): {e}"))
}

/// A WAV file: `format` 1 (integer PCM) or 3 (IEEE float); `claimed` overrides the data size
/// the header gives.
pub fn wav(format: u16, channels: u16, rate: u32, bits: u16, data: &[u8], claimed: Option<u32>) -> Vec<u8> {
    let block = channels * bits / 8;
    let size = claimed.unwrap_or(data.len() as u32);
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36u32.saturating_add(size)).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&format.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * block as u32).to_le_bytes());
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// `seconds` of a 440 Hz tone at half scale, mono 16-bit PCM samples (little-endian bytes).
pub fn tone(rate: u32, seconds: f32) -> Vec<u8> {
    let n = (rate as f32 * seconds) as usize;
    (0..n)
        .flat_map(|i| {
            let v = (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin() * 0.5;
            ((v * 32767.0) as i16).to_le_bytes()
        })
        .collect()
}

/// Brown noise (integrated white noise, leaking back to zero) at about `level` RMS, 16 kHz or any
/// rate: steady background noise as a street, wind or a car gives it, far above a silence level.
/// Deterministic.
pub fn brown_noise(samples: usize, level: f32) -> Vec<f32> {
    let mut seed = 11u32;
    let mut value = 0.0f32;
    (0..samples)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let white = (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            value = 0.998 * value + white * 0.1;
            value * level * 4.0
        })
        .collect()
}

/// The vector of a text, as a [`ScriptedEmbedder`] gives it.
pub type VectorOf = Box<dyn Fn(&str) -> Vec<f32> + Send>;

/// A text embedder that runs no model, for tests of what surrounds one: each text's vector comes
/// from a function, every text asked for is recorded, and it can be told to refuse.
pub struct ScriptedEmbedder {
    id: String,
    dimensions: usize,
    max_batch: usize,
    vector: VectorOf,
    refuse: Refuse,
    seen: Arc<Mutex<Vec<String>>>,
}

enum Refuse {
    Never,
    Always,
    /// A batch holding a text that contains this.
    Containing(String),
}

impl ScriptedEmbedder {
    /// Model `id` (profiles record it): `vector` gives each text's vector, of `dimensions`.
    pub fn new(id: &str, dimensions: usize, vector: impl Fn(&str) -> Vec<f32> + Send + 'static) -> Self {
        ScriptedEmbedder {
            id: id.to_string(),
            dimensions,
            max_batch: 8,
            vector: Box::new(vector),
            refuse: Refuse::Never,
            seen: Arc::default(),
        }
    }

    /// Every text maps to `vector`: no similarity can tell texts apart.
    pub fn constant(id: &str, vector: &[f32]) -> Self {
        let vector = vector.to_vec();
        ScriptedEmbedder::new(id, vector.len(), move |_| vector.clone())
    }

    /// Stands for a real model by its id and size, and must never be asked to embed: every call
    /// is an error.
    pub fn refusing(id: &str, dimensions: usize) -> Self {
        ScriptedEmbedder { refuse: Refuse::Always, ..ScriptedEmbedder::constant(id, &vec![0.0; dimensions]) }
    }

    /// A batch with a text containing `needle` fails (the one bad input a caller must isolate).
    pub fn refusing_texts_containing(mut self, needle: &str) -> Self {
        self.refuse = Refuse::Containing(needle.to_string());
        self
    }

    pub fn with_max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }

    /// The texts embedded so far, in order (shared: read it after the embedder was moved).
    pub fn seen(&self) -> Arc<Mutex<Vec<String>>> {
        Arc::clone(&self.seen)
    }

    /// How many texts were embedded so far.
    pub fn embedded(&self) -> usize {
        self.seen.lock().expect("not poisoned").len()
    }
}

impl Model for ScriptedEmbedder {
    type Input = String;
    type Output = Vec<f32>;

    fn id(&self) -> &str {
        &self.id
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn run_batch(&mut self, inputs: &[String]) -> Result<Vec<Vec<f32>>, InferError> {
        let refused = match &self.refuse {
            Refuse::Never => false,
            Refuse::Always => true,
            Refuse::Containing(needle) => inputs.iter().any(|t| t.contains(needle.as_str())),
        };
        if refused {
            return Err(InferError::Run {
                model: self.id.clone(),
                message: format!("refused a batch of {} texts", inputs.len()),
            });
        }
        self.seen.lock().expect("not poisoned").extend(inputs.iter().cloned());
        Ok(inputs.iter().map(|t| (self.vector)(t)).collect())
    }
}

impl TextEmbedder for ScriptedEmbedder {
    fn dimensions(&self) -> usize {
        self.dimensions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_embedders_record_refuse_and_batch_as_told() {
        let mut lengths = ScriptedEmbedder::new("lengths@1", 2, |t| vec![t.len() as f32, 1.0]).with_max_batch(2);
        let texts: Vec<String> = ["a", "bcd", "ef"].map(String::from).to_vec();
        let out = attune_infer::run_in_batches(&mut lengths, &texts).unwrap();
        assert_eq!(out, vec![vec![1.0, 1.0], vec![3.0, 1.0], vec![2.0, 1.0]]);
        assert_eq!((lengths.embedded(), lengths.seen().lock().unwrap().clone()), (3, texts.clone()));

        let mut picky = ScriptedEmbedder::constant("picky", &[1.0, 0.0]).refusing_texts_containing("bc");
        assert!(picky.run_batch(&texts).is_err());
        assert_eq!(picky.run_batch(&texts[..1]).unwrap(), vec![vec![1.0, 0.0]]);
        assert_eq!(picky.embedded(), 1, "a refused batch records nothing");

        let mut never = ScriptedEmbedder::refusing("minilm-l6-v2@x", 384);
        assert_eq!((Model::id(&never), never.dimensions()), ("minilm-l6-v2@x", 384));
        assert!(never.run_batch(&texts[..1]).is_err());
    }
}
