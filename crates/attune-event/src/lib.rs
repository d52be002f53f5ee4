//! Events: what one line of a manifest says happened, and where events come from.
//!
//! A manifest is JSON Lines, one event a line. Parsing never fails as a whole: each line becomes
//! either an [`Event`] or a [`LineFailure`] that explains why, so one bad line costs one event.
//! Media paths are confined to the manifest's folder ([`MediaPath`]).
//!
//! An event is made of parts, as the products make them: words (a message, a prompt, a caption,
//! a question, or a chat's turns) and at most one media file (a photo, a recording, a video).

mod manifest;
mod media_path;

pub use manifest::{count_records, open_manifest_reader, ManifestSource, MAX_LINE_BYTES, MAX_TEXT_BYTES, MAX_TURNS};
pub use media_path::MediaPath;

use chrono::{DateTime, Utc};
use std::fmt;

/// Everything that can be wrong with one manifest line, or with the manifest as a file.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("cannot read manifest {path}: {source}")]
    OpenManifest { path: String, source: std::io::Error },
    #[error("reading the manifest failed: {0}")]
    Read(#[from] std::io::Error),
    #[error("line is longer than {limit} bytes")]
    LineTooLong { limit: usize },
    #[error("line is not valid UTF-8")]
    NotUtf8,
    #[error("line is not valid JSON: {0}")]
    Json(String),
    #[error("missing key `{0}`")]
    MissingKey(&'static str),
    #[error("bad `{key}`: {message}")]
    BadValue { key: &'static str, message: String },
    #[error("media path `{path}` is refused: {reason}")]
    PathRefused { path: String, reason: &'static str },
    #[error("media file `{path}` cannot be opened: {source}")]
    MediaMissing { path: String, source: std::io::Error },
}

/// The product an interaction came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    /// Camera glasses: voice, photos, video.
    Glasses,
    /// The AI-generated video feed.
    Vibes,
    /// Image generation.
    Imagine,
    /// Chat with the AI assistant.
    Assistant,
}

impl Product {
    pub const ALL: [Product; 4] = [Product::Glasses, Product::Vibes, Product::Imagine, Product::Assistant];

    pub fn as_str(self) -> &'static str {
        match self {
            Product::Glasses => "glasses",
            Product::Vibes => "vibes",
            Product::Imagine => "imagine",
            Product::Assistant => "assistant",
        }
    }

    pub fn parse(s: &str) -> Option<Product> {
        Product::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of content an event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Text,
    Audio,
    Image,
    Video,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Audio => "audio",
            Kind::Image => "image",
            Kind::Video => "video",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        [Kind::Text, Kind::Audio, Kind::Image, Kind::Video].into_iter().find(|k| k.as_str() == s)
    }
}

/// The country as the manifest wrote it, trimmed and upper-cased (at most 16 characters kept).
/// Whether it is a real ISO 3166-1 alpha-2 code, and an allowed one, is the policy's business:
/// the parser keeps whatever was there so the policy can fail closed on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CountryCode(String);

impl CountryCode {
    pub fn new(s: &str) -> CountryCode {
        CountryCode(s.trim().chars().take(16).collect::<String>().to_uppercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who wrote a turn of a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The person: their words carry their interests.
    User,
    /// The AI assistant: its words are not the user's interests (an assistant that suggests
    /// yoga does not make the user a yoga fan), though they can be sensitive.
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::User, Role::Assistant].into_iter().find(|r| r.as_str() == s)
    }
}

/// One turn of a chat; a prompt, a caption or a question is one user turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub role: Role,
    pub text: String,
}

impl Turn {
    pub fn user(text: impl Into<String>) -> Turn {
        Turn { role: Role::User, text: text.into() }
    }

    pub fn assistant(text: impl Into<String>) -> Turn {
        Turn { role: Role::Assistant, text: text.into() }
    }
}

/// The media file of an event: its kind (never [`Kind::Text`]) and its confined path.
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    pub kind: Kind,
    pub path: MediaPath,
}

/// The kind of part a topic came from, recorded as evidence so `attune explain` can say it
/// (never the content itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The user's own words: a message, a prompt, a caption, a question, the user's turns.
    Words,
    /// The assistant's turns (they only ever strengthen a topic the user raised).
    Assistant,
    /// What was said in a recording or a video's soundtrack.
    Speech,
    /// What a photo or a video's frames show.
    Picture,
    /// Text read in a photo or a video's frames.
    TextInPicture,
}

impl Source {
    pub const ALL: [Source; 5] =
        [Source::Words, Source::Assistant, Source::Speech, Source::Picture, Source::TextInPicture];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Words => "words",
            Source::Assistant => "assistant",
            Source::Speech => "speech",
            Source::Picture => "picture",
            Source::TextInPicture => "text_in_picture",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One interaction, as the manifest describes it. Holding an `Event` proves nothing about
/// whether it may be processed: only the policy gate's `Admitted<Event>` does.
///
/// An event has words, a media file, or both (the parser refuses a line with neither).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub user_id: String,
    /// `None` when the manifest leaves it out (the policy then fails closed).
    pub country: Option<CountryCode>,
    pub product: Product,
    pub captured_at: DateTime<Utc>,
    /// The event's words in order: one user turn for a message, prompt, caption or question;
    /// a chat's turns. Empty for media alone.
    pub turns: Vec<Turn>,
    pub media: Option<Media>,
}

impl Event {
    /// The media's kind, or [`Kind::Text`] for words alone.
    pub fn kind(&self) -> Kind {
        self.media.as_ref().map_or(Kind::Text, |m| m.kind)
    }

    /// The words of one role, joined by new lines (each turn its own line, so no sentence runs
    /// across two turns); `None` when that role has no words.
    pub fn words_of(&self, role: Role) -> Option<String> {
        self.joined(|t| t.role == role)
    }

    /// All the words, each turn on its own line; `None` when there are none.
    pub fn words(&self) -> Option<String> {
        self.joined(|_| true)
    }

    fn joined(&self, keep: impl Fn(&Turn) -> bool) -> Option<String> {
        let turns: Vec<&str> =
            self.turns.iter().filter(|t| keep(t) && !t.text.trim().is_empty()).map(|t| t.text.trim()).collect();
        (!turns.is_empty()).then(|| turns.join("\n"))
    }
}

/// Where in the source a record came from, so a failure can be traced back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// 1-based line number in the manifest.
    pub line: u64,
}

/// A record that could not become an event: the line, the event id when it could be read, and why.
#[derive(Debug)]
pub struct LineFailure {
    pub origin: Origin,
    pub event_id: Option<String>,
    pub error: EventError,
}

impl LineFailure {
    /// The id to report: the event's own when it was readable, else `line:N`.
    pub fn report_id(&self) -> String {
        self.event_id.clone().unwrap_or_else(|| format!("line:{}", self.origin.line))
    }
}

/// One item from an event source.
pub type Record = Result<(Origin, Event), LineFailure>;

/// Where events come from: a manifest file now, a work queue on many machines later.
///
/// A source streams: it must not hold the whole batch in memory. A malformed record is yielded
/// as an `Err` and the source goes on; only an unreadable source ends the stream early (as an
/// `Err` from [`EventSource::next_record`]).
pub trait EventSource {
    /// The next record, `Ok(None)` at the end.
    fn next_record(&mut self) -> Result<Option<Record>, EventError>;

    /// Acknowledge that every record up to and including `origin` is durably accounted for
    /// (stored or reported). A manifest needs nothing; a work queue acks here.
    fn acknowledge(&mut self, _origin: &Origin) -> Result<(), EventError> {
        Ok(())
    }
}
