//! Photos end to end with the real image model: `fixtures/images/manifest.jsonl` (made by
//! `fixtures/make_images.py`). Each good photo gives its expected interest; each bad file is a
//! clear failure of its own event while the rest of the batch is processed.

use attune_profile::{ProfileStore, SqliteStore};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

#[test]
fn photos_become_interests_and_bad_files_fail_alone() {
    let manifest = root().join("fixtures/images/manifest.jsonl");
    assert!(manifest.exists(), "run `python3 fixtures/make_images.py` first");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("p.sqlite");
    let report_path = dir.path().join("r.json");
    let out = Command::new(env!("CARGO_BIN_EXE_attune"))
        .args(["run", manifest.to_str().unwrap(), "--store", store.to_str().unwrap(), "--report"])
        .arg(&report_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();

    let lines: Vec<Value> =
        std::fs::read_to_string(&manifest).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let failed: HashMap<&str, &str> = report["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["event_id"].as_str().unwrap(), f["message"].as_str().unwrap()))
        .collect();
    let db = SqliteStore::open(&store).unwrap();
    let mut evidence: HashMap<String, Vec<String>> = HashMap::new();
    for user in ["photo-user-0", "photo-user-1", "photo-user-2", "photo-user-3"] {
        for topic in db.explain(user).unwrap() {
            for e in topic.events {
                evidence.entry(e.event_id).or_default().push(topic.topic_id.clone());
            }
        }
    }
    for line in &lines {
        let id = line["event_id"].as_str().unwrap();
        let expect = &line["expect"];
        match expect["outcome"].as_str().unwrap() {
            "processed" => {
                let want = expect["topics"][0].as_str().unwrap();
                let got = evidence.get(id).cloned().unwrap_or_default();
                assert!(got.iter().any(|t| t == want), "{id} ({}): expected topic {want}, got {got:?}", line["media"]);
            }
            "failed" => {
                let message = failed.get(id).unwrap_or_else(|| panic!("{id} ({}) did not fail", line["media"]));
                let want = expect["error"].as_str().unwrap();
                assert!(message.contains(want), "{id}: `{message}` does not say `{want}`");
            }
            "jurisdiction" => assert!(!evidence.contains_key(id) && !failed.contains_key(id)),
            other => panic!("unknown outcome {other}"),
        }
    }
    assert_eq!(report["skipped"]["jurisdiction"], 1);
    assert_eq!(report["events"].as_u64().unwrap() as usize, lines.len());
}
