//! Interest profiles: what the pipeline hands the store ([`ProfileDelta`]), the store trait
//! ([`ProfileStore`]) with its embedded SQLite implementation ([`SqliteStore`]) and its shared
//! PostgreSQL one (`PostgresStore`, feature `postgres`), and the two export formats
//! (`attune.profile.v1` as JSON Lines or Parquet (feature `parquet`), OpenRTB `user.data`).
//!
//! Nothing derived from content reaches this crate: a delta holds ids, a product, a time and
//! [`AllowedTopic`]s with scores. Sensitive topics cannot be represented, and topics read back
//! from a store are checked against the taxonomy again before they are exported.

mod evidence;
mod format;
#[cfg(feature = "parquet")]
mod parquet_export;
#[cfg(feature = "postgres")]
mod postgres_store;
mod sqlite;
#[cfg(feature = "postgres")]
pub mod throwaway;

pub use format::{openrtb_user, OpenRtbOptions, OpenRtbUserId, Profile, ProfileTopic, PROFILE_SCHEMA_ID};
#[cfg(feature = "parquet")]
pub use parquet_export::{profile_arrow_schema, ParquetProfileWriter, PARQUET_SCHEMA_KEY, ROWS_PER_GROUP};
#[cfg(feature = "postgres")]
pub use postgres_store::{redacted_url, PostgresStore, PG_STORE_VERSION};
pub use sqlite::{SqliteStore, StoreLock, STORE_VERSION};

use attune_event::{Product, Source};
use attune_taxonomy::AllowedTopic;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashSet;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("profile store {path}: {message}")]
    Open { path: String, message: String },
    #[error("profile store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[cfg(feature = "postgres")]
    #[error("profile store (PostgreSQL): {0}")]
    Postgres(#[from] ::postgres::Error),
    #[error("{0}")]
    Unsupported(String),
    #[error("profile store holds a malformed value: {0}")]
    Corrupt(String),
    #[error("profile store {path} does not exist (only `attune run` creates a store)")]
    Missing { path: String },
    #[error("profile store {path} is in use by another attune process ({holder}); try again when it ends")]
    Locked { path: String, holder: String },
    /// The consumer of `for_each_profile` asked to stop (e.g. its output closed).
    #[error("export stopped: {0}")]
    Stopped(String),
}

/// What one event adds to a profile. Built only from allowed topics.
#[derive(Debug, Clone)]
pub struct ProfileDelta {
    pub event_id: String,
    pub user_id: String,
    pub product: Product,
    pub captured_at: DateTime<Utc>,
    pub topics: Vec<DeltaTopic>,
}

/// One topic of a delta: the topic, its score, and the kinds of part of the event it came from.
#[derive(Debug, Clone)]
pub struct DeltaTopic {
    pub topic: AllowedTopic,
    pub score: f32,
    pub sources: Vec<Source>,
}

/// The outcome recorded for an event in the store's ledger. Sensitive events are recorded as
/// `Dropped`, without the category: the ledger must not itself become sensitive data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerOutcome {
    /// The event gave topics (its delta was applied).
    Tagged,
    /// Processed, no topic above threshold.
    NoTopic,
    /// Dropped whole (a special category).
    Dropped,
    /// Skipped whole: its text or speech is not in a supported language (or not identified).
    UnsupportedLanguage,
    /// Skipped whole: its speech was not understood well enough to be tagged.
    Unintelligible,
    /// Skipped whole: a picture holds text that could not be read (a script the OCR model does
    /// not know), so what it says cannot be checked.
    UnreadableText,
}

impl LedgerOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerOutcome::Tagged => "tagged",
            LedgerOutcome::NoTopic => "no_topic",
            LedgerOutcome::Dropped => "dropped",
            LedgerOutcome::UnsupportedLanguage => "unsupported_language",
            LedgerOutcome::Unintelligible => "unintelligible_speech",
            LedgerOutcome::UnreadableText => "unreadable_text",
        }
    }
}

/// One event's entry for the store: its ledger outcome, and its delta when it has topics.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub event_id: String,
    pub user_id: String,
    pub outcome: LedgerOutcome,
    pub delta: Option<ProfileDelta>,
}

/// Settings that turn stored evidence into scores, and which topics an export keeps.
#[derive(Debug, Clone, Copy)]
pub struct Scoring {
    /// Evidence loses half its weight every `half_life_days`.
    pub half_life_days: f64,
    /// Scores are computed as of this instant: evidence captured after it is left out, so a
    /// profile as of a past date is what was known then.
    pub as_of: DateTime<Utc>,
    /// Topics scoring below this are left out (a profile left with none is not exported).
    pub min_score: f64,
    /// At most this many topics per profile, the strongest; `None`: all.
    pub top_k: Option<usize>,
}

impl Scoring {
    pub const DEFAULT_HALF_LIFE_DAYS: f64 = 30.0;
    /// The smallest exported score: a topic that decayed to 0.0000 says nothing and is left out.
    pub const DEFAULT_MIN_SCORE: f64 = 0.0001;

    pub fn now() -> Scoring {
        Scoring::as_of(Utc::now())
    }

    /// The default settings as of `as_of`.
    pub fn as_of(as_of: DateTime<Utc>) -> Scoring {
        Scoring {
            half_life_days: Scoring::DEFAULT_HALF_LIFE_DAYS,
            as_of,
            min_score: Scoring::DEFAULT_MIN_SCORE,
            top_k: None,
        }
    }
}

/// The evidence behind one topic of a profile, for `attune explain`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TopicEvidence {
    pub topic_id: String,
    pub name: String,
    pub events: Vec<EvidenceItem>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct EvidenceItem {
    pub event_id: String,
    pub product: Product,
    pub captured_at: DateTime<Utc>,
    pub score: f32,
    /// The kinds of part of the event the topic came from (`words`, `speech`, `picture` …);
    /// empty for evidence stored before they were recorded.
    pub sources: Vec<Source>,
}

/// An event that failed, kept so a later run can retry just those (`attune run --retry-failed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEvent {
    pub event_id: String,
    /// Unknown when the line could not be read that far.
    pub user_id: Option<String>,
    pub message: String,
}

/// What `forget` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forgotten {
    pub evidence_rows: usize,
    pub ledger_rows: usize,
    /// The user was already suppressed (forgotten before, not un-forgotten since).
    pub already_forgotten: bool,
}

/// The users a store has forgotten, as it keeps them: a keyed hash of each id (HMAC-SHA256 with
/// the store's own random key), so the store never holds the ids themselves. The gate asks
/// [`ForgottenUsers::contains`] of every event before anything is decoded.
#[derive(Clone)]
pub struct ForgottenUsers {
    key: Vec<u8>,
    hashes: HashSet<[u8; 32]>,
}

impl ForgottenUsers {
    pub(crate) fn new(key: Vec<u8>, hashes: HashSet<[u8; 32]>) -> ForgottenUsers {
        ForgottenUsers { key, hashes }
    }

    pub fn contains(&self, user_id: &str) -> bool {
        !self.hashes.is_empty() && self.hashes.contains(&user_hash(&self.key, user_id))
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

impl std::fmt::Debug for ForgottenUsers {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ForgottenUsers({} users)", self.hashes.len())
    }
}

/// HMAC-SHA256 of a user id under a store's key: how a suppression names a user.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

pub(crate) fn user_hash(key: &[u8], user_id: &str) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(user_id.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Where profiles live: a SQLite file for one worker, PostgreSQL for many.
///
/// Merging is idempotent per `event_id`: [`ProfileStore::record`] applies each event at most
/// once, in one transaction with the ledger, so re-running a batch or delivering an event twice
/// changes nothing. Profiles are computed from the stored evidence, so the order events arrive
/// in does not matter either.
pub trait ProfileStore: Send {
    /// The store's own random key (made when the store was created, kept in it): the key of the
    /// suppression hashes, and, domain-separated, of hashed OpenRTB `user.id`s.
    fn own_key(&self) -> &[u8];

    /// The subset of `event_ids` already in the ledger.
    fn recorded(&self, event_ids: &[&str]) -> Result<Vec<String>, StoreError>;

    /// Record a batch in one transaction: its events' ledger entries and evidence, and the
    /// batch's failures (kept as [`ProfileStore::record_failures`] keeps them). Events already in
    /// the ledger are left alone (the first record of an id in the batch is the one applied).
    fn record(
        &mut self,
        records: &[EventRecord],
        failures: &[FailedEvent],
        provenance: &Provenance,
    ) -> Result<Recorded, StoreError>;

    /// One user's profile, or `None` when nothing is known of them.
    fn profile(&self, user_id: &str, scoring: &Scoring) -> Result<Option<Profile>, StoreError>;

    /// Every profile, in user-id order, streamed to `sink`.
    fn for_each_profile(
        &self,
        scoring: &Scoring,
        sink: &mut dyn FnMut(Profile) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// The users whose profiles a run gave new evidence after `since` (when it was written, not
    /// when it was captured), in user-id order: what an incremental export sends again.
    fn users_changed_since(&self, since: DateTime<Utc>) -> Result<Vec<String>, StoreError>;

    /// The events and products behind each of a user's topics.
    fn explain(&self, user_id: &str) -> Result<Vec<TopicEvidence>, StoreError>;

    /// Erase a user's profile, evidence, ledger entries and failure records, and record that the
    /// user is forgotten (a keyed hash of the id, not the id), in one transaction. The record
    /// stays until [`ProfileStore::unforget`]: runs skip the user's events meanwhile.
    fn forget(&mut self, user_id: &str) -> Result<Forgotten, StoreError>;

    /// Take the user off the forgotten list; `false` when they were not on it. Nothing erased
    /// comes back: later runs process the user's events again.
    fn unforget(&mut self, user_id: &str) -> Result<bool, StoreError>;

    /// The users forgotten and not un-forgotten since, for the gate of a run.
    fn forgotten_users(&self) -> Result<ForgottenUsers, StoreError>;

    /// Remember events that failed (replacing an earlier message for the same id). An event
    /// recorded later by [`ProfileStore::record`] is taken off this list.
    fn record_failures(&mut self, failures: &[FailedEvent]) -> Result<(), StoreError>;

    /// The ids of the events that failed and have not succeeded since.
    fn failed_events(&self) -> Result<Vec<String>, StoreError>;
}

/// What [`ProfileStore::record`] did with a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Events applied now.
    pub new: usize,
    /// The batch's events that were not applied: the ledger already held them (a batch
    /// delivered again, another writer first) or they came earlier in the batch.
    pub already: Vec<String>,
}

/// Which taxonomy and which models produced a batch's tags; recorded in profiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub taxonomy: String,
    pub model_set: String,
}

/// Where a store lives, as `--store` names it: a SQLite file, or a PostgreSQL database
/// (`postgres://…` or `postgresql://…`, libpq's URL form) that many workers share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreAddress {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

/// How a store is opened: only a run creates one; the other commands need it to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    CreateIfMissing,
    MustExist,
}

/// An open store, with the lock a SQLite store's writer holds until it is dropped (PostgreSQL
/// takes many writers: its ledger applies each event once whoever writes it).
pub struct OpenStore {
    pub store: Box<dyn ProfileStore>,
    pub lock: Option<StoreLock>,
}

impl StoreAddress {
    pub fn parse(text: &str) -> StoreAddress {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            StoreAddress::Postgres(text.to_string())
        } else {
            StoreAddress::Sqlite(std::path::PathBuf::from(text))
        }
    }

    /// For messages and reports: a PostgreSQL URL without its password.
    pub fn shown(&self) -> String {
        match self {
            StoreAddress::Sqlite(path) => path.display().to_string(),
            #[cfg(feature = "postgres")]
            StoreAddress::Postgres(url) => redacted_url(url),
            #[cfg(not(feature = "postgres"))]
            StoreAddress::Postgres(_) => "a PostgreSQL store".to_string(),
        }
    }

    /// Open the store; `lock`: take a SQLite store's writer lock first (runs, `forget`,
    /// `unforget`), failing at once when another process holds it.
    pub fn open(&self, mode: OpenMode, lock: bool) -> Result<OpenStore, StoreError> {
        match self {
            StoreAddress::Sqlite(path) => {
                if mode == OpenMode::MustExist && !path.is_file() {
                    return Err(StoreError::Missing { path: path.display().to_string() });
                }
                let lock = if lock { Some(StoreLock::acquire(path)?) } else { None };
                let store = match mode {
                    OpenMode::CreateIfMissing => SqliteStore::open(path)?,
                    OpenMode::MustExist => SqliteStore::open_existing(path)?,
                };
                Ok(OpenStore { store: Box::new(store), lock })
            }
            #[cfg(feature = "postgres")]
            StoreAddress::Postgres(url) => {
                let store = match mode {
                    OpenMode::CreateIfMissing => PostgresStore::open(url)?,
                    OpenMode::MustExist => PostgresStore::open_existing(url)?,
                };
                Ok(OpenStore { store: Box::new(store), lock: None })
            }
            #[cfg(not(feature = "postgres"))]
            StoreAddress::Postgres(_) => {
                Err(StoreError::Unsupported("this build has no PostgreSQL store (feature `postgres`)".into()))
            }
        }
    }
}

impl std::str::FromStr for StoreAddress {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<StoreAddress, Self::Err> {
        Ok(StoreAddress::parse(text))
    }
}
