//! The shared profile store: PostgreSQL, for many workers on many hosts writing one store.
//!
//! The same tables as the SQLite store, in the schema `attune` of the database the URL names.
//! Each batch is one transaction: the ledger takes the batch's new event ids (`ON CONFLICT
//! (event_id) DO NOTHING RETURNING event_id`) and only those add evidence, so a batch delivered
//! twice — a worker killed after its commit and before its acknowledgement — changes nothing,
//! and two workers given the same event apply it once. Profiles are computed from the evidence
//! at export by the code the SQLite store uses ([`crate::evidence`]), so both stores export the
//! same bytes for the same evidence. Text columns use the "C" collation: user-id order is byte
//! order, as in SQLite, whatever the database's locale.

use crate::evidence::{assemble, explain_rows, EvidenceRow};
use crate::{
    hex, unhex, user_hash, EventRecord, FailedEvent, Forgotten, ForgottenUsers, Profile, ProfileStore, Provenance,
    Recorded, Scoring, StoreError, TopicEvidence,
};
use chrono::{DateTime, Utc};
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet};

/// The schema version this build writes (the SQLite store's numbering: the same tables).
pub const PG_STORE_VERSION: i32 = 4;

const SCHEMA: &str = r#"
CREATE SCHEMA IF NOT EXISTS attune;
CREATE TABLE IF NOT EXISTS attune.meta (key TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL);
-- Every admitted event the store has accounted for, so each is applied once.
CREATE TABLE IF NOT EXISTS attune.ledger (
    event_id TEXT COLLATE "C" PRIMARY KEY,
    user_id  TEXT COLLATE "C" NOT NULL,
    outcome  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_user ON attune.ledger (user_id);
-- One row per (event, topic): the only trace of an item's content is its topic and score.
CREATE TABLE IF NOT EXISTS attune.evidence (
    user_id     TEXT COLLATE "C" NOT NULL,
    topic_id    INTEGER NOT NULL,
    event_id    TEXT COLLATE "C" NOT NULL,
    product     TEXT NOT NULL,
    captured_ms BIGINT NOT NULL,
    score       REAL NOT NULL,
    sources     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, topic_id, event_id)
);
-- Events that failed (ids and reasons only), for `attune run --retry-failed`.
CREATE TABLE IF NOT EXISTS attune.failures (
    event_id TEXT COLLATE "C" PRIMARY KEY,
    user_id  TEXT COLLATE "C",
    message  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS failures_user ON attune.failures (user_id);
CREATE TABLE IF NOT EXISTS attune.profiles (
    user_id    TEXT COLLATE "C" PRIMARY KEY,
    taxonomy   TEXT NOT NULL,
    model_set  TEXT NOT NULL,
    changed_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS profiles_changed ON attune.profiles (changed_ms);
-- Users erased by `attune forget`: a keyed hash of the id (HMAC-SHA256 under meta's
-- suppression_key), never the id.
CREATE TABLE IF NOT EXISTS attune.suppressions (
    user_hash BYTEA PRIMARY KEY,
    since_ms  BIGINT NOT NULL
);
"#;

/// Serialises schema creation among workers that start at once (an arbitrary constant).
const SCHEMA_LOCK: i64 = 0x6174_7475_6e65; // "attune"

/// A profile store in PostgreSQL.
pub struct PostgresStore {
    /// `&self` methods query too; one connection per store (a worker has its own).
    client: RefCell<Client>,
    suppression_key: Vec<u8>,
}

/// The URL without its password, for messages.
pub fn redacted_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl PostgresStore {
    /// Connect and create the schema when it is not there (what `attune run` does).
    pub fn open(url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect(url, true)
    }

    /// Connect to a store that must already hold attune's schema: a mistyped database is an
    /// error, not a new empty store.
    pub fn open_existing(url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect(url, false)
    }

    fn connect(url: &str, create: bool) -> Result<PostgresStore, StoreError> {
        let shown = redacted_url(url);
        let open_err = |message: String| StoreError::Open { path: shown.clone(), message };
        let mut client = Client::connect(url, NoTls).map_err(|e| open_err(format!("cannot connect: {e}")))?;
        let exists: bool = client
            .query_one("SELECT to_regclass('attune.meta') IS NOT NULL", &[])
            .map_err(|e| open_err(e.to_string()))?
            .get(0);
        if !exists && !create {
            return Err(StoreError::Missing { path: shown });
        }
        if !exists {
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
            tx.batch_execute(SCHEMA)?;
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| open_err(format!("no random key for the store: {e}")))?;
            // Workers starting together: the first key written is the store's.
            tx.execute(
                "INSERT INTO attune.meta (key, value) VALUES ('suppression_key', $1), ('store_version', $2)
                 ON CONFLICT (key) DO NOTHING",
                &[&hex(&key), &PG_STORE_VERSION.to_string()],
            )?;
            tx.commit()?;
        }
        let mut meta = |key: &str| -> Result<Option<String>, StoreError> {
            Ok(client.query_opt("SELECT value FROM attune.meta WHERE key = $1", &[&key])?.map(|r| r.get(0)))
        };
        let version = meta("store_version")?;
        if version.as_deref() != Some(&PG_STORE_VERSION.to_string()) {
            return Err(open_err(format!("store version {version:?}, this build reads {PG_STORE_VERSION}")));
        }
        let suppression_key = meta("suppression_key")?
            .as_deref()
            .and_then(unhex)
            .filter(|k| k.len() == 32)
            .ok_or_else(|| StoreError::Corrupt("the suppression key is missing or malformed".into()))?;
        Ok(PostgresStore { client: RefCell::new(client), suppression_key })
    }

    fn evidence_rows(&self, user_id: &str, order: &str) -> Result<Vec<EvidenceRow>, StoreError> {
        let rows = self.client.borrow_mut().query(
            &format!(
                "SELECT topic_id, event_id, product, captured_ms, score, sources FROM attune.evidence
                 WHERE user_id = $1 ORDER BY {order}"
            ),
            &[&user_id],
        )?;
        Ok(rows.iter().map(|r| row_of(r, 0)).collect())
    }
}

/// An evidence row from columns `first..first + 6` (topic, event, product, ms, score, sources).
fn row_of(r: &postgres::Row, first: usize) -> EvidenceRow {
    EvidenceRow::from_columns(
        r.get::<_, i32>(first) as u32,
        r.get(first + 1),
        r.get(first + 2),
        r.get(first + 3),
        r.get(first + 4),
        r.get(first + 5),
    )
}

impl ProfileStore for PostgresStore {
    fn own_key(&self) -> &[u8] {
        &self.suppression_key
    }

    fn recorded(&self, event_ids: &[&str]) -> Result<Vec<String>, StoreError> {
        let rows = self
            .client
            .borrow_mut()
            .query("SELECT event_id FROM attune.ledger WHERE event_id = ANY($1)", &[&event_ids])?;
        let found: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
        // In the order asked, as the SQLite store answers.
        Ok(event_ids.iter().filter(|id| found.contains(**id)).map(|id| id.to_string()).collect())
    }

    fn record(
        &mut self,
        records: &[EventRecord],
        failures: &[FailedEvent],
        provenance: &Provenance,
    ) -> Result<Recorded, StoreError> {
        // The first record of an id wins (as in SQLite); ids in byte order, so two transactions
        // given overlapping batches take their row locks in one order and cannot deadlock.
        let mut seen = HashSet::new();
        let mut repeated = Vec::new();
        let mut batch: Vec<&EventRecord> = records
            .iter()
            .filter(|r| {
                seen.insert(r.event_id.as_str()) || {
                    repeated.push(r.event_id.clone());
                    false
                }
            })
            .collect();
        batch.sort_by(|a, b| a.event_id.cmp(&b.event_id));
        let ids: Vec<&str> = batch.iter().map(|r| r.event_id.as_str()).collect();
        let users: Vec<&str> = batch.iter().map(|r| r.user_id.as_str()).collect();
        let outcomes: Vec<&str> = batch.iter().map(|r| r.outcome.as_str()).collect();
        let mut client = self.client.borrow_mut();
        let mut tx = client.transaction()?;
        upsert_failures(&mut tx, failures)?;
        let new: HashSet<String> = tx
            .query(
                "INSERT INTO attune.ledger (event_id, user_id, outcome)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
                 ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                &[&ids, &users, &outcomes],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let (applied, not_applied): (Vec<&EventRecord>, Vec<&EventRecord>) =
            batch.into_iter().partition(|r| new.contains(&r.event_id));
        let new_ids: Vec<&str> = applied.iter().map(|r| r.event_id.as_str()).collect();
        tx.execute("DELETE FROM attune.failures WHERE event_id = ANY($1)", &[&new_ids])?;
        let mut columns = EvidenceColumns::default();
        let mut changed_users = BTreeSet::new();
        for delta in applied.iter().filter_map(|r| r.delta.as_ref()) {
            for t in &delta.topics {
                columns.push(delta, t);
            }
            if !delta.topics.is_empty() {
                changed_users.insert(delta.user_id.as_str());
            }
        }
        tx.execute(
            "INSERT INTO attune.evidence (user_id, topic_id, event_id, product, captured_ms, score, sources)
             SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::bigint[], $6::real[], $7::text[])
             ON CONFLICT DO NOTHING",
            &[
                &columns.users,
                &columns.topics,
                &columns.events,
                &columns.products,
                &columns.captured_ms,
                &columns.scores,
                &columns.sources,
            ],
        )?;
        let changed: Vec<&str> = changed_users.into_iter().collect();
        let now_ms = Utc::now().timestamp_millis();
        tx.execute(
            "INSERT INTO attune.profiles (user_id, taxonomy, model_set, changed_ms)
             SELECT u, $2, $3, $4 FROM unnest($1::text[]) AS u
             ON CONFLICT (user_id) DO UPDATE SET taxonomy = excluded.taxonomy, model_set = excluded.model_set,
                 changed_ms = excluded.changed_ms",
            &[&changed, &provenance.taxonomy, &provenance.model_set, &now_ms],
        )?;
        tx.commit()?;
        let mut already: Vec<String> = not_applied.into_iter().map(|r| r.event_id.clone()).collect();
        already.extend(repeated);
        Ok(Recorded { new: new.len(), already })
    }

    fn profile(&self, user_id: &str, scoring: &Scoring) -> Result<Option<Profile>, StoreError> {
        let rows = self.evidence_rows(user_id, "topic_id, event_id")?;
        let provenance = || -> Result<Option<(String, String)>, StoreError> {
            Ok(self
                .client
                .borrow_mut()
                .query_opt("SELECT taxonomy, model_set FROM attune.profiles WHERE user_id = $1", &[&user_id])?
                .map(|r| (r.get(0), r.get(1))))
        };
        assemble(user_id, &rows, provenance, scoring)
    }

    fn for_each_profile(
        &self,
        scoring: &Scoring,
        sink: &mut dyn FnMut(Profile) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // One streamed pass in key order, each row with its user's provenance; only one user's
        // rows are held at a time.
        let mut client = self.client.borrow_mut();
        let mut rows = client.query_raw(
            "SELECT e.user_id, p.taxonomy, p.model_set,
                    e.topic_id, e.event_id, e.product, e.captured_ms, e.score, e.sources
             FROM attune.evidence e LEFT JOIN attune.profiles p ON p.user_id = e.user_id
             ORDER BY e.user_id, e.topic_id, e.event_id",
            std::iter::empty::<i32>(),
        )?;
        let mut current: Option<(String, Option<(String, String)>)> = None;
        let mut group: Vec<EvidenceRow> = Vec::new();
        loop {
            let next = rows.next()?;
            let user: Option<String> = next.as_ref().map(|r| r.get(0));
            if current.as_ref().is_some_and(|(cur, _)| Some(cur) != user.as_ref()) {
                let (user, provenance) = current.take().expect("checked");
                if let Some(p) = assemble(&user, &group, || Ok(provenance), scoring)? {
                    sink(p)?;
                }
                group.clear();
            }
            let Some(row) = next else { return Ok(()) };
            if current.is_none() {
                let taxonomy: Option<String> = row.get(1);
                let model_set: Option<String> = row.get(2);
                current = Some((row.get(0), taxonomy.zip(model_set)));
            }
            group.push(row_of(&row, 3));
        }
    }

    fn users_changed_since(&self, since: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        let rows = self.client.borrow_mut().query(
            "SELECT user_id FROM attune.profiles WHERE changed_ms > $1 ORDER BY user_id",
            &[&since.timestamp_millis()],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn explain(&self, user_id: &str) -> Result<Vec<TopicEvidence>, StoreError> {
        Ok(explain_rows(&self.evidence_rows(user_id, "topic_id, captured_ms, event_id")?))
    }

    fn forget(&mut self, user_id: &str) -> Result<Forgotten, StoreError> {
        let hash = user_hash(&self.suppression_key, user_id);
        let now_ms = Utc::now().timestamp_millis();
        let mut client = self.client.borrow_mut();
        let mut tx = client.transaction()?;
        // The suppression first, in the same transaction as the erasure: no moment where the
        // evidence is gone but a worker could bring it back.
        let newly_suppressed = tx.execute(
            "INSERT INTO attune.suppressions (user_hash, since_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&&hash[..], &now_ms],
        )? == 1;
        let evidence_rows = tx.execute("DELETE FROM attune.evidence WHERE user_id = $1", &[&user_id])? as usize;
        let ledger_rows = tx.execute("DELETE FROM attune.ledger WHERE user_id = $1", &[&user_id])? as usize;
        tx.execute("DELETE FROM attune.profiles WHERE user_id = $1", &[&user_id])?;
        tx.execute("DELETE FROM attune.failures WHERE user_id = $1", &[&user_id])?;
        tx.commit()?;
        Ok(Forgotten { evidence_rows, ledger_rows, already_forgotten: !newly_suppressed })
    }

    fn unforget(&mut self, user_id: &str) -> Result<bool, StoreError> {
        let hash = user_hash(&self.suppression_key, user_id);
        Ok(self.client.borrow_mut().execute("DELETE FROM attune.suppressions WHERE user_hash = $1", &[&&hash[..]])?
            == 1)
    }

    fn forgotten_users(&self) -> Result<ForgottenUsers, StoreError> {
        let rows = self.client.borrow_mut().query("SELECT user_hash FROM attune.suppressions", &[])?;
        let hashes = rows
            .iter()
            .map(|r| {
                let h: &[u8] = r.get(0);
                <[u8; 32]>::try_from(h)
                    .map_err(|_| StoreError::Corrupt(format!("a suppression hash of {} bytes", h.len())))
            })
            .collect::<Result<_, _>>()?;
        Ok(ForgottenUsers::new(self.suppression_key.clone(), hashes))
    }

    fn record_failures(&mut self, failures: &[FailedEvent]) -> Result<(), StoreError> {
        let mut client = self.client.borrow_mut();
        let mut tx = client.transaction()?;
        upsert_failures(&mut tx, failures)?;
        tx.commit()?;
        Ok(())
    }

    fn failed_events(&self) -> Result<Vec<String>, StoreError> {
        let rows = self.client.borrow_mut().query("SELECT event_id FROM attune.failures ORDER BY event_id", &[])?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// Keep failures in the caller's transaction; the last message of an id wins, as with SQLite's
/// one upsert per failure.
fn upsert_failures(tx: &mut postgres::Transaction<'_>, failures: &[FailedEvent]) -> Result<(), StoreError> {
    if failures.is_empty() {
        return Ok(());
    }
    let mut latest: std::collections::BTreeMap<&str, &FailedEvent> = std::collections::BTreeMap::new();
    for f in failures {
        latest.insert(f.event_id.as_str(), f);
    }
    let ids: Vec<&str> = latest.keys().copied().collect();
    let users: Vec<Option<&str>> = latest.values().map(|f| f.user_id.as_deref()).collect();
    let messages: Vec<&str> = latest.values().map(|f| f.message.as_str()).collect();
    tx.execute(
        "INSERT INTO attune.failures (event_id, user_id, message)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
         ON CONFLICT (event_id) DO UPDATE SET message = excluded.message,
             user_id = COALESCE(excluded.user_id, failures.user_id)",
        &[&ids, &users, &messages],
    )?;
    Ok(())
}

/// A batch's evidence as one array per column, for one `unnest` insert.
#[derive(Default)]
struct EvidenceColumns<'a> {
    users: Vec<&'a str>,
    topics: Vec<i32>,
    events: Vec<&'a str>,
    products: Vec<&'static str>,
    captured_ms: Vec<i64>,
    scores: Vec<f32>,
    sources: Vec<String>,
}

impl<'a> EvidenceColumns<'a> {
    fn push(&mut self, delta: &'a crate::ProfileDelta, topic: &crate::DeltaTopic) {
        self.users.push(&delta.user_id);
        self.topics.push(topic.topic.id() as i32);
        self.events.push(&delta.event_id);
        self.products.push(delta.product.as_str());
        self.captured_ms.push(delta.captured_at.timestamp_millis());
        self.scores.push(topic.score);
        self.sources.push(topic.sources.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","));
    }
}
