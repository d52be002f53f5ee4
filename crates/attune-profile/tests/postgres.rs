//! The PostgreSQL store against a real server (a throwaway cluster on loopback, `just
//! setup-postgres`): it keeps the `ProfileStore` contract the SQLite store keeps, and exports the
//! same bytes for the same batches.

use attune_event::{Product, Source};
use attune_profile::throwaway::ThrowawayCluster;
use attune_profile::{
    DeltaTopic, EventRecord, FailedEvent, LedgerOutcome, OpenMode, PostgresStore, Profile, ProfileDelta, ProfileStore,
    Provenance, Scoring, SqliteStore, StoreAddress,
};
use attune_taxonomy::Taxonomy;
use chrono::{DateTime, Utc};

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
        .map(|(id, s)| DeltaTopic {
            topic: tax.allowed(*id).unwrap(),
            score: *s,
            sources: vec![Source::Words, Source::Picture],
        })
        .collect();
    EventRecord {
        event_id: event.into(),
        user_id: user.into(),
        outcome: if topics.is_empty() { LedgerOutcome::NoTopic } else { LedgerOutcome::Tagged },
        delta: Some(ProfileDelta { event_id: event.into(), user_id: user.into(), product, captured_at: t(at), topics }),
    }
}

/// Users whose ids sort differently byte-wise and in a locale's collation ("B" < "a" < "é").
fn batches() -> Vec<Vec<EventRecord>> {
    vec![
        vec![
            rec("e1", "a-user", "2026-01-10T00:00:00Z", Product::Assistant, &[(725, 0.5), (483, 0.31)]),
            rec("e2", "Big-user", "2026-02-10T00:00:00Z", Product::Glasses, &[(725, 0.6)]),
            rec("e3", "éclair", "2026-01-11T00:00:00Z", Product::Vibes, &[]),
        ],
        vec![
            rec("e4", "a-user", "2026-02-20T08:30:00.123Z", Product::Imagine, &[(725, 0.42)]),
            // Delivered again in a later batch, with other content: the first stays.
            rec("e1", "a-user", "2026-01-10T00:00:00Z", Product::Assistant, &[(483, 0.99)]),
            rec("e5", "éclair", "2026-02-01T00:00:00Z", Product::Assistant, &[(483, 0.7)]),
        ],
    ]
}

fn export(store: &dyn ProfileStore, scoring: &Scoring) -> String {
    let mut out = String::new();
    store
        .for_each_profile(scoring, &mut |p: Profile| {
            out.push_str(&serde_json::to_string(&p).unwrap());
            out.push('\n');
            Ok(())
        })
        .unwrap();
    out
}

fn scoring() -> Scoring {
    Scoring::as_of(t("2026-03-01T00:00:00Z"))
}

/// One cluster for every case (starting one takes a second or two); each case has its own database.
#[test]
fn the_postgres_store_keeps_the_store_contract() {
    let cluster = ThrowawayCluster::start().expect("a throwaway PostgreSQL cluster (just setup-postgres)");
    same_bytes_as_sqlite(&cluster);
    redelivery_and_concurrent_writers_apply_each_event_once(&cluster);
    forget_lasts_and_keeps_no_id(&cluster);
    failures_are_kept_until_the_event_succeeds(&cluster);
    only_run_creates_a_store(&cluster);
}

fn same_bytes_as_sqlite(cluster: &ThrowawayCluster) {
    let url = cluster.create_database("same_bytes").unwrap();
    let mut pg = PostgresStore::open(&url).unwrap();
    let mut lite = SqliteStore::open_in_memory().unwrap();
    for batch in batches() {
        assert_eq!(pg.record(&batch, &[], &prov()).unwrap(), lite.record(&batch, &[], &prov()).unwrap());
    }
    let (a, b) = (export(&pg, &scoring()), export(&lite, &scoring()));
    assert_eq!(a, b);
    assert_eq!(a.lines().count(), 3, "{a}");
    assert!(a.lines().next().unwrap().contains("\"Big-user\""), "byte order, not the locale's: {a}");
    // Also as of a past date, trimmed, and per user.
    let trimmed = Scoring { top_k: Some(1), ..Scoring::as_of(t("2026-02-05T00:00:00Z")) };
    assert_eq!(export(&pg, &trimmed), export(&lite, &trimmed));
    for user in ["a-user", "Big-user", "éclair", "nobody"] {
        let (p, l) = (pg.profile(user, &scoring()).unwrap(), lite.profile(user, &scoring()).unwrap());
        assert_eq!(serde_json::to_string(&p).unwrap(), serde_json::to_string(&l).unwrap());
        let (p, l) = (pg.explain(user).unwrap(), lite.explain(user).unwrap());
        assert_eq!(serde_json::to_string(&p).unwrap(), serde_json::to_string(&l).unwrap());
    }
    assert_eq!(pg.recorded(&["e5", "zz", "e1"]).unwrap(), ["e5", "e1"]);
    let since = t("2020-01-01T00:00:00Z");
    assert_eq!(pg.users_changed_since(since).unwrap(), lite.users_changed_since(since).unwrap());
    assert!(pg.users_changed_since(Utc::now() + chrono::Duration::hours(1)).unwrap().is_empty());
    // Opened again by another worker: the same key, the same data.
    let again = PostgresStore::open(&url).unwrap();
    assert_eq!(again.own_key(), pg.own_key());
    assert_eq!(export(&again, &scoring()), a);
}

fn redelivery_and_concurrent_writers_apply_each_event_once(cluster: &ThrowawayCluster) {
    let url = cluster.create_database("once").unwrap();
    let records: Vec<EventRecord> = (0..400)
        .map(|i| {
            rec(&format!("e{i:03}"), &format!("u{}", i % 7), "2026-02-01T00:00:00Z", Product::Assistant, &[(725, 0.5)])
        })
        .collect();
    // Four workers given overlapping batches in different orders, at once.
    let new: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|w| {
                let url = url.clone();
                let records = &records;
                s.spawn(move || {
                    let mut store = PostgresStore::open(&url).unwrap();
                    let mut new = 0;
                    let mut mine: Vec<EventRecord> = records.clone();
                    if w % 2 == 1 {
                        mine.reverse();
                    }
                    for chunk in mine.chunks(32 + w * 7) {
                        let recorded = store.record(chunk, &[], &prov()).unwrap();
                        // Each of the chunk's events was applied here or is named as not.
                        assert_eq!(recorded.new + recorded.already.len(), chunk.len());
                        new += recorded.new;
                    }
                    new
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(new, 400, "each event applied by exactly one worker");
    let store = PostgresStore::open(&url).unwrap();
    let mut lite = SqliteStore::open_in_memory().unwrap();
    lite.record(&records, &[], &prov()).unwrap();
    assert_eq!(export(&store, &scoring()), export(&lite, &scoring()));
}

fn forget_lasts_and_keeps_no_id(cluster: &ThrowawayCluster) {
    let url = cluster.create_database("forget").unwrap();
    let mut s = PostgresStore::open(&url).unwrap();
    for batch in batches() {
        s.record(&batch, &[], &prov()).unwrap();
    }
    let f = s.forget("a-user").unwrap();
    assert_eq!((f.evidence_rows, f.ledger_rows, f.already_forgotten), (3, 2, false));
    assert!(s.forget("a-user").unwrap().already_forgotten);
    drop(s);
    let mut s = PostgresStore::open_existing(&url).unwrap();
    let forgotten = s.forgotten_users().unwrap();
    assert!(forgotten.contains("a-user") && !forgotten.contains("Big-user"));
    assert!(s.profile("a-user", &scoring()).unwrap().is_none());
    let mut raw = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let hashes: Vec<Vec<u8>> =
        raw.query("SELECT user_hash FROM attune.suppressions", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(hashes.len(), 1);
    assert_eq!(hashes[0].len(), 32);
    assert!(!hashes[0].windows(6).any(|w| w == b"a-user"), "the id itself is kept");
    // A sensitive row planted behind the store never reaches an export (466: Medical Health).
    raw.execute(
        "INSERT INTO attune.evidence (user_id, topic_id, event_id, product, captured_ms, score) VALUES ('Big-user', 466, 'x', 'assistant', 0, 0.9)",
        &[],
    )
    .unwrap();
    assert!(!export(&s, &scoring()).contains("\"466\""));
    assert!(s.unforget("a-user").unwrap());
    assert!(!s.unforget("a-user").unwrap());
    assert!(s.forgotten_users().unwrap().is_empty());
}

fn failures_are_kept_until_the_event_succeeds(cluster: &ThrowawayCluster) {
    let url = cluster.create_database("failures").unwrap();
    let mut s = PostgresStore::open(&url).unwrap();
    let failed = |id: &str, user: Option<&str>, message: &str| FailedEvent {
        event_id: id.into(),
        user_id: user.map(String::from),
        message: message.into(),
    };
    s.record_failures(&[
        failed("e1", Some("a-user"), "boom"),
        failed("x", None, "bad line"),
        failed("e9", Some("u9"), "boom"),
    ])
    .unwrap();
    s.record_failures(&[failed("x", None, "again"), failed("x", None, "last")]).unwrap();
    assert_eq!(s.failed_events().unwrap(), ["e1", "e9", "x"]);
    // e1 succeeds now, and the batch keeps its own failure in the same transaction.
    s.record(&batches()[0], &[failed("f1", Some("u9"), "decoder crashed")], &prov()).unwrap();
    assert_eq!(s.failed_events().unwrap(), ["e9", "f1", "x"]);
    s.record_failures(&[]).unwrap();
    s.forget("u9").unwrap();
    assert_eq!(s.failed_events().unwrap(), ["x"]);
}

fn only_run_creates_a_store(cluster: &ThrowawayCluster) {
    let url = cluster.create_database("empty").unwrap();
    let address = StoreAddress::parse(&url);
    assert_eq!(address, StoreAddress::Postgres(url.clone()));
    let err = address.open(OpenMode::MustExist, false).err().expect("no schema yet").to_string();
    assert!(err.contains("does not exist"), "{err}");
    let opened = address.open(OpenMode::CreateIfMissing, true).unwrap();
    assert!(opened.lock.is_none(), "PostgreSQL takes many writers");
    address.open(OpenMode::MustExist, false).unwrap();
    // Passwords stay out of messages.
    let shown = StoreAddress::parse("postgresql://worker:s3cret@db.internal:5432/profiles").shown();
    assert_eq!(shown, "postgresql://worker@db.internal:5432/profiles");
    let unreachable = StoreAddress::parse("postgresql://worker:s3cret@127.0.0.1:1/profiles");
    let err = unreachable.open(OpenMode::MustExist, false).err().expect("nothing listens on port 1").to_string();
    assert!(!err.contains("s3cret") && err.contains("cannot connect"), "{err}");
}
