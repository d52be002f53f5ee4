//! The special-category classifier's seat in the tagger: a model crate (e.g.
//! `attune-model-sensitivity`) implements [`SensitivityClassifier`] over a text model's segment
//! vectors, and [`crate::TextTagger::with_classifier`] puts it first among the embedding
//! detectors. Any window or clause it finds sensitive drops the whole item.

use attune_lang::Language;
use attune_taxonomy::SensitiveCategory;

/// One segment's assessment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    /// P(the segment reveals a special category).
    pub p_sensitive: f32,
    /// The likeliest category.
    pub category: SensitiveCategory,
}

/// A special-category classifier reading the text model's sentence vectors (one per window and
/// clause, as the tagger embeds them).
pub trait SensitivityClassifier: Send + Sync {
    /// `name@version`, for the profiles' `model_set`.
    fn id(&self) -> &str;
    /// The text model whose vectors it was trained on (`name@version`): the tagger refuses any
    /// other.
    fn features(&self) -> &str;
    fn dimensions(&self) -> usize;
    fn assess(&self, embedding: &[f32]) -> Assessment;
    /// The p(sensitive) at which a segment of text in `language` is sensitive (calibrated per
    /// language; `None`: the language is not known, the strictest is used).
    fn threshold(&self, language: Option<Language>) -> f32;
}
