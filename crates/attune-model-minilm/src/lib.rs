//! all-MiniLM-L6-v2 sentence embeddings through ONNX Runtime: text in, a unit-length 384-d
//! vector out (mean pooling over tokens, then L2 normalisation, as sentence-transformers does).
//!
//! Installed by `just setup` from `models/minilm-l6-v2/model.toml`.

use attune_infer::{
    in_token_calls, mean_pool_unit, InferError, LoadOptions, Loader, Model, ModelCrate, ModelDir, Runtime, TextEmbedder,
};
use ndarray::Array2;
use ort::session::Session;
use ort::value::TensorRef;
use tokenizers::{Tokenizer, TruncationParams};

/// The name of this model's folder under `models/`.
pub const MODEL_NAME: &str = "minilm-l6-v2";

/// This crate as the model registry sees it: a text embedder.
pub const MODEL_CRATE: ModelCrate =
    ModelCrate { name: env!("CARGO_PKG_NAME"), load: Loader::TextEmbedding(load_text_embedder) };

fn load_text_embedder(
    runtime: &Runtime,
    dir: &ModelDir,
    options: &LoadOptions,
) -> Result<Box<dyn TextEmbedder>, InferError> {
    let model = MiniLm::load(runtime, dir)?;
    Ok(Box::new(match options.max_batch {
        Some(n) => model.with_max_batch(n),
        None => model,
    }))
}

/// `[runtime]` of `model.toml`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    onnx: String,
    tokenizer: String,
    max_tokens: usize,
    dimensions: usize,
    #[allow(dead_code)] // read to be checked: mean is the one pooling there is
    pooling: Pooling,
    normalize: bool,
    version: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Pooling {
    Mean,
}

/// A unit-length sentence embedding.
pub type Embedding = Vec<f32>;

pub struct MiniLm {
    session: Session,
    tokenizer: Tokenizer,
    dimensions: usize,
    id: String,
    max_batch: usize,
}

impl MiniLm {
    /// Load the installed model from `dir` with `runtime`'s threads and providers.
    pub fn load(runtime: &Runtime, dir: &ModelDir) -> Result<MiniLm, InferError> {
        let settings: Settings = dir.config()?;
        if !settings.normalize {
            return Err(dir.invalid("only unit-length (normalize = true) embeddings are implemented"));
        }
        let manifest_err = |message: String| dir.invalid(message);
        let mut tokenizer = Tokenizer::from_file(dir.file(&settings.tokenizer)?)
            .map_err(|e| manifest_err(format!("tokenizer: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: settings.max_tokens, ..Default::default() }))
            .map_err(|e| manifest_err(format!("tokenizer truncation: {e}")))?;
        // No padding here: `run_batch` pads each session call to its own longest text.
        tokenizer.with_padding(None);
        let session = runtime.session(MODEL_NAME, &dir.file(&settings.onnx)?)?;
        let id = format!("{MODEL_NAME}@{}", settings.version);
        Ok(MiniLm { session, tokenizer, dimensions: settings.dimensions, id, max_batch: 32 })
    }

    /// Set the largest batch sent to the session in one call.
    pub fn with_max_batch(mut self, n: usize) -> MiniLm {
        self.max_batch = n.max(1);
        self
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// Embed any number of texts, `max_batch` at a time.
    pub fn embed_all(&mut self, texts: &[String]) -> Result<Vec<Embedding>, InferError> {
        attune_infer::run_in_batches(self, texts)
    }

    /// One session call on tokenized texts, padded to the longest of them.
    fn embed_encoded(&mut self, encodings: &[&tokenizers::Encoding]) -> Result<Vec<Embedding>, InferError> {
        let batch = encodings.len();
        let seq = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let mut ids = Array2::<i64>::zeros((batch, seq));
        let mut mask = Array2::<i64>::zeros((batch, seq));
        let mut types = Array2::<i64>::zeros((batch, seq));
        for (row, enc) in encodings.iter().enumerate() {
            for (col, ((&id, &m), &t)) in
                enc.get_ids().iter().zip(enc.get_attention_mask()).zip(enc.get_type_ids()).enumerate()
            {
                ids[[row, col]] = id as i64;
                mask[[row, col]] = m as i64;
                types[[row, col]] = t as i64;
            }
        }
        let inputs = ort::inputs![
            "input_ids" => TensorRef::from_array_view(&ids).map_err(|e| self.err(e))?,
            "attention_mask" => TensorRef::from_array_view(&mask).map_err(|e| self.err(e))?,
            "token_type_ids" => TensorRef::from_array_view(&types).map_err(|e| self.err(e))?,
        ];
        let id = self.id.clone();
        let outputs =
            self.session.run(inputs).map_err(|e| InferError::Run { model: id.clone(), message: e.to_string() })?;
        let hidden = outputs["last_hidden_state"]
            .try_extract_array::<f32>()
            .map_err(|e| InferError::Run { model: id.clone(), message: e.to_string() })?;
        let mask = mask.as_slice().expect("standard layout");
        mean_pool_unit(&hidden.view(), mask, self.dimensions).map_err(|message| InferError::Run { model: id, message })
    }

    fn err(&self, message: impl ToString) -> InferError {
        InferError::Run { model: self.id.clone(), message: message.to_string() }
    }
}

impl TextEmbedder for MiniLm {
    fn dimensions(&self) -> usize {
        self.dimensions
    }
}

impl Model for MiniLm {
    type Input = String;
    type Output = Embedding;

    fn id(&self) -> &str {
        &self.id
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Tokenizes the texts, then runs them shortest first in calls of at most
    /// [`attune_infer::MAX_CALL_TOKENS`] (rows × the call's longest text), each padded only to its own longest.
    /// Texts arrive sorted by characters, which says little of their tokens (a transcript that
    /// repeats one odd word can hold 226 tokens in 300 characters); padding a call of 24 to that
    /// cost 3× the time, and the arena grew by 220 MB to hold it.
    fn run_batch(&mut self, texts: &[String]) -> Result<Vec<Embedding>, InferError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| InferError::Input { model: self.id.clone(), message: e.to_string() })?;
        let tokens: Vec<usize> = encodings.iter().map(|e| e.get_ids().len()).collect();
        in_token_calls(&tokens, |rows| self.embed_encoded(&rows.iter().map(|&i| &encodings[i]).collect::<Vec<_>>()))
    }
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> MiniLm {
        MiniLm::load(&attune_testkit::cpu_runtime(2), &attune_testkit::installed_model(MODEL_NAME)).unwrap()
    }

    #[test]
    fn embeddings_are_unit_length_and_batch_invariant() {
        let mut m = model();
        let texts: Vec<String> =
            ["I love hiking in the mountains", "a", "What is the best recipe for banana bread? I want it moist."]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let batch = m.run_batch(&texts).unwrap();
        assert_eq!(batch.len(), 3);
        for (i, v) in batch.iter().enumerate() {
            assert_eq!(v.len(), 384);
            assert!((cosine(v, v) - 1.0).abs() < 1e-4);
            // Padding must not change an item's embedding.
            let alone = m.run_batch(&texts[i..=i]).unwrap();
            assert!(cosine(v, &alone[0]) > 0.9999, "item {i}: {}", cosine(v, &alone[0]));
        }
    }

    #[test]
    fn similar_sentences_are_closer_than_unrelated_ones() {
        let mut m = model();
        let v = m
            .embed_all(&[
                "hiking trails in the alps".into(),
                "mountain trekking and walking routes".into(),
                "stock market dividends".into(),
            ])
            .unwrap();
        assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.2);
    }

    #[test]
    fn a_long_text_among_short_ones_gives_the_same_embeddings() {
        let mut m = model();
        let mut texts: Vec<String> = (0..40).map(|i| format!("short message number {i} about hiking")).collect();
        texts.insert(7, "zebra ".repeat(240));
        let together = m.run_batch(&texts).unwrap();
        for (i, text) in texts.iter().enumerate().step_by(6) {
            let alone = m.run_batch(std::slice::from_ref(text)).unwrap();
            assert!(cosine(&together[i], &alone[0]) > 0.9999, "item {i}");
        }
    }

    #[test]
    fn overlong_text_is_truncated_not_an_error() {
        let mut m = model();
        let long = "word ".repeat(5000);
        assert_eq!(m.run_batch(&[long]).unwrap()[0].len(), 384);
    }
}
