use crate::evidence::{assemble, explain_rows, EvidenceRow};
use crate::{
    hex, unhex, user_hash, EventRecord, Forgotten, ForgottenUsers, Profile, ProfileStore, Provenance, Recorded,
    Scoring, StoreError, TopicEvidence,
};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use rusqlite_migration::{HookError, HookResult, Migrations, M};
use std::path::Path;

/// Version 1: the store as it was before migrations (those stores have `user_version` 0 and
/// every table below; `IF NOT EXISTS` lets this step pass over them).
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('store_version', '1');
-- Every admitted event the store has accounted for, so each is applied once.
CREATE TABLE IF NOT EXISTS ledger (
    event_id TEXT PRIMARY KEY,
    user_id  TEXT NOT NULL,
    outcome  TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ledger_user ON ledger (user_id);
-- One row per (event, topic): the only trace of an item's content is its topic and score.
CREATE TABLE IF NOT EXISTS evidence (
    user_id     TEXT    NOT NULL,
    topic_id    INTEGER NOT NULL,
    event_id    TEXT    NOT NULL,
    product     TEXT    NOT NULL,
    captured_ms INTEGER NOT NULL,
    score       REAL    NOT NULL,
    PRIMARY KEY (user_id, topic_id, event_id)
) WITHOUT ROWID;
-- Events that failed (ids and reasons only), for `attune run --retry-failed`.
CREATE TABLE IF NOT EXISTS failures (
    event_id TEXT PRIMARY KEY,
    user_id  TEXT,
    message  TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS failures_user ON failures (user_id);
CREATE TABLE IF NOT EXISTS profiles (
    user_id   TEXT PRIMARY KEY,
    taxonomy  TEXT NOT NULL,
    model_set TEXT NOT NULL
) WITHOUT ROWID;
";

/// Version 2: users erased by `attune forget`, kept as a keyed hash of their id (HMAC-SHA256
/// with this store's own random key, `meta.suppression_key`), never the id itself, so the gate
/// can turn their events away until `attune unforget`. `meta.store_version` moves too, so a
/// build from before migrations refuses the store instead of ignoring the suppressions.
const SCHEMA_V2: &str = "
CREATE TABLE suppressions (
    user_hash BLOB    PRIMARY KEY,
    since_ms  INTEGER NOT NULL
) WITHOUT ROWID;
UPDATE meta SET value = '2' WHERE key = 'store_version';
";

/// Version 3: each evidence row says which kinds of part of its event the topic came from
/// (`words,picture`: [`attune_event::Source`]), for `attune explain`; rows from before say ''.
const SCHEMA_V3: &str = "
ALTER TABLE evidence ADD COLUMN sources TEXT NOT NULL DEFAULT '';
UPDATE meta SET value = '3' WHERE key = 'store_version';
";

/// Version 4: when a run last gave each profile new evidence (wall clock, ms), for incremental
/// exports (`attune export --since`); profiles from before say 0 (changed before any `--since`).
const SCHEMA_V4: &str = "
ALTER TABLE profiles ADD COLUMN changed_ms INTEGER NOT NULL DEFAULT 0;
CREATE INDEX profiles_changed ON profiles (changed_ms);
UPDATE meta SET value = '4' WHERE key = 'store_version';
";

/// The schema version this build writes: the number of migrations.
pub const STORE_VERSION: usize = 4;

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(SCHEMA_V1),
        M::up_with_hook(SCHEMA_V2, add_suppression_key),
        M::up(SCHEMA_V3),
        M::up(SCHEMA_V4),
    ])
}

/// A fresh random key for the suppression hashes, made once per store by the migration.
fn add_suppression_key(tx: &rusqlite::Transaction) -> HookResult {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| HookError::Hook(format!("no random key for the store: {e}")))?;
    tx.execute("INSERT INTO meta (key, value) VALUES ('suppression_key', ?1)", [hex(&key)])?;
    Ok(())
}

/// One writer at a time: an exclusive OS lock on `STORE.lock`, beside the store, held by a run
/// (and by `forget` and `unforget`) until it ends. The OS releases it when the process dies, so a
/// killed run leaves no stale lock. Readers (`export`, `explain`) take none: SQLite's WAL lets
/// them read while a run writes. The lock is not SQLite's own (closing any other descriptor of
/// the database file would drop SQLite's POSIX locks), and the file is never removed (removing a
/// lock file lets two processes each lock a different one).
pub struct StoreLock {
    _file: std::fs::File,
}

impl StoreLock {
    /// Take the store's lock, or fail at once with [`StoreError::Locked`] when another process
    /// holds it.
    pub fn acquire(store: &Path) -> Result<StoreLock, StoreError> {
        use std::io::{Read, Write};
        let mut name = store.as_os_str().to_owned();
        name.push(".lock");
        let path = std::path::PathBuf::from(name);
        let shown = path.display().to_string();
        let mut file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(
                |e| StoreError::Open { path: shown.clone(), message: format!("cannot open the lock file: {e}") },
            )?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => format!("lock {shown}"),
                    pid => format!("{pid}, lock {shown}"),
                };
                return Err(StoreError::Locked { path: store.display().to_string(), holder });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Open { path: shown, message: format!("cannot lock: {e}") })
            }
        }
        // Who holds it, for the message the next process prints; the lock does not depend on it.
        let _ = file.set_len(0).and_then(|()| writeln!(file, "pid {}", std::process::id()));
        Ok(StoreLock { _file: file })
    }
}

/// The embedded profile store: one SQLite file.
pub struct SqliteStore {
    conn: Connection,
    /// The key of the suppression hashes (`meta.suppression_key`).
    suppression_key: Vec<u8>,
}

impl SqliteStore {
    /// Open a store, creating it when `path` does not exist (only `attune run` should).
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Open { path: path.display().to_string(), message: e.to_string() })?;
        SqliteStore::init(conn, &path.display().to_string())
    }

    /// Open a store that must already exist: a mistyped path is an error, not a new empty store.
    pub fn open_existing(path: &Path) -> Result<SqliteStore, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Missing { path: path.display().to_string() });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| StoreError::Open { path: path.display().to_string(), message: e.to_string() })?;
        SqliteStore::init(conn, &path.display().to_string())
    }

    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        SqliteStore::init(Connection::open_in_memory()?, ":memory:")
    }

    fn init(mut conn: Connection, shown: &str) -> Result<SqliteStore, StoreError> {
        let open_err = |message: String| StoreError::Open { path: shown.to_string(), message };
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        let found: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > STORE_VERSION {
            return Err(open_err(format!("store version {found}, this build reads up to {STORE_VERSION}")));
        }
        migrations()
            .to_latest(&mut conn)
            .map_err(|e| open_err(format!("migrating to version {STORE_VERSION}: {e}")))?;
        let meta = |key: &str| -> Result<Option<String>, StoreError> {
            Ok(conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
        };
        let version = meta("store_version")?;
        if version.as_deref() != Some(&STORE_VERSION.to_string()) {
            return Err(open_err(format!("meta says store version {version:?}, the schema is {STORE_VERSION}")));
        }
        let suppression_key = meta("suppression_key")?
            .as_deref()
            .and_then(unhex)
            .filter(|k| k.len() == 32)
            .ok_or_else(|| StoreError::Corrupt("the suppression key is missing or malformed".into()))?;
        Ok(SqliteStore { conn, suppression_key })
    }

    /// The keyed hash a suppression is kept under: HMAC-SHA256(store key, user id).
    fn user_hash(&self, user_id: &str) -> [u8; 32] {
        user_hash(&self.suppression_key, user_id)
    }

    /// A user's recorded provenance (taxonomy version, model set), if a run gave them topics.
    fn provenance_of(&self, user_id: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT taxonomy, model_set FROM profiles WHERE user_id = ?1")?
            .query_row([user_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }
}

fn evidence_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, EvidenceRow)> {
    let (product, sources): (String, String) = (r.get(3)?, r.get(6)?);
    Ok((r.get(0)?, EvidenceRow::from_columns(r.get(1)?, r.get(2)?, &product, r.get(4)?, r.get(5)?, &sources)))
}

const EVIDENCE_COLUMNS: &str = "user_id, topic_id, event_id, product, captured_ms, score, sources";

impl ProfileStore for SqliteStore {
    fn own_key(&self) -> &[u8] {
        &self.suppression_key
    }

    fn recorded(&self, event_ids: &[&str]) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT 1 FROM ledger WHERE event_id = ?1")?;
        let mut found = Vec::new();
        for id in event_ids {
            if stmt.exists([id])? {
                found.push(id.to_string());
            }
        }
        Ok(found)
    }

    fn record(
        &mut self,
        records: &[EventRecord],
        failures: &[crate::FailedEvent],
        provenance: &Provenance,
    ) -> Result<Recorded, StoreError> {
        let tx = self.conn.transaction()?;
        let mut recorded = Recorded::default();
        upsert_failures(&tx, failures)?;
        {
            let mut ledger =
                tx.prepare_cached("INSERT OR IGNORE INTO ledger (event_id, user_id, outcome) VALUES (?1, ?2, ?3)")?;
            let mut evidence = tx.prepare_cached(
                "INSERT OR IGNORE INTO evidence (user_id, topic_id, event_id, product, captured_ms, score, sources)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut profile = tx.prepare_cached(
                "INSERT INTO profiles (user_id, taxonomy, model_set, changed_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (user_id) DO UPDATE SET taxonomy = excluded.taxonomy, model_set = excluded.model_set,
                 changed_ms = excluded.changed_ms",
            )?;
            let now_ms = chrono::Utc::now().timestamp_millis();
            let mut no_longer_failed = tx.prepare_cached("DELETE FROM failures WHERE event_id = ?1")?;
            for rec in records {
                if ledger.execute(params![rec.event_id, rec.user_id, rec.outcome.as_str()])? == 0 {
                    recorded.already.push(rec.event_id.clone()); // already applied: idempotent
                    continue;
                }
                no_longer_failed.execute([&rec.event_id])?;
                recorded.new += 1;
                let Some(delta) = &rec.delta else { continue };
                for t in &delta.topics {
                    let sources: Vec<&str> = t.sources.iter().map(|s| s.as_str()).collect();
                    evidence.execute(params![
                        delta.user_id,
                        t.topic.id(),
                        delta.event_id,
                        delta.product.as_str(),
                        delta.captured_at.timestamp_millis(),
                        t.score as f64,
                        sources.join(",")
                    ])?;
                }
                if !delta.topics.is_empty() {
                    profile.execute(params![delta.user_id, provenance.taxonomy, provenance.model_set, now_ms])?;
                }
            }
        }
        tx.commit()?;
        Ok(recorded)
    }

    fn profile(&self, user_id: &str, scoring: &Scoring) -> Result<Option<Profile>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {EVIDENCE_COLUMNS} FROM evidence WHERE user_id = ?1 ORDER BY topic_id, event_id"
        ))?;
        let rows =
            stmt.query_map([user_id], evidence_row)?.map(|r| r.map(|(_, row)| row)).collect::<Result<Vec<_>, _>>()?;
        assemble(user_id, &rows, || self.provenance_of(user_id), scoring)
    }

    fn for_each_profile(
        &self,
        scoring: &Scoring,
        sink: &mut dyn FnMut(Profile) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // One pass over the evidence in key order; only one user's rows are held at a time.
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {EVIDENCE_COLUMNS} FROM evidence ORDER BY user_id, topic_id, event_id"))?;
        let mut rows = stmt.query_map([], evidence_row)?;
        let mut current: Option<String> = None;
        let mut group: Vec<EvidenceRow> = Vec::new();
        loop {
            let next = rows.next().transpose()?;
            let boundary = match (&next, &current) {
                (Some((user, _)), Some(cur)) => user != cur,
                (None, Some(_)) => true,
                _ => false,
            };
            if boundary {
                let user = current.take().expect("boundary implies a current user");
                if let Some(p) = assemble(&user, &group, || self.provenance_of(&user), scoring)? {
                    sink(p)?;
                }
                group.clear();
            }
            match next {
                Some((user, row)) => {
                    current.get_or_insert(user);
                    group.push(row);
                }
                None => return Ok(()),
            }
        }
    }

    fn users_changed_since(&self, since: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT user_id FROM profiles WHERE changed_ms > ?1 ORDER BY user_id")?;
        let users = stmt.query_map([since.timestamp_millis()], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
        Ok(users)
    }

    fn explain(&self, user_id: &str) -> Result<Vec<TopicEvidence>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {EVIDENCE_COLUMNS} FROM evidence WHERE user_id = ?1 ORDER BY topic_id, captured_ms, event_id"
        ))?;
        let rows =
            stmt.query_map([user_id], evidence_row)?.map(|r| r.map(|(_, row)| row)).collect::<Result<Vec<_>, _>>()?;
        Ok(explain_rows(&rows))
    }

    fn record_failures(&mut self, failures: &[crate::FailedEvent]) -> Result<(), StoreError> {
        self.failures_impl(failures)
    }

    fn failed_events(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT event_id FROM failures ORDER BY event_id")?;
        let ids = stmt.query_map([], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
        Ok(ids)
    }

    fn forget(&mut self, user_id: &str) -> Result<Forgotten, StoreError> {
        let hash = self.user_hash(user_id);
        let now_ms = Utc::now().timestamp_millis();
        let tx = self.conn.transaction()?;
        // The suppression first, in the same transaction as the erasure: no moment where the
        // evidence is gone but a rerun could bring it back.
        let newly_suppressed = tx.execute(
            "INSERT OR IGNORE INTO suppressions (user_hash, since_ms) VALUES (?1, ?2)",
            params![&hash[..], now_ms],
        )? == 1;
        let evidence_rows = tx.execute("DELETE FROM evidence WHERE user_id = ?1", [user_id])?;
        let ledger_rows = tx.execute("DELETE FROM ledger WHERE user_id = ?1", [user_id])?;
        tx.execute("DELETE FROM profiles WHERE user_id = ?1", [user_id])?;
        tx.execute("DELETE FROM failures WHERE user_id = ?1", [user_id])?;
        tx.commit()?;
        Ok(Forgotten { evidence_rows, ledger_rows, already_forgotten: !newly_suppressed })
    }

    fn unforget(&mut self, user_id: &str) -> Result<bool, StoreError> {
        let hash = self.user_hash(user_id);
        Ok(self.conn.execute("DELETE FROM suppressions WHERE user_hash = ?1", [&hash[..]])? == 1)
    }

    fn forgotten_users(&self) -> Result<ForgottenUsers, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT user_hash FROM suppressions")?;
        let hashes = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))?
            .map(|h| {
                let h = h?;
                <[u8; 32]>::try_from(&h[..])
                    .map_err(|_| StoreError::Corrupt(format!("a suppression hash of {} bytes", h.len())))
            })
            .collect::<Result<_, _>>()?;
        Ok(ForgottenUsers::new(self.suppression_key.clone(), hashes))
    }
}

impl SqliteStore {
    fn failures_impl(&mut self, failures: &[crate::FailedEvent]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        upsert_failures(&tx, failures)?;
        tx.commit()?;
        Ok(())
    }
}

/// Keep failures (replacing an earlier message for the same id), in the caller's transaction.
fn upsert_failures(tx: &rusqlite::Transaction<'_>, failures: &[crate::FailedEvent]) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO failures (event_id, user_id, message) VALUES (?1, ?2, ?3)
         ON CONFLICT (event_id) DO UPDATE SET message = excluded.message,
             user_id = COALESCE(excluded.user_id, failures.user_id)",
    )?;
    for f in failures {
        stmt.execute(params![f.event_id, f.user_id, f.message])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::score;
    use crate::{DeltaTopic, LedgerOutcome, ProfileDelta};
    use attune_event::{Product, Source};
    use attune_taxonomy::Taxonomy;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn prov() -> Provenance {
        Provenance { taxonomy: Taxonomy::get().version().into(), model_set: "test-models".into() }
    }

    fn rec(event: &str, user: &str, at: &str, product: Product, topics: &[(u32, f32)]) -> EventRecord {
        let tax = Taxonomy::get();
        let topics: Vec<_> = topics
            .iter()
            .map(|(id, s)| DeltaTopic { topic: tax.allowed(*id).unwrap(), score: *s, sources: vec![Source::Words] })
            .collect();
        EventRecord {
            event_id: event.into(),
            user_id: user.into(),
            outcome: if topics.is_empty() { LedgerOutcome::NoTopic } else { LedgerOutcome::Tagged },
            delta: Some(ProfileDelta {
                event_id: event.into(),
                user_id: user.into(),
                product,
                captured_at: t(at),
                topics,
            }),
        }
    }

    fn scoring() -> Scoring {
        Scoring::as_of(t("2026-03-01T00:00:00Z"))
    }

    fn all(store: &SqliteStore) -> Vec<Profile> {
        let mut out = Vec::new();
        store
            .for_each_profile(&scoring(), &mut |p| {
                out.push(p);
                Ok(())
            })
            .unwrap();
        out
    }

    #[test]
    fn profiles_changed_since_are_those_a_later_run_gave_evidence_to() {
        let mut s = SqliteStore::open_in_memory().unwrap();
        s.record(&[rec("e1", "u1", "2026-01-10T00:00:00Z", Product::Assistant, &[(725, 0.5)])], &[], &prov()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let between = Utc::now();
        std::thread::sleep(std::time::Duration::from_millis(5));
        // Captured long ago (a backfill), written now: it counts as changed now.
        let late = [
            rec("e2", "u2", "2025-12-20T00:00:00Z", Product::Glasses, &[(725, 0.6)]),
            rec("e3", "u3", "2026-01-11T00:00:00Z", Product::Assistant, &[]),
        ];
        s.record(&late, &[], &prov()).unwrap();
        assert_eq!(s.users_changed_since(between).unwrap(), ["u2"], "u3 gave no topic: no profile changed");
        assert_eq!(s.users_changed_since(t("2020-01-01T00:00:00Z")).unwrap(), ["u1", "u2"]);
        assert!(s.users_changed_since(Utc::now()).unwrap().is_empty());
    }

    fn batch() -> Vec<EventRecord> {
        vec![
            rec("e1", "u1", "2026-01-10T00:00:00Z", Product::Assistant, &[(725, 0.5), (719, 0.4)]),
            rec("e2", "u1", "2026-02-10T00:00:00Z", Product::Glasses, &[(725, 0.6)]),
            rec("e3", "u2", "2026-02-20T00:00:00Z", Product::Assistant, &[(422, 0.45)]),
            rec("e4", "u2", "2026-02-21T00:00:00Z", Product::Assistant, &[]),
        ]
    }

    #[test]
    fn merge_is_idempotent_and_order_independent() {
        let mut once = SqliteStore::open_in_memory().unwrap();
        assert_eq!(once.record(&batch(), &[], &prov()).unwrap(), Recorded { new: 4, already: vec![] });
        let mut twice = SqliteStore::open_in_memory().unwrap();
        twice.record(&batch(), &[], &prov()).unwrap();
        assert_eq!(twice.record(&batch(), &[], &prov()).unwrap().new, 0);
        let mut reversed = SqliteStore::open_in_memory().unwrap();
        let mut b = batch();
        b.reverse();
        reversed.record(&b[..2], &[], &prov()).unwrap();
        reversed.record(&b[2..], &[], &prov()).unwrap();
        assert_eq!(all(&once), all(&twice));
        assert_eq!(all(&once), all(&reversed));
        assert_eq!(all(&once).len(), 2);
    }

    #[test]
    fn scores_decay_and_evidence_is_counted() {
        let mut s = SqliteStore::open_in_memory().unwrap();
        s.record(&batch(), &[], &prov()).unwrap();
        let p = s.profile("u1", &scoring()).unwrap().unwrap();
        let camping = p.topics.iter().find(|t| t.id.id() == 725).unwrap();
        assert_eq!(camping.evidence, 2);
        assert_eq!(camping.products, vec![Product::Glasses, Product::Assistant]);
        let explained = s.explain("u1").unwrap();
        assert!(explained.iter().flat_map(|t| &t.events).all(|e| e.sources == [Source::Words]));
        assert_eq!(camping.first_seen, t("2026-01-10T00:00:00Z"));
        assert_eq!(camping.last_seen, t("2026-02-10T00:00:00Z"));
        // 0.5 × 0.5^(50/30) + 0.6 × 0.5^(19/30)
        let w = 0.5 * 0.5f64.powf(50.0 / 30.0) + 0.6 * 0.5f64.powf(19.0 / 30.0);
        assert!((camping.score - (1.0 - (-w).exp())).abs() < 1e-4);
        assert_eq!(p.topics[0].id.id(), 725, "strongest first");
        assert_eq!(p.updated_at, t("2026-02-10T00:00:00Z"));
        assert_eq!(p.model_set, "test-models");
        // A later as-of gives lower scores.
        let later = Scoring { as_of: t("2026-09-01T00:00:00Z"), ..scoring() };
        let p2 = s.profile("u1", &later).unwrap().unwrap();
        assert!(p2.topics[0].score < p.topics[0].score);
    }

    #[test]
    fn forget_erases_profile_evidence_and_ledger() {
        let mut s = SqliteStore::open_in_memory().unwrap();
        s.record(&batch(), &[], &prov()).unwrap();
        let f = s.forget("u1").unwrap();
        assert_eq!(f, Forgotten { evidence_rows: 3, ledger_rows: 2, already_forgotten: false });
        assert!(s.profile("u1", &scoring()).unwrap().is_none());
        assert!(s.explain("u1").unwrap().is_empty());
        assert!(s.recorded(&["e1", "e2", "e3"]).unwrap() == vec!["e3".to_string()]);
        assert_eq!(all(&s).len(), 1);
    }

    #[test]
    fn forget_lasts_until_unforget_and_keeps_no_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sqlite");
        let mut s = SqliteStore::open(&path).unwrap();
        s.record(&batch(), &[], &prov()).unwrap();
        assert!(s.forgotten_users().unwrap().is_empty());
        s.forget("u1").unwrap();
        assert!(s.forget("u1").unwrap().already_forgotten);
        drop(s);
        // It lasts: a store opened again still knows, and only by a keyed hash.
        let mut s = SqliteStore::open(&path).unwrap();
        let forgotten = s.forgotten_users().unwrap();
        assert!(forgotten.contains("u1"));
        assert!(!forgotten.contains("u2") && !forgotten.contains("u1 ") && !forgotten.contains(""));
        let hashes: Vec<Vec<u8>> = s
            .conn
            .prepare("SELECT user_hash FROM suppressions")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(hashes.len(), 1);
        assert_eq!(hashes[0].len(), 32);
        assert!(!hashes[0].windows(2).any(|w| w == b"u1"), "the id itself is kept");
        // Another store has another key: the same user hashes differently there.
        let mut other = SqliteStore::open_in_memory().unwrap();
        other.forget("u1").unwrap();
        let other_hash: Vec<u8> = other.conn.query_row("SELECT user_hash FROM suppressions", [], |r| r.get(0)).unwrap();
        assert_ne!(other_hash, hashes[0]);
        // Un-forgotten: the user's events count again; nothing erased came back.
        assert!(s.unforget("u1").unwrap());
        assert!(!s.unforget("u1").unwrap());
        assert!(!s.forgotten_users().unwrap().contains("u1"));
        assert!(s.profile("u1", &scoring()).unwrap().is_none());
        s.record(&batch(), &[], &prov()).unwrap();
        assert!(s.profile("u1", &scoring()).unwrap().is_some());
    }

    /// A store written before migrations (`user_version` 0, `store_version` 1) opens, keeps its
    /// profiles and gains the suppressions; one from a newer build is refused.
    #[test]
    fn stores_from_before_migrations_are_brought_up_to_date() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.execute(
                "INSERT INTO evidence (user_id, topic_id, event_id, product, captured_ms, score)
                 VALUES ('u1', 725, 'e1', 'assistant', 1770000000000, 0.5)",
                [],
            )
            .unwrap();
            conn.execute("INSERT INTO ledger VALUES ('e1', 'u1', 'tagged')", []).unwrap();
            let v: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
            assert_eq!(v, 0);
        }
        let mut s = SqliteStore::open(&path).unwrap();
        let v: usize = s.conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, STORE_VERSION);
        assert_eq!(s.profile("u1", &scoring()).unwrap().unwrap().topics[0].id.id(), 725);
        assert_eq!(s.recorded(&["e1"]).unwrap(), ["e1"]);
        // Evidence from before sources were recorded explains with none.
        assert!(s.explain("u1").unwrap()[0].events[0].sources.is_empty());
        s.forget("u1").unwrap();
        assert!(s.forgotten_users().unwrap().contains("u1"));
        let key: String =
            s.conn.query_row("SELECT value FROM meta WHERE key = 'suppression_key'", [], |r| r.get(0)).unwrap();
        drop(s);
        // Opening again migrates nothing and keeps the key.
        let s = SqliteStore::open(&path).unwrap();
        assert!(s.forgotten_users().unwrap().contains("u1"));
        let again: String =
            s.conn.query_row("SELECT value FROM meta WHERE key = 'suppression_key'", [], |r| r.get(0)).unwrap();
        assert_eq!(key, again);
        s.conn.pragma_update(None, "user_version", STORE_VERSION + 1).unwrap();
        drop(s);
        let err = SqliteStore::open(&path).err().expect("a newer store is refused").to_string();
        assert!(err.contains("this build reads up to"), "{err}");
    }

    #[test]
    fn one_lock_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("p.sqlite");
        let held = StoreLock::acquire(&store).unwrap();
        let err = StoreLock::acquire(&store).err().expect("a second holder").to_string();
        assert!(err.contains("in use") && err.contains(&format!("pid {}", std::process::id())), "{err}");
        drop(held);
        StoreLock::acquire(&store).unwrap();
    }

    #[test]
    fn open_existing_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.sqlite");
        let err = SqliteStore::open_existing(&path).err().expect("missing store").to_string();
        assert!(err.contains("does not exist"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "something was created");
        SqliteStore::open(&path).unwrap();
        SqliteStore::open_existing(&path).unwrap();
    }

    fn profile_schema() -> jsonschema::Validator {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/attune.profile.v1.json");
        let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        jsonschema::draft202012::options().should_validate_formats(true).build(&schema).unwrap()
    }

    /// The schema's errors for a profile, as lines (empty: valid).
    fn schema_errors(validator: &jsonschema::Validator, profile: &Profile) -> Vec<String> {
        let json = serde_json::to_value(profile).unwrap();
        validator.iter_errors(&json).map(|e| format!("{} at {}", e, e.instance_path())).collect()
    }

    /// 80 chats on one topic, all of today: the score stays below 1 and the profile is valid
    /// against `schemas/attune.profile.v1.json` (it was `1.0`, which the schema forbids).
    #[test]
    fn eighty_events_on_one_topic_score_below_one_and_match_the_schema() {
        let validator = profile_schema();
        let mut s = SqliteStore::open_in_memory().unwrap();
        let records: Vec<_> = (0..80)
            .map(|i| rec(&format!("e{i}"), "u1", "2026-02-28T12:00:00Z", Product::Assistant, &[(725, 0.55)]))
            .collect();
        s.record(&records, &[], &prov()).unwrap();
        let p = s.profile("u1", &scoring()).unwrap().unwrap();
        assert_eq!(p.topics[0].evidence, 80);
        assert!(p.topics[0].score < 1.0, "score {}", p.topics[0].score);
        assert_eq!(p.topics[0].score, 0.9999);
        assert_eq!(schema_errors(&validator, &p), Vec::<String>::new());
        let line = serde_json::to_string(&p).unwrap();
        assert!(line.contains(r#""score":0.9999"#), "{line}");
        for other in all(&s) {
            assert_eq!(schema_errors(&validator, &other), Vec::<String>::new());
        }
    }

    #[test]
    fn scores_stay_below_one_and_never_fall_as_evidence_grows() {
        let mut previous = 0.0;
        for step in 0..=4000 {
            let weight = step as f64 * 0.025; // 0 … 100
            let s = score(weight);
            assert!((0.0..1.0).contains(&s), "weight {weight}: {s}");
            assert!(s >= previous, "weight {weight}: {s} < {previous}");
            assert!((s - (1.0 - (-weight).exp())).abs() <= 1e-4 + 1e-12, "weight {weight}: {s}");
            previous = s;
        }
        assert_eq!(score(f64::INFINITY), 0.9999);
        assert_eq!(score(0.0), 0.0);
        assert_eq!(score(1e-9), 0.0);
    }

    /// `as_of` is a point in time: evidence captured later is left out, and so is a user with
    /// none by then (it used to count at full weight, the future leaking into a backfill).
    #[test]
    fn evidence_after_as_of_is_left_out() {
        let mut s = SqliteStore::open_in_memory().unwrap();
        s.record(&batch(), &[], &prov()).unwrap();
        let jan20 = Scoring::as_of(t("2026-01-20T00:00:00Z"));
        let p = s.profile("u1", &jan20).unwrap().unwrap();
        let camping = p.topics.iter().find(|t| t.id.id() == 725).unwrap();
        assert_eq!(camping.evidence, 1, "e2 (2026-02-10) is after as-of");
        assert_eq!(camping.products, vec![Product::Assistant]);
        assert_eq!(camping.last_seen, t("2026-01-10T00:00:00Z"));
        assert_eq!(p.updated_at, t("2026-01-10T00:00:00Z"));
        assert_eq!(camping.score, score(0.5 * 0.5f64.powf(10.0 / 30.0)));
        assert!(s.profile("u2", &jan20).unwrap().is_none(), "u2's evidence is all after as-of");
        let mut users = Vec::new();
        s.for_each_profile(&jan20, &mut |p| {
            users.push(p.user_id);
            Ok(())
        })
        .unwrap();
        assert_eq!(users, ["u1"]);
        assert!(s.profile("u1", &Scoring::as_of(t("2026-01-01T00:00:00Z"))).unwrap().is_none());
    }

    /// Topics that decayed to 0.0000 are not exported by default; `min_score` and `top_k` trim
    /// the rest.
    #[test]
    fn min_score_and_top_k_trim_topics() {
        let mut s = SqliteStore::open_in_memory().unwrap();
        s.record(&batch(), &[], &prov()).unwrap();
        let years_later = Scoring::as_of(t("2030-01-01T00:00:00Z"));
        assert!(s.profile("u1", &years_later).unwrap().is_none(), "decayed to 0.0000, still exported");
        let all = s.profile("u1", &Scoring { min_score: 0.0, ..years_later }).unwrap().unwrap();
        assert!(all.topics.iter().all(|t| t.score == 0.0) && all.topics.len() == 2);
        let strong = scoring();
        let p = s.profile("u1", &strong).unwrap().unwrap();
        assert_eq!(p.topics.len(), 2);
        let (first, second) = (p.topics[0].score, p.topics[1].score);
        let top = s.profile("u1", &Scoring { top_k: Some(1), ..strong }).unwrap().unwrap();
        assert_eq!(top.topics.len(), 1);
        assert_eq!(top.topics[0].score, first);
        let above = s.profile("u1", &Scoring { min_score: second + 0.0001, ..strong }).unwrap().unwrap();
        assert_eq!(above.topics.len(), 1);
        let at = s.profile("u1", &Scoring { min_score: second, ..strong }).unwrap().unwrap();
        assert_eq!(at.topics.len(), 2, "min_score keeps a topic at exactly that score");
    }

    #[test]
    fn explain_lists_events_and_products_per_topic() {
        let mut s = SqliteStore::open_in_memory().unwrap();
        s.record(&batch(), &[], &prov()).unwrap();
        let e = s.explain("u1").unwrap();
        let camping = e.iter().find(|t| t.topic_id == "725").unwrap();
        let ids: Vec<_> = camping.events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["e1", "e2"]);
    }

    #[test]
    fn a_sensitive_row_written_behind_the_store_is_never_exported() {
        let mut s = SqliteStore::open_in_memory().unwrap();
        s.record(&batch(), &[], &prov()).unwrap();
        // 466 is Medical Health: no AllowedTopic can name it, so plant it with raw SQL.
        s.conn
            .execute(
                "INSERT INTO evidence (user_id, topic_id, event_id, product, captured_ms, score) VALUES ('u1', 466, 'x', 'assistant', 0, 0.9)",
                [],
            )
            .unwrap();
        let p = s.profile("u1", &scoring()).unwrap().unwrap();
        assert!(p.topics.iter().all(|t| t.id.id() != 466));
        assert!(s.explain("u1").unwrap().iter().all(|t| t.topic_id != "466"));
    }

    #[test]
    fn failures_are_kept_until_the_event_succeeds() {
        let mut s = SqliteStore::open_in_memory().unwrap();
        let failed = |id: &str, user: Option<&str>| crate::FailedEvent {
            event_id: id.into(),
            user_id: user.map(String::from),
            message: "boom".into(),
        };
        s.record_failures(&[failed("e1", Some("u1")), failed("x", None), failed("e9", Some("u9"))]).unwrap();
        assert_eq!(s.failed_events().unwrap(), ["e1", "e9", "x"]);
        s.record(&batch(), &[], &prov()).unwrap(); // e1 succeeds now
        assert_eq!(s.failed_events().unwrap(), ["e9", "x"]);
        s.forget("u9").unwrap();
        assert_eq!(s.failed_events().unwrap(), ["x"]);
    }

    /// A batch's failures are kept in the batch's own transaction.
    #[test]
    fn a_batch_keeps_its_failures_with_its_events() {
        let mut s = SqliteStore::open_in_memory().unwrap();
        let failed = crate::FailedEvent { event_id: "f1".into(), user_id: Some("u1".into()), message: "boom".into() };
        s.record(&batch(), std::slice::from_ref(&failed), &prov()).unwrap();
        assert_eq!(s.failed_events().unwrap(), ["f1"]);
        assert_eq!(s.recorded(&["e1", "f1"]).unwrap(), ["e1"]);
        s.forget("u1").unwrap();
        assert!(s.failed_events().unwrap().is_empty());
    }

    #[test]
    fn store_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sqlite");
        SqliteStore::open(&path).unwrap().record(&batch(), &[], &prov()).unwrap();
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(all(&s).len(), 2);
        assert_eq!(s.recorded(&["e4", "nope"]).unwrap(), vec!["e4".to_string()]);
    }
}
