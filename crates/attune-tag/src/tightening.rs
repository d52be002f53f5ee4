//! What a run may change of its calibration's settings (`attune run --classifier-threshold …`).
//!
//! A calibration's privacy figures (items leaked, per language and category) were measured at
//! its settings, and a run is allowed only on a validated calibration. A run may still want to
//! keep out more than that (a stricter market, a cautious first deployment) or to write fewer,
//! surer topics. Every setting here can move only in the direction that keeps out of profiles
//! at least what the calibration keeps out: a detector's bar lower, a topic's bar higher, fewer
//! topics. Each detector's verdict is monotone in its bar and an item is dropped when any
//! detector says so, so an item the calibration drops is dropped under any tightening, and an
//! item written into a profile is written with a subset of its topics: the measured figures
//! still bound the run. Anything else (the nodes' examples, the topic head's weight) is a new
//! calibration, to be measured with `attune eval` first; [`TextTagger::tightened`] refuses it by
//! not having it.

use crate::{TagConfig, TagError, TextTagger};

/// Settings given for a run, each in place of the calibration's only where it is at least as
/// strict (`None`: the calibration's).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tightening {
    /// A topic's similarity bar: at least the calibration's.
    pub topic_threshold: Option<f32>,
    /// How far below the best topic another may be: at most the calibration's.
    pub topic_margin: Option<f32>,
    /// Topics an item at most: at most the calibration's, at least 1.
    pub max_topics: Option<usize>,
    /// The special-category classifier's bar, one for every language: at most its own bar in
    /// each language the tagger is calibrated for.
    pub classifier_threshold: Option<f32>,
    /// The p(sensitive) that confirms a lexicon match: at most the calibration's (0: every match
    /// drops its text unconfirmed).
    pub lexicon_confirmation: Option<f32>,
    /// The sensitive-node detector's similarity bar: at most the calibration's.
    pub sensitive_node_threshold: Option<f32>,
    /// How far below the best allowed node a sensitive node still counts: at least the calibration's.
    pub sensitive_node_margin: Option<f32>,
    /// The probe's bar: at most the calibration's.
    pub probe_threshold: Option<f32>,
    /// The category descriptions' similarity bar: at most the calibration's.
    pub category_threshold: Option<f32>,
    /// Clauses are checked on their own in texts of at least this many words: 0 (every text)
    /// or at most the calibration's.
    pub clauses_from_words: Option<usize>,
    /// A clause counts only when its holder reaches this p(sensitive): at most the calibration's
    /// (0: every clause counts).
    pub clause_gate: Option<f32>,
}

impl Tightening {
    /// The settings given, by name, with their values (none: the calibration as it is).
    pub fn given(&self) -> Vec<(&'static str, String)> {
        let Tightening {
            topic_threshold,
            topic_margin,
            max_topics,
            classifier_threshold,
            lexicon_confirmation,
            sensitive_node_threshold,
            sensitive_node_margin,
            probe_threshold,
            category_threshold,
            clauses_from_words,
            clause_gate,
        } = self;
        let number = |v: &Option<f32>| v.map(|v| v.to_string());
        let count = |v: &Option<usize>| v.map(|v| v.to_string());
        [
            ("topic_threshold", number(topic_threshold)),
            ("topic_margin", number(topic_margin)),
            ("max_topics", count(max_topics)),
            ("classifier_threshold", number(classifier_threshold)),
            ("lexicon_confirmation", number(lexicon_confirmation)),
            ("sensitive_node_threshold", number(sensitive_node_threshold)),
            ("sensitive_node_margin", number(sensitive_node_margin)),
            ("probe_threshold", number(probe_threshold)),
            ("category_threshold", number(category_threshold)),
            ("clauses_from_words", count(clauses_from_words)),
            ("clause_gate", number(clause_gate)),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect()
    }

    /// What `measured` changes of `calibrated`: the bars a run may be given, as a tightening
    /// ([`TextTagger::tightened`] then says whether each is stricter), or else the names of the
    /// settings it changes that only a new calibration may (the nodes' examples, the topic
    /// head's weight …). For `attune eval`, which measures any settings, to say which of them
    /// `attune run` would take.
    pub fn between(calibrated: &TagConfig, measured: &TagConfig) -> Result<Tightening, Vec<&'static str>> {
        // Every field by name, so that a new setting must be sorted into one kind or the other.
        let TagConfig {
            topic_threshold,
            topic_margin,
            max_topics,
            category_threshold,
            probe_threshold,
            sensitive_node_threshold,
            sensitive_node_margin,
            node_examples,
            node_neighbours,
            node_vector_share,
            topic_head_weight,
            classifier_threshold,
            lexicon_confirmation,
            clauses_from_words,
            clause_gate,
            confirm_every_lexicon_match,
            message_topics,
            no_interest_threshold,
        } = measured;
        let c = calibrated;
        let recalibrated: Vec<&'static str> = [
            ("node_examples", *node_examples != c.node_examples),
            ("node_neighbours", *node_neighbours != c.node_neighbours),
            ("node_vector_share", *node_vector_share != c.node_vector_share),
            ("topic_head_weight", *topic_head_weight != c.topic_head_weight),
            ("confirm_every_lexicon_match", *confirm_every_lexicon_match != c.confirm_every_lexicon_match),
            ("message_topics", *message_topics != c.message_topics),
            ("no_interest_threshold", *no_interest_threshold != c.no_interest_threshold),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect();
        if !recalibrated.is_empty() {
            return Err(recalibrated);
        }
        let changed = |given: f32, calibrated: f32| (given != calibrated).then_some(given);
        let changed_option = |given: Option<f32>, calibrated: Option<f32>| match given {
            Some(v) if given != calibrated => Some(v),
            _ => None,
        };
        Ok(Tightening {
            topic_threshold: changed(*topic_threshold, c.topic_threshold),
            topic_margin: changed(*topic_margin, c.topic_margin),
            max_topics: (*max_topics != c.max_topics).then_some(*max_topics),
            classifier_threshold: changed_option(*classifier_threshold, c.classifier_threshold),
            lexicon_confirmation: changed_option(*lexicon_confirmation, c.lexicon_confirmation),
            sensitive_node_threshold: changed(*sensitive_node_threshold, c.sensitive_node_threshold),
            sensitive_node_margin: changed(*sensitive_node_margin, c.sensitive_node_margin),
            probe_threshold: changed(*probe_threshold, c.probe_threshold),
            category_threshold: changed(*category_threshold, c.category_threshold),
            clauses_from_words: (*clauses_from_words != c.clauses_from_words).then_some(*clauses_from_words),
            // No gate is a gate of 0 (every clause counts).
            clause_gate: changed_option(*clause_gate, c.clause_gate)
                .or_else(|| (clause_gate.is_none() && c.clause_gate.is_some()).then_some(0.0)),
        })
    }
}

/// Which way a setting may move.
#[derive(Clone, Copy)]
enum Stricter {
    Lower,
    Higher,
}

/// `given` where it is a number no looser than `calibrated`, else the error naming `setting`.
fn tightened(setting: &'static str, given: f32, calibrated: f32, stricter: Stricter) -> Result<f32, TagError> {
    let looser = || TagError::Looser { setting, given: given.to_string(), calibrated: calibrated.to_string() };
    if !(given.is_finite() && given >= 0.0) {
        return Err(TagError::Calibration(format!("{setting} {given} is not a number of 0 or more")));
    }
    match stricter {
        Stricter::Lower if given > calibrated => Err(looser()),
        Stricter::Higher if given < calibrated => Err(looser()),
        _ => Ok(given),
    }
}

impl TextTagger {
    /// This tagger with `tightening`'s settings in place of its calibration's (and a version of
    /// its own, which the profiles' `model_set` records); an error naming the first setting that
    /// would keep out less than the calibration does. The classifier's settings count only where
    /// a classifier is attached: without one the lexicon already drops every match unread.
    pub fn tightened(&self, tightening: &Tightening) -> Result<TextTagger, TagError> {
        use Stricter::{Higher, Lower};
        let t = tightening;
        let mut c = self.config.clone();
        if let Some(v) = t.topic_threshold {
            c.topic_threshold = tightened("topic_threshold", v, c.topic_threshold, Higher)?;
        }
        if let Some(v) = t.topic_margin {
            c.topic_margin = tightened("topic_margin", v, c.topic_margin, Lower)?;
        }
        if let Some(v) = t.max_topics {
            if v == 0 {
                return Err(TagError::Calibration("max_topics 0 would write no topic at all".into()));
            }
            if v > c.max_topics {
                return Err(TagError::Looser {
                    setting: "max_topics",
                    given: v.to_string(),
                    calibrated: c.max_topics.to_string(),
                });
            }
            c.max_topics = v;
        }
        if let Some(v) = t.sensitive_node_threshold {
            c.sensitive_node_threshold = tightened("sensitive_node_threshold", v, c.sensitive_node_threshold, Lower)?;
        }
        if let Some(v) = t.sensitive_node_margin {
            c.sensitive_node_margin = tightened("sensitive_node_margin", v, c.sensitive_node_margin, Higher)?;
        }
        if let Some(v) = t.probe_threshold {
            c.probe_threshold = tightened("probe_threshold", v, c.probe_threshold, Lower)?;
        }
        if let Some(v) = t.category_threshold {
            c.category_threshold = tightened("category_threshold", v, c.category_threshold, Lower)?;
        }
        if let Some(v) = t.clauses_from_words {
            // 0 is every text, the strictest; otherwise fewer words is stricter.
            let calibrated = c.clauses_from_words;
            if v != 0 && (calibrated == 0 || v > calibrated) {
                return Err(TagError::Looser {
                    setting: "clauses_from_words",
                    given: v.to_string(),
                    calibrated: calibrated.to_string(),
                });
            }
            c.clauses_from_words = v;
        }
        if let Some(v) = t.clause_gate {
            // No gate is every clause counting, as a gate of 0 is.
            let given = tightened("clause_gate", v, c.clause_gate.unwrap_or(0.0), Lower)?;
            c.clause_gate = (given > 0.0).then_some(given);
        }
        if let Some(classifier) = self.classifier.as_deref() {
            if let Some(v) = t.classifier_threshold {
                // The lowest of its bars in the languages this tagger reads: the one bar must be
                // no looser in any of them.
                let lowest = self
                    .languages
                    .iter()
                    .map(|&l| c.classifier_threshold.unwrap_or_else(|| classifier.threshold(Some(l))))
                    .fold(c.classifier_threshold.unwrap_or_else(|| classifier.threshold(None)), f32::min);
                c.classifier_threshold = Some(tightened("classifier_threshold", v, lowest, Lower)?);
            }
            if let Some(v) = t.lexicon_confirmation {
                // No confirmation is every match dropping, as a confirmation of 0 is.
                let calibrated = self.lexicon_confirmation().unwrap_or(0.0);
                c.lexicon_confirmation = Some(tightened("lexicon_confirmation", v, calibrated, Lower)?);
            }
        }
        Ok(self.with_config(c))
    }
}
