//! One writer per store: a second `attune run` (or a `forget`) on a store a run is writing to
//! does not start — it says so in one line and exits 2 — instead of doing all the work twice.

use crate::common;

use attune_profile::StoreLock;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn attune(args: &[&str], store: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_attune")).args(args).arg("--store").arg(store).output().unwrap()
}

fn refused(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    assert!(err.contains("in use by another attune process"), "{what}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err}");
}

/// The sample conversations `copies` times over, with fresh ids.
fn long_manifest(dir: &Path, copies: usize) -> std::path::PathBuf {
    let sample = std::fs::read_to_string(common::root().join("fixtures/sample/manifest.jsonl")).unwrap();
    let mut lines = Vec::new();
    for copy in 0..copies {
        for line in sample.lines() {
            let Ok(mut v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            if let Some(id) = v.get("event_id").and_then(|i| i.as_str()) {
                v["event_id"] = format!("{id}-{copy}").into();
            }
            lines.push(v.to_string());
        }
    }
    let manifest = dir.join("long.jsonl");
    std::fs::write(&manifest, lines.join("\n")).unwrap();
    manifest
}

#[test]
fn a_second_run_on_a_store_in_use_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = long_manifest(dir.path(), 2);
    let store = dir.path().join("s.sqlite");
    let report = dir.path().join("first.json");
    let mut first = common::attune_run(&manifest, &store)
        .arg("--report")
        .arg(&report)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The store is made once the run holds the lock.
    let started = Instant::now();
    while !store.exists() {
        assert!(first.try_wait().unwrap().is_none(), "the first run ended before it could be raced");
        assert!(started.elapsed() < Duration::from_secs(120), "the first run never made its store");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = dir.path().join("second.json");
    let out = common::attune_run(&manifest, &store).arg("--report").arg(&second).output().unwrap();
    let still_running = first.try_wait().unwrap().is_none();
    refused(&out, "a second run");
    assert!(!second.exists(), "the refused run wrote a report");
    refused(&attune(&["forget", "user-001"], &store), "forget during a run");
    let status = first.wait().unwrap();
    assert!(still_running, "the first run ended before the second was refused: the test raced nothing");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(status.code(), Some(common::exit_code_for(&report)), "{report}");
    assert_eq!(report["events"], serde_json::json!(std::fs::read_to_string(&manifest).unwrap().lines().count()));
    assert_eq!(report["skipped"]["duplicate"], 2, "the first run did all the work (one duplicate per copy)");

    // Whoever holds the lock, a run waits for nobody: it does not start.
    let held = StoreLock::acquire(&store).unwrap();
    let out = common::attune_run(&manifest, &store).output();
    refused(&out.unwrap(), "a run while the lock is held");
    refused(&attune(&["unforget", "user-001"], &store), "unforget while the lock is held");
    drop(held);
    let out = attune(&["forget", "user-001"], &store);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
