//! Where the profile store stops: ledger and evidence rows written per second, one transaction
//! per batch of 512 events (two topics each, as a tagged chat has), by 1, 2 and 4 writers at
//! once; PostgreSQL (a throwaway cluster on loopback with `fsync=off`, so this is the server's
//! CPU work, not a disk's) beside SQLite (one writer). `cargo bench -p attune-benches --bench
//! store` prints the table; docs/distributed.md uses it.

use attune_event::{Product, Source};
use attune_profile::throwaway::ThrowawayCluster;
use attune_profile::{
    DeltaTopic, EventRecord, LedgerOutcome, PostgresStore, ProfileDelta, ProfileStore, Provenance, SqliteStore,
};
use attune_taxonomy::Taxonomy;
use std::time::Instant;

const BATCH: usize = 512;
const EVENTS_PER_WRITER: usize = 20_480;
const TOPICS: [u32; 6] = [725, 483, 446, 591, 534, 680];

fn records(writer: usize, batch: usize) -> Vec<EventRecord> {
    let tax = Taxonomy::get();
    let captured = chrono::DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z").unwrap().to_utc();
    (0..BATCH)
        .map(|i| {
            let n = batch * BATCH + i;
            let (event, user) = (format!("w{writer}-e{n:08}"), format!("user-{:07}", (n * 7919 + writer) % 1_000_000));
            let topics = (0..2)
                .map(|k| DeltaTopic {
                    topic: tax.allowed(TOPICS[(n + k) % TOPICS.len()]).unwrap(),
                    score: 0.5,
                    sources: vec![Source::Words],
                })
                .collect();
            EventRecord {
                event_id: event.clone(),
                user_id: user.clone(),
                outcome: LedgerOutcome::Tagged,
                delta: Some(ProfileDelta {
                    event_id: event,
                    user_id: user,
                    product: Product::Assistant,
                    captured_at: captured,
                    topics,
                }),
            }
        })
        .collect()
}

fn provenance() -> Provenance {
    Provenance { taxonomy: Taxonomy::get().version().into(), model_set: "bench".into() }
}

/// Events per second written by `writers` stores at once (each `EVENTS_PER_WRITER` events).
fn load(writers: usize, open: &(dyn Fn() -> Box<dyn ProfileStore> + Sync)) -> f64 {
    let batches: Vec<Vec<Vec<EventRecord>>> =
        (0..writers).map(|w| (0..EVENTS_PER_WRITER / BATCH).map(|b| records(w, b)).collect()).collect();
    let started = Instant::now();
    std::thread::scope(|s| {
        for mine in &batches {
            s.spawn(move || {
                let mut store = open();
                for batch in mine {
                    assert_eq!(store.record(batch, &[], &provenance()).unwrap().new, BATCH);
                }
            });
        }
    });
    (writers * EVENTS_PER_WRITER) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument that is not ours means another bench was asked for.
    if std::env::args().skip(1).any(|a| !a.starts_with("--") && a != "store") {
        return;
    }
    println!("| store | writers | events/s | evidence rows/s | ledger + evidence rows/s |");
    println!("|---|---|---|---|---|");
    let row = |name: &str, writers: usize, events: f64| {
        println!("| {name} | {writers} | {events:.0} | {:.0} | {:.0} |", events * 2.0, events * 3.0);
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.sqlite");
    row("SQLite (WAL, synchronous=NORMAL)", 1, load(1, &|| Box::new(SqliteStore::open(&path).unwrap())));
    let cluster = ThrowawayCluster::start().expect("PostgreSQL (just setup-postgres)");
    for writers in [1, 2, 4] {
        let url = cluster.create_database(&format!("bench{writers}")).unwrap();
        let events = load(writers, &|| Box::new(PostgresStore::open(&url).unwrap()));
        row("PostgreSQL 15, loopback, fsync off", writers, events);
    }
}
