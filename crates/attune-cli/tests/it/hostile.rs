//! The hostile-input corpus (`fixtures/hostile/`, made by `fixtures/make_hostile.py`) in one batch:
//! every case ends as `expected.json` says — a clear failure of its own event, a skip, or
//! processed — the run exits 0, the report's buckets add up, and every good event interleaved
//! with the hostile ones lands in the store with its interest.
//!
//! `cargo test -p attune-cli --test it hostile:: -- --nocapture` prints a table of case → outcome.

use crate::common;

use attune_profile::{ProfileStore, SqliteStore};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};

/// What happened to one report id, as the report and the store tell it.
enum Outcome {
    Failed(String),
    /// In the ledger and not failed: processed (with or without topics) or dropped as sensitive.
    Recorded,
    /// Neither failed nor recorded: skipped before decoding.
    Skipped,
}

impl Outcome {
    fn show(&self) -> String {
        match self {
            Outcome::Failed(m) => format!("failed: {m}"),
            Outcome::Recorded => "processed".into(),
            Outcome::Skipped => "skipped".into(),
        }
    }
}

#[test]
fn hostile_corpus_fails_case_by_case_and_good_events_land() {
    let dir = common::root().join("fixtures/hostile");
    let (manifest, expected_file) = (dir.join("manifest.jsonl"), dir.join("expected.json"));
    assert!(
        manifest.exists() && expected_file.exists(),
        "{} missing: run `python3 fixtures/make_hostile.py` (after fixtures/make_images.py and fixtures/make_audio.py; \
         `just fixtures-media` runs them all)",
        dir.display()
    );
    let expected: Map<String, Value> = serde_json::from_str(&std::fs::read_to_string(&expected_file).unwrap()).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("hostile.sqlite");
    let report = common::run_manifest_with(
        &manifest,
        &store,
        &[std::ffi::OsStr::new("--policy"), dir.join("policy.toml").as_os_str()],
    );

    let failed = common::failures(&report);
    let ids: Vec<&str> = expected.keys().map(String::as_str).collect();
    let recorded: HashSet<String> = SqliteStore::open(&store).unwrap().recorded(&ids).unwrap().into_iter().collect();
    let mut users: Vec<&str> = expected.values().filter_map(|e| e["user"].as_str()).collect();
    users.sort();
    users.dedup();
    let evidence = common::evidence(&store, &users);

    let mut problems = Vec::new();
    let mut skips_expected: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut recorded_count, mut good_count) = (0u64, 0usize);
    println!("{:<26} {:<34} {:<64} case", "id", "expected", "outcome");
    for (id, want) in &expected {
        let outcome = match (failed.get(id), recorded.contains(id)) {
            (Some(message), false) => Outcome::Failed(message.clone()),
            (None, true) => Outcome::Recorded,
            (None, false) => Outcome::Skipped,
            (Some(message), true) => {
                problems.push(format!("{id}: both failed ({message}) and recorded"));
                Outcome::Failed(message.clone())
            }
        };
        let (shown, ok) = if let Some(part) = want["fail"].as_str() {
            let shown = if part.is_empty() { "any clean failure".into() } else { format!("fail ~ {part}") };
            (shown, matches!(&outcome, Outcome::Failed(m) if m.contains(part)))
        } else if want["processed"] == true {
            ("processed".into(), matches!(outcome, Outcome::Recorded))
        } else if want["processed_or_fail"] == true {
            ("processed or a clean failure".into(), !matches!(outcome, Outcome::Skipped))
        } else if let Some(reason) = want["skipped"].as_str() {
            *skips_expected.entry(reason).or_default() += 1;
            (format!("skipped: {reason}"), matches!(outcome, Outcome::Skipped))
        } else {
            panic!("{id}: unknown expectation {want}");
        };
        if matches!(outcome, Outcome::Recorded) {
            recorded_count += 1;
        }
        if !ok {
            problems.push(format!("{id} ({}): expected {shown}, got {}", want["case"], outcome.show()));
        }
        if want["good"] == true {
            good_count += 1;
            let topics: Vec<&str> = want["topics"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
            let got = evidence.get(id).cloned().unwrap_or_default();
            if !got.iter().any(|t| topics.contains(&t.as_str())) {
                problems
                    .push(format!("{id} ({}): good event without evidence for {topics:?} (got {got:?})", want["case"]));
            }
        }
        let outcome: String = outcome.show().chars().take(64).collect();
        println!("{id:<26} {shown:<34} {outcome:<64} {}", want["case"].as_str().unwrap_or(""));
    }
    for id in failed.keys() {
        if !expected.contains_key(id) {
            problems.push(format!("{id}: failed ({}) but the corpus has no such case", failed[id]));
        }
    }

    // The report accounts for every line that is not blank, each once.
    let n = |v: &Value| v.as_u64().unwrap();
    let skipped = report["skipped"].as_object().unwrap();
    let skipped_total: u64 = skipped.values().map(n).sum();
    let events = n(&report["events"]);
    let processed = n(&report["processed"]);
    let failed_count = report["failed"].as_array().unwrap().len() as u64;
    if events != expected.len() as u64 {
        problems.push(format!("report counts {events} events, the corpus has {}", expected.len()));
    }
    if events != processed + skipped_total + failed_count {
        problems.push(format!(
            "{events} events != {processed} processed + {skipped_total} skipped + {failed_count} failed"
        ));
    }
    // Judged events are in the ledger: processed, dropped as sensitive, or skipped by the
    // language gate (text, or a garbled recording's transcript, in no supported language) or as
    // speech too garbled to be understood.
    let judged_skips =
        n(&skipped["sensitive"]) + n(&skipped["unsupported_language"]) + n(&skipped["unintelligible_speech"]);
    if processed + judged_skips != recorded_count {
        problems.push(format!(
            "{processed} processed + {} sensitive + {} unsupported_language + {} unintelligible_speech, but \
             {recorded_count} recorded",
            skipped["sensitive"], skipped["unsupported_language"], skipped["unintelligible_speech"]
        ));
    }
    for (reason, count) in skipped {
        if reason == "unsupported_language" || reason == "unintelligible_speech" {
            continue; // recorded, so matched against `processed` above (how a garbled recording is heard varies)
        }
        let want = skips_expected.get(reason.as_str()).copied().unwrap_or(0);
        if n(count) != want {
            problems.push(format!("skipped.{reason} is {count}, the corpus expects {want}"));
        }
    }
    println!(
        "{} cases ({good_count} good): {processed} processed, {skipped_total} skipped, {failed_count} failed",
        expected.len()
    );
    assert!(good_count >= 10, "the corpus should interleave at least 10 good events");
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}
