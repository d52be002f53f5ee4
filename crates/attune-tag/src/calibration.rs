//! The text tagger's calibration, kept per text model: thresholds and the probe's weights mean
//! something only for the model whose similarities they were fitted on. Each model the tagger
//! knows has `data/<model>/calibration.toml` and `data/<model>/probe.tsv` (and may have a
//! `topic-head.tsv`, which its thresholds then weigh); a model without one,
//! or whose id or vector size differs from what it was calibrated for, is refused at start, so a
//! swapped encoder can never switch a privacy detector off without a word.

use crate::{data_rows, TagConfig, TagError};
use attune_lang::Language;
use attune_taxonomy::SensitiveCategory;
use serde::Deserialize;

/// Every calibration this build carries: (model name, calibration.toml, probe.tsv,
/// topic-head.tsv if any), one per folder of `data/` with a `calibration.toml` (listed by build.rs).
const CALIBRATIONS: &[(&str, &str, &str, Option<&str>)] =
    include!(concat!(env!("OUT_DIR"), "/shipped_calibrations.rs"));

/// `calibration.toml`: the model it was fitted for, and the thresholds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalibrationFile {
    model: String,
    dimensions: usize,
    validated: bool,
    /// ISO 639-1 codes of the languages the figures were measured on.
    languages: Vec<String>,
    /// The special-category classifier the figures were measured with (its name); a run
    /// without it does not start.
    #[serde(default)]
    classifier: Option<String>,
    thresholds: TagConfig,
}

/// Thresholds and probe for one text model.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// The model id (`name@version`) it was fitted for.
    pub model: String,
    pub dimensions: usize,
    /// Whether its figures were measured and accepted for runs: `attune run` refuses a model
    /// whose calibration is not (one still being fitted can be evaluated, not used).
    pub validated: bool,
    /// The languages its figures hold for: a run tags text in these only (and in the policy's).
    pub languages: Vec<Language>,
    /// The special-category classifier its figures need (by name), if any.
    pub classifier: Option<String>,
    pub config: TagConfig,
    pub(crate) probe: Option<Probe>,
    /// The probe's file, as shipped: part of the tagger's version.
    pub(crate) probe_text: &'static str,
    /// The topic head, where the model has one (`topic_head_weight` says how much it counts).
    pub(crate) topic_head: Option<std::sync::Arc<TopicHead>>,
}

impl Calibration {
    /// The calibration for the model `model_id` (`name@version`) with vectors of `dimensions`.
    pub fn for_model(model_id: &str, dimensions: usize) -> Result<Calibration, TagError> {
        let name = model_id.split('@').next().unwrap_or(model_id);
        let (file, languages, probe_text, topic_head_text) = shipped(name)?;
        if file.model != model_id {
            return Err(TagError::Calibration(format!(
                "the tagger is calibrated for `{}`, the model is `{model_id}`: recalibrate (docs/calibration.md)",
                file.model
            )));
        }
        let probe = Probe::parse(probe_text)?;
        let topic_head = topic_head_text.map(TopicHead::parse).transpose()?;
        let mut widths = vec![("the model's vectors", dimensions), ("the probe", probe.dimensions())];
        widths.extend(topic_head.as_ref().map(|h| ("the topic head", h.dimensions())));
        for (what, got) in widths {
            if got != file.dimensions {
                return Err(TagError::Calibration(format!(
                    "{name}: calibrated for {}-d vectors, {what} have {got}",
                    file.dimensions
                )));
            }
        }
        Ok(Calibration {
            model: file.model,
            dimensions,
            validated: file.validated,
            languages,
            classifier: file.classifier,
            config: file.thresholds,
            probe: Some(probe),
            probe_text,
            topic_head: topic_head.map(std::sync::Arc::new),
        })
    }

    /// What the calibration of text model `name` (any version) declares without the model
    /// loaded: the languages it holds for, and whether it is validated for runs.
    pub fn declared(name: &str) -> Result<(Vec<Language>, bool), TagError> {
        let (file, languages, _, _) = shipped(name)?;
        Ok((languages, file.validated))
    }

    /// For test doubles of a model: the given thresholds and no probe.
    pub fn without_probe(model: &str, dimensions: usize, config: TagConfig) -> Calibration {
        Calibration {
            model: model.to_string(),
            dimensions,
            validated: false,
            languages: Language::DEFAULT_SUPPORTED.to_vec(),
            classifier: None,
            config,
            probe: None,
            probe_text: "",
            topic_head: None,
        }
    }

    /// The same calibration with a topic head (test doubles).
    pub fn with_topic_head(mut self, head: TopicHead) -> Calibration {
        self.topic_head = Some(std::sync::Arc::new(head));
        self
    }

    /// The same calibration with other thresholds (`attune eval --*-threshold`).
    pub fn with_config(mut self, config: TagConfig) -> Calibration {
        self.config = config;
        self
    }
}

/// The calibration shipped for text model `name`: its file, its languages (checked), its probe,
/// its topic head if any.
#[allow(clippy::type_complexity)]
fn shipped(name: &str) -> Result<(CalibrationFile, Vec<Language>, &'static str, Option<&'static str>), TagError> {
    let (_, toml_text, probe_text, topic_head_text) = CALIBRATIONS
        .iter()
        .find(|(n, _, _, _)| *n == name)
        .ok_or_else(|| TagError::Calibration(format!("no calibration for text model `{name}`")))?;
    let bad = |message: String| TagError::Calibration(format!("{name}/calibration.toml: {message}"));
    let file: CalibrationFile = toml::from_str(toml_text).map_err(|e| bad(e.to_string()))?;
    let languages = file
        .languages
        .iter()
        .map(|c| Language::from_code(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("languages: {e}")))?;
    if languages.is_empty() {
        return Err(bad("no languages".into()));
    }
    file.thresholds.check().map_err(bad)?;
    if file.thresholds.topic_head_weight > 0.0 && topic_head_text.is_none() {
        return Err(bad("topic_head_weight needs a topic-head.tsv beside it".into()));
    }
    Ok((file, languages, probe_text, *topic_head_text))
}

/// A softmax regression from an item's vector to the allowed Interest nodes, trained on the
/// labelled example chats (`scripts/train_topic_head.py`): what tells similar nodes apart, which
/// a node's description and nearest chats do not carry. It may also have a "no interest" class
/// (a row named `none`), trained on turns that name nothing ([`TagConfig::no_interest_threshold`]).
/// Its classes are allowed nodes and that one only, so it ranks topics, or withholds them, and
/// decides nothing about special categories.
#[derive(Debug, Clone)]
pub struct TopicHead {
    /// Each row's class: an allowed node, or `None` for the "no interest" class (turns such as
    /// "thanks" or "make it shorter", which name nothing to take an interest from).
    classes: Vec<Option<u32>>,
    bias: Vec<f32>,
    /// One row of weights a node, `dimensions` wide, one after another.
    weights: Vec<f32>,
    /// What identifies these weights in the tagger's version (hashed once, at parse).
    fingerprint: String,
}

impl TopicHead {
    /// Rows of `node id` (or `none`), `bias, weights` (space-separated), after one header line.
    pub fn parse(text: &str) -> Result<TopicHead, TagError> {
        let (mut classes, mut bias, mut weights, mut width) = (Vec::new(), Vec::new(), Vec::new(), None);
        for (row, cols) in data_rows(text) {
            let bad = |message: &str| TagError::Data { row, message: format!("topic head: {message}") };
            let class = match cols.first().map(|c| c.trim()) {
                Some(NO_INTEREST_CLASS) => None,
                Some(c) => Some(c.parse::<u32>().map_err(|_| bad("bad node id"))?),
                None => return Err(bad("bad node id")),
            };
            if classes.contains(&class) {
                return Err(bad("a class twice"));
            }
            let b = cols.get(1).and_then(|b| b.trim().parse::<f32>().ok()).ok_or_else(|| bad("bad bias"))?;
            let before = weights.len();
            for w in cols.get(2).ok_or_else(|| bad("no weights"))?.split_whitespace() {
                weights.push(w.parse::<f32>().map_err(|_| bad("bad weight"))?);
            }
            if *width.get_or_insert(weights.len() - before) != weights.len() - before {
                return Err(bad("rows of different widths"));
            }
            if !b.is_finite() || weights[before..].iter().any(|w| !w.is_finite()) {
                return Err(bad("a weight that is not a number"));
            }
            classes.push(class);
            bias.push(b);
        }
        if classes.iter().flatten().count() < 2 || width == Some(0) {
            return Err(TagError::Data { row: 0, message: "topic head: needs two nodes or more, with weights".into() });
        }
        // No node has id u32::MAX: it stands for the "no interest" class.
        let bytes: Vec<u8> = classes
            .iter()
            .flat_map(|c| c.unwrap_or(u32::MAX).to_le_bytes())
            .chain(bias.iter().chain(&weights).flat_map(|w| w.to_le_bytes()))
            .collect();
        let fingerprint = crate::content_hash(&[&bytes]);
        Ok(TopicHead { classes, bias, weights, fingerprint })
    }

    pub(crate) fn dimensions(&self) -> usize {
        self.weights.len() / self.classes.len()
    }

    /// What identifies these weights in the tagger's version.
    pub(crate) fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The row of node `id`, if the head has it as a class.
    pub(crate) fn row_of(&self, id: u32) -> Option<usize> {
        self.classes.iter().position(|&c| c == Some(id))
    }

    /// The row of the "no interest" class, if the head has one.
    pub(crate) fn no_interest_row(&self) -> Option<usize> {
        self.classes.iter().position(Option::is_none)
    }

    /// Each class's log-probability for the item `embedding` (a vector of the head's width,
    /// checked at load), by row.
    pub(crate) fn log_probabilities(&self, embedding: &[f32]) -> Vec<f32> {
        let logits: Vec<f32> = self
            .weights
            .chunks_exact(self.dimensions())
            .zip(&self.bias)
            .map(|(w, b)| b + crate::dot(w, embedding))
            .collect();
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_total = max + logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln();
        logits.into_iter().map(|l| l - log_total).collect()
    }
}

/// The name of the topic head's "no interest" class in its file.
const NO_INTEREST_CLASS: &str = "none";

/// A softmax regression over the embedding: `ordinary` and one class per category.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    /// (class, bias, weights); `None` is `ordinary`.
    classes: Vec<(Option<SensitiveCategory>, f32, Vec<f32>)>,
}

impl Probe {
    fn parse(text: &'static str) -> Result<Probe, TagError> {
        let mut classes = Vec::new();
        for (row, cols) in data_rows(text) {
            let bad = |message: &str| TagError::Data { row, message: format!("probe: {message}") };
            let name = cols.first().map(|s| s.trim()).unwrap_or("");
            let class = if name == "ordinary" {
                None
            } else {
                Some(SensitiveCategory::parse(name).ok_or_else(|| bad("unknown class"))?)
            };
            let bias = cols.get(1).and_then(|b| b.trim().parse().ok()).ok_or_else(|| bad("bad bias"))?;
            let weights = cols
                .get(2)
                .ok_or_else(|| bad("no weights"))?
                .split_whitespace()
                .map(|w| w.parse::<f32>().map_err(|_| bad("bad weight")))
                .collect::<Result<Vec<_>, _>>()?;
            classes.push((class, bias, weights));
        }
        let widths: std::collections::BTreeSet<usize> = classes.iter().map(|(_, _, w)| w.len()).collect();
        if !classes.iter().any(|(c, _, _)| c.is_none()) || classes.len() < 2 || widths.len() != 1 {
            return Err(TagError::Data {
                row: 0,
                message: "probe: needs `ordinary`, at least one category, and one width".into(),
            });
        }
        Ok(Probe { classes })
    }

    fn dimensions(&self) -> usize {
        self.classes[0].2.len()
    }

    /// P(not ordinary) and the most likely category. The width was checked against the model's
    /// at load ([`Calibration::for_model`]).
    pub(crate) fn sensitive(&self, embedding: &[f32]) -> (f32, SensitiveCategory) {
        let logits: Vec<f32> = self.classes.iter().map(|(_, b, w)| b + crate::dot(w, embedding)).collect();
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let total: f32 = exp.iter().sum();
        let mut p_sensitive = 0.0;
        let mut best: Option<(f32, SensitiveCategory)> = None;
        for ((class, _, _), e) in self.classes.iter().zip(&exp) {
            if let Some(c) = class {
                let p = e / total;
                p_sensitive += p;
                if best.is_none_or(|(bp, _)| p > bp) {
                    best = Some((p, *c));
                }
            }
        }
        (p_sensitive, best.expect("parse requires a category").1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_calibration_loads_for_its_own_model_only() {
        let names: Vec<&str> = CALIBRATIONS.iter().map(|(name, _, _, _)| *name).collect();
        assert_eq!(names, ["minilm-l6-v2", "multilingual-e5-small"], "build.rs lists data/*/calibration.toml");
        for (name, toml_text, _, _) in CALIBRATIONS {
            let file: CalibrationFile = toml::from_str(toml_text).unwrap();
            let cal = Calibration::for_model(&file.model, file.dimensions).unwrap();
            assert!(cal.probe.is_some(), "{name}");
            // Another version of the same model, or another vector size: refused, not defaulted.
            let other = format!("{name}@another-version");
            assert!(matches!(Calibration::for_model(&other, file.dimensions), Err(TagError::Calibration(_))));
            assert!(matches!(Calibration::for_model(&file.model, file.dimensions + 1), Err(TagError::Calibration(_))));
        }
        assert!(matches!(Calibration::for_model("unknown-model@1", 384), Err(TagError::Calibration(_))));
    }
}
