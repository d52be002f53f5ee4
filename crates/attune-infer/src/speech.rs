//! The speech-to-text capability: what a speech model crate implements for the pipeline.

use crate::InferError;
use std::ops::Range;

/// Which language to transcribe a recording in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpeechLanguage {
    /// The model decides, among the languages it was restricted to, favouring `preferred`
    /// (ISO 639-1 codes, most likely first: the languages the user chats in, then those of their
    /// country). A model that knows one language ignores this.
    Detect { preferred: Vec<String> },
    /// Transcribe as this language (ISO 639-1): the second decode, when the first transcript
    /// turned out to be in another language than it was decoded as, or was not understood.
    Force(String),
}

/// One recording to transcribe: 16 kHz mono PCM.
#[derive(Debug, Clone)]
pub struct SpeechRequest<'a> {
    pub pcm: &'a [f32],
    pub language: SpeechLanguage,
    /// Where the recording speaks, as a voice activity model found it (sample ranges; a speech
    /// model takes them in any order, overlapping or not); `None`: the speech model finds it
    /// itself.
    pub speech: Option<Vec<Range<usize>>>,
}

impl<'a> SpeechRequest<'a> {
    /// The model decides the language, with no preference.
    pub fn detect(pcm: &'a [f32]) -> Self {
        SpeechRequest::new(pcm, SpeechLanguage::Detect { preferred: Vec::new() })
    }

    /// `pcm` in `language`, where it speaks left to the speech model.
    pub fn new(pcm: &'a [f32], language: SpeechLanguage) -> Self {
        SpeechRequest { pcm, language, speech: None }
    }
}

/// What a recording said, and in which language the model decoded it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpokenText {
    /// What was said, one line per utterance where the model can tell them apart (speech after a
    /// long silence): the tagger then reads each line as a message of its own.
    pub text: String,
    /// The language the text was decoded as (ISO 639-1); `None` when nothing was decoded.
    pub language: Option<String>,
    /// The model's probability for that language among those it could choose (1 when forced or
    /// when the model knows one language).
    pub language_probability: f32,
    /// The mean log-probability of the decoded tokens (0 when nothing was decoded): how sure the
    /// model was of what it heard.
    pub avg_logprob: f32,
    /// Voiced windows whose decoding was a repetition loop, left out of `text`.
    pub looped_windows: usize,
}

/// Speech to text: recordings in, one transcript each, in order.
pub trait SpeechToText: Send {
    fn id(&self) -> &str;
    /// How many recordings `transcribe` takes to best effect.
    fn batch(&self) -> usize {
        1
    }
    /// Restrict the languages the model may decode as (ISO 639-1; those the text path can tag).
    /// A code the model does not know is ignored; an English-only model ignores this.
    fn restrict_languages(&mut self, codes: &[&str]);
    /// Several recordings at once, one result each, in order. The failure of one recording must
    /// not fail the others.
    fn transcribe(&mut self, requests: &[SpeechRequest<'_>]) -> Vec<Result<SpokenText, InferError>>;
}

/// Voice activity: where a recording speaks. A speech model decodes only there, so a long
/// recording with little speech in steady noise (a street, a car, wind on the glasses) costs the
/// speech it holds, not its length, and the noise between is never heard as words.
pub trait VoiceActivity: Send {
    fn id(&self) -> &str;
    /// The stretches of `pcm` (16 kHz mono) that hold speech, as sample ranges in order, not
    /// overlapping; empty when it holds none.
    fn speech(&mut self, pcm: &[f32]) -> Result<Vec<Range<usize>>, InferError>;
}
