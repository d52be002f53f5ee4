//! From a piece of text and its embeddings to a [`Verdict`]: either the item touches a special
//! category and is dropped whole, or it gets a few interest topics with scores.
//!
//! Three detectors guard the special categories, any one of which drops the item:
//! 1. a lexicon of words and phrases per category (`data/sensitive-lexicon.tsv`), for recall on
//!    explicit mentions ("chemo", "my therapist", "join the union");
//! 2. the embedding against several descriptions of each category
//!    (`data/sensitive-prototypes.tsv`), and a softmax probe over the embedding trained on
//!    labelled conversations (`data/sensitive-probe.tsv`, made by `scripts/train_probe.py`);
//! 3. the embedding against every taxonomy node, sensitive ones included: when a sensitive node
//!    (Medical Health, Politics …) is among the best matches, the item is about it.
//!
//! Topics are the allowed taxonomy nodes whose description the text matches above a threshold
//! and close to the best match; a weak best match gives no topic at all.

mod image;
mod reference_cache;

pub use image::{table_coverage, ClassTarget, ImageTagConfig, ImageTagger};

use attune_infer::{InferError, Model};
use attune_taxonomy::{AllowedTopic, SensitiveCategory, Taxonomy, INTEREST_ROOT};
use regex::{Regex, RegexBuilder};
use sha2::{Digest, Sha256};
use std::path::Path;

const LEXICON_TSV: &str = include_str!("../data/sensitive-lexicon.tsv");
const PROTOTYPES_TSV: &str = include_str!("../data/sensitive-prototypes.tsv");
const PROBE_TSV: &str = include_str!("../data/sensitive-probe.tsv");

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
}

/// Which detector found a special category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detector {
    Lexicon,
    CategoryPrototype,
    Probe,
    SensitiveNode,
    /// An image class marked sensitive (church, syringe …).
    ImageClass,
}

/// A topic the item is about, with its cosine similarity to the topic's description.
#[derive(Debug, Clone)]
pub struct ScoredTopic {
    pub topic: AllowedTopic,
    pub score: f32,
}

#[derive(Debug, Clone)]
pub enum Verdict {
    /// Drop the item whole.
    Sensitive { category: SensitiveCategory, detector: Detector },
    /// Zero or more topics, best first.
    Topics(Vec<ScoredTopic>),
}

/// Topics a combined item may keep (a video: the image tagger's 3 plus the text tagger's).
const MAX_COMBINED_TOPICS: usize = 6;

impl Verdict {
    /// One verdict for an item made of parts from several sources, such as a video's sampled
    /// frames and its speech. Any sensitive part drops the whole item. Within one source a topic
    /// scores its best part (frames of one scene are not independent evidence); across sources
    /// the scores combine as independent evidence, `1 − Π(1 − s)`.
    pub fn combine<'a>(sources: impl IntoIterator<Item = &'a [Verdict]>) -> Verdict {
        let mut combined: Vec<ScoredTopic> = Vec::new();
        for source in sources {
            let mut best: Vec<ScoredTopic> = Vec::new();
            for part in source {
                match part {
                    Verdict::Sensitive { .. } => return part.clone(),
                    Verdict::Topics(topics) => {
                        for t in topics {
                            match best.iter_mut().find(|b| b.topic == t.topic) {
                                Some(b) => b.score = b.score.max(t.score),
                                None => best.push(t.clone()),
                            }
                        }
                    }
                }
            }
            for t in best {
                match combined.iter_mut().find(|c| c.topic == t.topic) {
                    Some(c) => c.score = 1.0 - (1.0 - c.score) * (1.0 - t.score),
                    None => combined.push(t),
                }
            }
        }
        combined.sort_by(|a, b| b.score.total_cmp(&a.score));
        combined.truncate(MAX_COMBINED_TOPICS);
        Verdict::Topics(combined)
    }
}

/// Thresholds, on cosine similarity of unit-length MiniLM embeddings.
#[derive(Debug, Clone)]
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
}

impl Default for TagConfig {
    fn default() -> Self {
        TagConfig {
            topic_threshold: 0.27,
            topic_margin: 0.04,
            max_topics: 3,
            category_threshold: 0.40,
            probe_threshold: 0.90,
            sensitive_node_threshold: 0.40,
            sensitive_node_margin: 0.02,
        }
    }
}

struct NodeVector {
    id: u32,
    sensitive: Option<SensitiveCategory>,
    vector: Vec<f32>,
}

/// Tags text with a text-embedding model's outputs.
pub struct TextTagger {
    taxonomy: &'static Taxonomy,
    nodes: Vec<NodeVector>,
    prototypes: Vec<(SensitiveCategory, Vec<f32>)>,
    probe: Probe,
    lexicon: Vec<(SensitiveCategory, Regex)>,
    /// Look-alike phrases removed before the lexicon runs ("Sex Pistols", "rugby union").
    allow: Vec<Regex>,
    config: TagConfig,
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
    /// `embedder`, the same model that will embed the items.
    pub fn new<M>(embedder: &mut M, config: TagConfig) -> Result<TextTagger, TagError>
    where
        M: Model<Input = String, Output = Vec<f32>> + ?Sized,
    {
        TextTagger::with_reference_cache(embedder, config, None)
    }

    /// As [`TextTagger::new`], keeping the reference embeddings in `cache` (a folder) between
    /// runs: they are read from there when it holds them for this model and these texts.
    pub fn with_reference_cache<M>(
        embedder: &mut M,
        config: TagConfig,
        cache: Option<&Path>,
    ) -> Result<TextTagger, TagError>
    where
        M: Model<Input = String, Output = Vec<f32>> + ?Sized,
    {
        let taxonomy = Taxonomy::get();
        let nodes: Vec<_> = taxonomy.nodes().iter().filter(|n| n.id != INTEREST_ROOT).collect();
        let mut proto_cats = Vec::new();
        let mut proto_texts = Vec::new();
        for (row, cols) in data_rows(PROTOTYPES_TSV) {
            let category = category(&cols, row)?;
            let text = cols.get(1).ok_or(TagError::Data { row, message: "no text".into() })?;
            proto_cats.push(category);
            proto_texts.push(text.to_string());
        }
        // Each node is the mean of two views: its description, and its name with its parent's.
        // All reference texts go to the model (or the cache) together: descriptions, names,
        // category descriptions.
        let texts: Vec<String> = nodes
            .iter()
            .map(|n| node_text(&n.path, &n.description))
            .chain(nodes.iter().map(|n| name_text(&n.path)))
            .chain(proto_texts)
            .collect();
        let mut vectors = reference_cache::embed(embedder, &texts, cache)?;
        if vectors.len() != texts.len() {
            return Err(TagError::Embeddings { expected: texts.len(), got: vectors.len() });
        }
        let prototype_vectors = vectors.split_off(2 * nodes.len());
        let name_vectors = vectors.split_off(nodes.len());
        let nodes = nodes
            .iter()
            .zip(vectors.into_iter().zip(name_vectors))
            .map(|(n, (a, b))| NodeVector { id: n.id, sensitive: n.sensitive, vector: unit_mean(&[a, b]) })
            .collect();
        let prototypes = proto_cats.into_iter().zip(prototype_vectors).collect();

        let mut lexicon = Vec::new();
        let mut allow = Vec::new();
        for (row, cols) in data_rows(LEXICON_TSV) {
            let pattern = cols.get(1).ok_or(TagError::Data { row, message: "no pattern".into() })?;
            let name = cols.first().map(|s| s.trim()).unwrap_or("");
            let re = RegexBuilder::new(&format!(r"\b(?:{pattern})\b"))
                .case_insensitive(true)
                .build()
                .map_err(|e| TagError::Lexicon { category: name.to_string(), message: e.to_string() })?;
            if name == "allow" {
                allow.push(re);
            } else {
                lexicon.push((category(&cols, row)?, re));
            }
        }

        let mut h = Sha256::new();
        h.update(LEXICON_TSV.as_bytes());
        h.update(PROTOTYPES_TSV.as_bytes());
        h.update(PROBE_TSV.as_bytes());
        h.update(format!("{config:?}").as_bytes());
        let d = h.finalize();
        let version = format!("tagger.{:02x}{:02x}{:02x}{:02x}", d[0], d[1], d[2], d[3]);
        Ok(TextTagger { taxonomy, nodes, prototypes, probe: Probe::parse()?, lexicon, allow, config, version })
    }

    /// Identifies the lexicon, prototypes and thresholds, for the profiles' `model_set`.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn config(&self) -> &TagConfig {
        &self.config
    }

    /// The category the lexicon finds in `text`, if any. Cheap: run before embedding.
    pub fn lexicon_hit(&self, text: &str) -> Option<SensitiveCategory> {
        let mut text = std::borrow::Cow::Borrowed(text);
        for re in &self.allow {
            if let std::borrow::Cow::Owned(s) = re.replace_all(&text, " ") {
                text = std::borrow::Cow::Owned(s);
            }
        }
        self.lexicon.iter().find(|(_, re)| re.is_match(&text)).map(|(c, _)| *c)
    }

    /// The verdict for `text`, given the embeddings of `segments` (made by [`Segments::of`]).
    pub fn tag(&self, text: &str, segments: &Segments, embeddings: &[Vec<f32>]) -> Verdict {
        if let Some(category) = self.lexicon_hit(text) {
            return Verdict::Sensitive { category, detector: Detector::Lexicon };
        }
        self.tag_segments(segments, embeddings)
    }

    /// The verdict from segment embeddings alone, without the lexicon: any window or clause
    /// that is sensitive makes the whole item sensitive; topics come from the mean of the
    /// windows.
    pub fn tag_segments(&self, segments: &Segments, embeddings: &[Vec<f32>]) -> Verdict {
        debug_assert_eq!(segments.texts.len(), embeddings.len());
        let (windows, clauses) = embeddings.split_at(segments.windows.min(embeddings.len()));
        for e in clauses {
            if let Some(v) = self.sensitive_embedding(e) {
                return v;
            }
        }
        if windows.len() == 1 {
            return self.tag_embedding(&windows[0]);
        }
        for e in windows {
            if let Some(v) = self.sensitive_embedding(e) {
                return v;
            }
        }
        self.tag_embedding(&unit_mean(windows))
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
        let (p_sensitive, category) = self.probe.sensitive(embedding)?;
        (p_sensitive >= self.config.probe_threshold)
            .then_some(Verdict::Sensitive { category, detector: Detector::Probe })
    }

    /// The verdict from the embedding alone (detectors 2 and 3, then topics).
    pub fn tag_embedding(&self, embedding: &[f32]) -> Verdict {
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

        let topics = scored
            .iter()
            .filter(|(s, n)| n.sensitive.is_none() && *s >= c.topic_threshold && *s >= best_allowed - c.topic_margin)
            .take(c.max_topics)
            .filter_map(|(s, n)| self.taxonomy.allowed(n.id).ok().map(|topic| ScoredTopic { topic, score: *s }))
            .collect();
        Verdict::Topics(topics)
    }

    /// The `k` best nodes (sensitive ones included) for an embedding: for explaining a verdict.
    pub fn nearest(&self, embedding: &[f32], k: usize) -> Vec<(u32, f32)> {
        let mut scored: Vec<(u32, f32)> = self.nodes.iter().map(|n| (n.id, dot(&n.vector, embedding))).collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.truncate(k);
        scored
    }
}

/// Words per segment: MiniLM reads at most 256 tokens (about 180 words), so longer texts are
/// embedded in overlapping windows and nothing past the first window goes unread.
const SEGMENT_WORDS: usize = 160;
const SEGMENT_OVERLAP: usize = 30;
/// At most this many windows are embedded per item; the lexicon still reads all of it.
const MAX_SEGMENTS: usize = 16;

/// A softmax regression over the embedding: `ordinary` and one class per category.
struct Probe {
    /// (class, bias, weights); `None` is `ordinary`.
    classes: Vec<(Option<SensitiveCategory>, f32, Vec<f32>)>,
}

impl Probe {
    fn parse() -> Result<Probe, TagError> {
        let mut classes = Vec::new();
        for (row, cols) in data_rows(PROBE_TSV) {
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
        if !classes.iter().any(|(c, _, _)| c.is_none()) || classes.len() < 2 {
            return Err(TagError::Data { row: 0, message: "probe: needs `ordinary` and at least one category".into() });
        }
        Ok(Probe { classes })
    }

    /// P(not ordinary) and the most likely category; `None` when the embedding's size does not
    /// match the probe's (another model), which the caller treats as "no opinion".
    fn sensitive(&self, embedding: &[f32]) -> Option<(f32, SensitiveCategory)> {
        if self.classes.iter().any(|(_, _, w)| w.len() != embedding.len()) {
            return None;
        }
        let logits: Vec<f32> = self.classes.iter().map(|(_, b, w)| b + dot(w, embedding)).collect();
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
        best.map(|(_, c)| (p_sensitive, c))
    }
}

/// At most this many clauses are embedded per item for the sensitivity check.
const MAX_CLAUSES: usize = 8;
/// Clauses shorter than this many words are joined to the one before.
const MIN_CLAUSE_WORDS: usize = 4;

/// What to embed for one text: `windows` for topics (the text itself when short, else
/// overlapping word windows), then its clauses, each checked on its own for sensitive content
/// so that "running shoes after my knee surgery" is not averaged away by the shoes.
#[derive(Debug, Clone, PartialEq)]
pub struct Segments {
    pub texts: Vec<String>,
    pub windows: usize,
}

impl Segments {
    pub fn of(text: &str) -> Segments {
        let words: Vec<&str> = text.split_whitespace().collect();
        let mut texts: Vec<String> = if words.len() <= SEGMENT_WORDS + SEGMENT_OVERLAP {
            vec![text.to_string()]
        } else {
            words
                .windows(SEGMENT_WORDS)
                .step_by(SEGMENT_WORDS - SEGMENT_OVERLAP)
                .chain(std::iter::once(&words[words.len() - SEGMENT_WORDS..]))
                .take(MAX_SEGMENTS)
                .map(|w| w.join(" "))
                .collect()
        };
        let windows = texts.len();
        let clauses = clauses(text);
        if clauses.len() > 1 {
            texts.extend(clauses.into_iter().take(MAX_CLAUSES));
        }
        Segments { texts, windows }
    }
}

/// Split at sentence ends, semicolons, dashes and commas; join fragments that are too short
/// to mean anything alone.
fn clauses(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for piece in text.split(['.', '!', '?', ';', ',', '\n', '—', '–', '(', ')']) {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last)
                if last.split_whitespace().count() < MIN_CLAUSE_WORDS
                    || piece.split_whitespace().count() < MIN_CLAUSE_WORDS =>
            {
                last.push_str(", ");
                last.push_str(piece);
            }
            _ => out.push(piece.to_string()),
        }
    }
    out
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn data_rows(text: &'static str) -> impl Iterator<Item = (usize, Vec<&'static str>)> {
    text.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, l)| (i + 1, l.split('\t').collect()))
}

fn category(cols: &[&str], row: usize) -> Result<SensitiveCategory, TagError> {
    let name = cols.first().map(|s| s.trim()).unwrap_or("");
    SensitiveCategory::parse(name).ok_or(TagError::Data { row, message: format!("unknown category `{name}`") })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in embedder for the parts that do not depend on the real model: every text maps
    /// to the same unit vector, so no similarity can tell texts apart.
    struct Constant;
    impl Model for Constant {
        type Input = String;
        type Output = Vec<f32>;
        fn id(&self) -> &str {
            "constant"
        }
        fn max_batch(&self) -> usize {
            64
        }
        fn run_batch(&mut self, inputs: &[String]) -> Result<Vec<Vec<f32>>, InferError> {
            Ok(inputs.iter().map(|_| vec![1.0, 0.0, 0.0]).collect())
        }
    }

    fn tagger() -> TextTagger {
        TextTagger::new(&mut Constant, TagConfig::default()).unwrap()
    }

    #[test]
    fn combined_verdicts_count_a_topic_once_and_drop_on_any_sensitive_part() {
        let tax = Taxonomy::get();
        let topic = |id: u32, score: f32| ScoredTopic { topic: tax.allowed(id).unwrap(), score };
        let frames = [
            Verdict::Topics(vec![topic(377, 0.5)]),
            Verdict::Topics(vec![topic(377, 0.6), topic(543, 0.3)]),
            Verdict::Topics(vec![]),
        ];
        let speech = [Verdict::Topics(vec![topic(725, 0.4), topic(377, 0.5)])];
        let Verdict::Topics(got) = Verdict::combine([&frames[..], &speech[..]]) else { panic!("sensitive") };
        let got: Vec<(u32, f32)> = got.iter().map(|t| (t.topic.id(), t.score)).collect();
        // 377: best frame 0.6, with speech 0.5 → 1 − 0.4·0.5 = 0.8; not 0.5+0.6 from two frames.
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0, 377);
        assert!((got[0].1 - 0.8).abs() < 1e-6, "{got:?}");
        assert_eq!(got[1], (725, 0.4));
        assert_eq!(got[2], (543, 0.3));

        let sensitive_frame = [
            Verdict::Topics(vec![topic(377, 0.9)]),
            Verdict::Sensitive { category: SensitiveCategory::Health, detector: Detector::ImageClass },
        ];
        assert!(matches!(Verdict::combine([&sensitive_frame[..], &speech[..]]), Verdict::Sensitive { .. }));
        let sensitive_speech =
            [Verdict::Sensitive { category: SensitiveCategory::Health, detector: Detector::Lexicon }];
        assert!(matches!(Verdict::combine([&frames[..], &sensitive_speech[..]]), Verdict::Sensitive { .. }));
        assert!(matches!(Verdict::combine([]), Verdict::Topics(t) if t.is_empty()));
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
    fn long_texts_are_cut_into_overlapping_windows_that_cover_the_end() {
        assert_eq!(Segments::of("short text"), Segments { texts: vec!["short text".to_string()], windows: 1 });
        let text: Vec<String> = (0..1000).map(|i| format!("w{i}")).collect();
        let segs = Segments::of(&text.join(" "));
        assert!(segs.windows > 1 && segs.windows <= MAX_SEGMENTS);
        assert!(segs.texts[0].starts_with("w0 "));
        assert!(segs.texts.iter().all(|s| s.split_whitespace().count() == SEGMENT_WORDS));
        let text: Vec<String> = (0..400).map(|i| format!("w{i}")).collect();
        assert!(Segments::of(&text.join(" ")).texts.last().unwrap().ends_with("w399"));
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
    fn a_sensitive_node_can_never_come_out_as_a_topic() {
        // With the constant embedder every node ties; the verdict may be sensitive or a list of
        // topics, but no topic in it can be a sensitive node: `AllowedTopic` refuses them.
        let t = tagger();
        match t.tag_embedding(&[1.0, 0.0, 0.0]) {
            Verdict::Topics(ts) => assert!(ts.iter().all(|s| s.topic.node().sensitive.is_none())),
            Verdict::Sensitive { .. } => {}
        }
    }
}
