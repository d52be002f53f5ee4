//! What the end-to-end tests share: running the binary on a manifest and reading back what the
//! store and the report say about each event.

#![allow(dead_code)] // each test module uses its own subset

use attune_profile::{ProfileStore, SqliteStore};
use serde_json::Value;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

pub use attune_testkit::repo_root as root;

/// The lines of a JSON Lines fixture, which must exist (made by a script in `fixtures/`).
pub fn manifest_lines(manifest: &Path, made_by: &str) -> Vec<Value> {
    assert!(manifest.exists(), "{} missing: run `python3 {made_by}` first", manifest.display());
    std::fs::read_to_string(manifest).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// What each recording of `fixtures/audio/` says, typed (`texts.json`, by media name).
pub fn typed_texts(audio: &Path) -> HashMap<String, String> {
    let path = audio.join("texts.json");
    assert!(path.exists(), "{} missing: run `python3 fixtures/make_audio.py` first", path.display());
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `attune run MANIFEST --store STORE --report …`; the report.
pub fn run_manifest(manifest: &Path, store: &Path) -> Value {
    run_manifest_with::<&str>(manifest, store, &[])
}

/// `attune run MANIFEST --store STORE`, for a test to add arguments, environment or pipes to.
pub fn attune_run(manifest: &Path, store: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_attune"));
    command.arg("run").arg(manifest).arg("--store").arg(store);
    command
}

/// `attune run MANIFEST --store STORE --report … ARGS…` (e.g. `--policy FILE`); the report.
/// The run must finish with the exit code its report calls for: 0 without failures, 3 with
/// some, 4 when every event failed.
pub fn run_manifest_with<S: AsRef<OsStr>>(manifest: &Path, store: &Path, args: &[S]) -> Value {
    let report = store.with_extension("report.json");
    let out = attune_run(manifest, store).arg("--report").arg(&report).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap_or_else(|e| panic!("no report ({e}): {stderr}")))
            .unwrap();
    assert_eq!(out.status.code(), Some(exit_code_for(&report)), "{stderr}");
    report
}

/// The exit code a finished run's report calls for.
pub fn exit_code_for(report: &Value) -> i32 {
    let failed = report["failed"].as_array().unwrap().len() as u64;
    match failed {
        0 => 0,
        n if n == report["events"].as_u64().unwrap() => 4,
        _ => 3,
    }
}

/// Failed event id → message, from a report.
pub fn failures(report: &Value) -> HashMap<String, String> {
    report["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["event_id"].as_str().unwrap().to_string(), f["message"].as_str().unwrap().to_string()))
        .collect()
}

/// Event id → its outcome in the store's ledger (`tagged`, `dropped`, `unreadable_text` …).
pub fn ledger(store: &Path) -> HashMap<String, String> {
    rusqlite::Connection::open(store)
        .unwrap()
        .prepare("SELECT event_id, outcome FROM ledger")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Every user of a manifest's lines, each once, sorted.
pub fn manifest_users(lines: &[Value]) -> Vec<&str> {
    let users: std::collections::BTreeSet<&str> = lines.iter().map(|v| v["user_id"].as_str().unwrap()).collect();
    users.into_iter().collect()
}

/// Event id → the topic ids it is evidence for, over the given users.
pub fn evidence(store: &Path, users: &[&str]) -> HashMap<String, Vec<String>> {
    let db = SqliteStore::open(store).unwrap();
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for user in users {
        for topic in db.explain(user).unwrap() {
            for e in topic.events {
                out.entry(e.event_id).or_default().push(topic.topic_id.clone());
            }
        }
    }
    out
}

/// Long chat sessions, each with one special-category message among 4-9 ordinary ones
/// (`fixtures/long_chats/holdout.jsonl`, made by `fixtures/make_long_chats.py` from the holdout
/// lines): the first `per_language` of each language, in file order.
pub fn mixed_long_sessions(per_language: usize) -> Vec<Value> {
    let path = root().join("fixtures/long_chats/holdout.jsonl");
    let mut taken: HashMap<String, usize> = HashMap::new();
    manifest_lines(&path, "fixtures/make_long_chats.py")
        .into_iter()
        .filter(|s| s["expect"] != "ordinary")
        .filter(|s| {
            let n = taken.entry(s["lang"].as_str().unwrap().to_string()).or_default();
            *n += 1;
            *n <= per_language
        })
        .collect()
}
