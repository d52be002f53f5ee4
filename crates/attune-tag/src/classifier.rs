//! The special-category classifier's seat in the tagger: a model crate (e.g.
//! `attune-model-sensitivity`) implements [`SensitivityClassifier`] over the token states of an
//! inner layer of the tagger's text model, and [`crate::TextTagger::with_classifier`] puts it
//! first among the embedding detectors. Any window or clause it finds sensitive drops the whole
//! item. [`crate::TextTagger::encode`] runs the text model once per segment for both the
//! sentence vector (topics) and the classifier's input.

use attune_infer::TokenStates;
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

/// A special-category classifier reading a text model's token states at one inner layer (its
/// own top layers, fine-tuned for this job, run on them).
pub trait SensitivityClassifier: Send + Sync {
    /// `name@version`, for the profiles' `model_set`.
    fn id(&self) -> &str;
    /// The text model it was trained on (`name@version`): the tagger refuses any other.
    fn features(&self) -> &str;
    /// The text model's graph output it reads (e.g. `hidden_state_8`).
    fn inner_output(&self) -> &str;
    fn dimensions(&self) -> usize;
    /// Whether it was trained on clauses read in place (their rows of the whole text's states,
    /// [`attune_infer::TokenStates::in_place`]) rather than encoded alone: then a clause costs
    /// no encoder pass of its own.
    fn reads_clauses_in_place(&self) -> bool {
        false
    }
    /// One assessment per segment, in order.
    fn assess(&self, segments: &[&TokenStates]) -> Result<Vec<Assessment>, String>;
    /// The p(sensitive) at which a segment of text in `language` is sensitive (calibrated per
    /// language; `None`: the language is not known, the strictest is used).
    fn threshold(&self, language: Option<Language>) -> f32;
    /// The p(sensitive) at which it confirms the lexicon: a text the lexicon matches is dropped
    /// only when one of its segments reaches this (far below [`Self::threshold`]); the words
    /// alone, in a text the classifier reads as plainly ordinary ("the EastEnders episode where
    /// Phil gets his diagnosis", "a metro strike in Paris"), do not drop it. `None`: every
    /// lexicon match drops its text, unread.
    fn lexicon_confirmation(&self) -> Option<f32> {
        None
    }
}
