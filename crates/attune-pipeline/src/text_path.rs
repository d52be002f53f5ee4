//! Text models and their taggers, one per set of languages: each admitted text goes to the first
//! path whose calibration covers its language (by default one path, multilingual-e5-small, takes
//! all of them; `--text-model minilm-l6-v2,multilingual-e5-small` sends English to MiniLM and the
//! rest to e5). A later path may be made on first use, so such a run of English chats never loads
//! the multilingual model.

use attune_infer::TextEmbedder;
use attune_lang::Language;
use attune_tag::TextTagger;
use std::time::{Duration, Instant};

/// What makes a path's model and tagger when it is first needed.
pub type MakeTextPath<'a> = Box<dyn FnOnce() -> Result<(Box<dyn TextEmbedder>, TextTagger), String> + Send + 'a>;

enum State<'a> {
    Ready(Box<dyn TextEmbedder + 'a>, Box<TextTagger>),
    Later(MakeTextPath<'a>),
    Failed(String),
    /// Only while being made.
    Making,
}

/// A text model with its tagger, for the texts in `languages`.
pub struct TextPath<'a> {
    languages: Vec<Language>,
    state: State<'a>,
}

impl<'a> TextPath<'a> {
    /// A loaded model and its tagger; the path serves the languages the tagger is calibrated for.
    pub fn ready(embedder: Box<dyn TextEmbedder + 'a>, tagger: TextTagger) -> TextPath<'a> {
        TextPath { languages: tagger.languages().to_vec(), state: State::Ready(embedder, Box::new(tagger)) }
    }

    /// A path made by `make` when a text in `languages` first needs it; if making it fails,
    /// those texts fail with the reason (never tagged by another model).
    pub fn later(languages: Vec<Language>, make: MakeTextPath<'a>) -> TextPath<'a> {
        TextPath { languages, state: State::Later(make) }
    }

    pub fn languages(&self) -> &[Language] {
        &self.languages
    }

    /// Whether the model is loaded.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready(..))
    }

    /// The model and tagger, made now if not yet; with the time making them took.
    pub(crate) fn get(&mut self) -> (Result<(&mut dyn TextEmbedder, &TextTagger), String>, Duration) {
        let mut took = Duration::ZERO;
        if let State::Later(_) = self.state {
            let State::Later(make) = std::mem::replace(&mut self.state, State::Making) else { unreachable!() };
            let started = Instant::now();
            self.state = match make() {
                Ok((embedder, tagger)) => State::Ready(embedder, Box::new(tagger)),
                Err(e) => State::Failed(e),
            };
            took = started.elapsed();
        }
        let got = match &mut self.state {
            State::Ready(embedder, tagger) => Ok((embedder.as_mut() as &mut dyn TextEmbedder, &**tagger)),
            State::Failed(e) => Err(e.clone()),
            State::Later(_) | State::Making => Err("the text model was not made".to_string()),
        };
        (got, took)
    }
}

/// The first path serving `language`.
pub(crate) fn route(paths: &[TextPath<'_>], language: Language) -> Option<usize> {
    paths.iter().position(|p| p.languages.contains(&language))
}

/// A text model borrowed for the pipeline's lifetime (benchmarks and tests that run several
/// pipelines over one loaded model).
struct Borrowed<'a>(&'a mut dyn TextEmbedder);

impl attune_infer::Model for Borrowed<'_> {
    type Input = String;
    type Output = Vec<f32>;
    fn id(&self) -> &str {
        self.0.id()
    }
    fn max_batch(&self) -> usize {
        self.0.max_batch()
    }
    fn run_batch(&mut self, inputs: &[String]) -> Result<Vec<Vec<f32>>, attune_infer::InferError> {
        self.0.run_batch(inputs)
    }
}

impl TextEmbedder for Borrowed<'_> {
    fn dimensions(&self) -> usize {
        self.0.dimensions()
    }
    fn embed_passages(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>, attune_infer::InferError> {
        self.0.embed_passages(texts)
    }
    fn has_inner_output(&self, name: &str) -> bool {
        self.0.has_inner_output(name)
    }
    fn run_batch_with_states(
        &mut self,
        texts: &[String],
        inner: &str,
    ) -> Result<Vec<(Vec<f32>, attune_infer::TokenStates)>, attune_infer::InferError> {
        self.0.run_batch_with_states(texts, inner)
    }
    fn run_batch_states_only(
        &mut self,
        texts: &[String],
        inner: &str,
    ) -> Result<Vec<attune_infer::TokenStates>, attune_infer::InferError> {
        self.0.run_batch_states_only(texts, inner)
    }
}

impl<'a> TextPath<'a> {
    /// [`TextPath::ready`] with a model the caller keeps.
    pub fn borrowing(embedder: &'a mut dyn TextEmbedder, tagger: TextTagger) -> TextPath<'a> {
        TextPath::ready(Box::new(Borrowed(embedder)), tagger)
    }
}
