//! Crash safety: a run killed with SIGKILL at any point and started again ends with exactly the
//! profiles of an uninterrupted run — nothing lost, nothing counted twice. Each batch's ledger
//! rows and evidence commit in one SQLite transaction, and a rerun skips what is in the ledger.

mod common;

use std::process::{Command, Stdio};
use std::time::Instant;

const AS_OF: &str = "2026-12-01T00:00:00Z";

fn export(store: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_attune"))
        .args(["export", "--as-of", AS_OF, "--store"])
        .arg(store)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn killed_runs_resume_to_identical_profiles() {
    // The sample conversations four times over, with fresh ids: long enough to kill mid-run.
    let sample = std::fs::read_to_string(common::root().join("fixtures/sample/manifest.jsonl")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("big.jsonl");
    let mut lines = Vec::new();
    for copy in 0..4 {
        for line in sample.lines() {
            // Malformed lines stay as they are: they fail again on every run.
            let Ok(mut v) = serde_json::from_str::<serde_json::Value>(line) else {
                lines.push(line.to_string());
                continue;
            };
            if let Some(id) = v.get("event_id").and_then(|i| i.as_str()) {
                v["event_id"] = format!("{id}-{copy}").into();
            }
            lines.push(v.to_string());
        }
    }
    std::fs::write(&manifest, lines.join("\n")).unwrap();

    let whole = dir.path().join("whole.sqlite");
    let started = Instant::now();
    common::run_manifest(&manifest, &whole);
    let full_run = started.elapsed();
    let expected = export(&whole);
    assert!(!expected.is_empty());

    // Kill at several points of the run (the first ~45% is loading the models and building the
    // tagger's reference embeddings; batches commit after that).
    let mut mid_batch_kills = 0;
    for (k, fraction) in [0.3, 0.6, 0.75, 0.9].into_iter().enumerate() {
        let store = dir.path().join(format!("killed-{k}.sqlite"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_attune"))
            .arg("run")
            .arg(&manifest)
            .arg("--store")
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full_run.mul_f64(fraction));
        let still_running = child.try_wait().unwrap().is_none();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if !still_running {
            // Timing on a loaded machine: this run finished early. The resume must still match.
            eprintln!("the run ended before it could be killed at {fraction}");
        }
        let resumed = common::run_manifest(&manifest, &store);
        // The sample holds one duplicate per copy; more means the killed run had committed work.
        if resumed["skipped"]["duplicate"].as_u64().unwrap() > 4 {
            mid_batch_kills += 1;
        }
        assert!(export(&store) == expected, "killed at {fraction} of the run and resumed: profiles differ");
        eprintln!(
            "killed at {:.0}% ({:.1} s): resume processed {}, skipped {} as already done",
            fraction * 100.0,
            full_run.mul_f64(fraction).as_secs_f64(),
            resumed["processed"],
            resumed["skipped"]["duplicate"]
        );
    }
    assert!(mid_batch_kills >= 1, "no kill landed after the first commit");
}
