//! Crash safety: a run killed with SIGKILL at any point and started again ends with exactly the
//! profiles of an uninterrupted run — nothing lost, nothing counted twice. Each batch's ledger
//! rows and evidence commit in one SQLite transaction, and a rerun skips what is in the ledger.

use crate::common;

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

/// The sample conversations `copies` times over, with fresh ids: long enough to stop mid-run.
fn big_manifest(dir: &std::path::Path, copies: usize) -> std::path::PathBuf {
    let sample = std::fs::read_to_string(common::root().join("fixtures/sample/manifest.jsonl")).unwrap();
    let manifest = dir.join("big.jsonl");
    let mut lines = Vec::new();
    for copy in 0..copies {
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
    manifest
}

#[test]
fn killed_runs_resume_to_identical_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = big_manifest(dir.path(), 4);

    let whole = dir.path().join("whole.sqlite");
    let started = Instant::now();
    common::run_manifest(&manifest, &whole);
    let full_run = started.elapsed();
    let expected = export(&whole);
    assert!(!expected.is_empty());

    // Kill at several points of the run (the first part is loading the models; batches commit
    // after that). Three points: each costs a killed run and a resumed one.
    let mut mid_batch_kills = 0;
    for (k, fraction) in [0.35, 0.65, 0.9].into_iter().enumerate() {
        let store = dir.path().join(format!("killed-{k}.sqlite"));
        let mut child =
            common::attune_run(&manifest, &store).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
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

/// SIGTERM, what every scheduler sends: the run reads no further event, finishes and stores those
/// it has read, writes its report (`"interrupted": true`, `"signal": "SIGTERM"`, every event it
/// read accounted for) and exits with 143; a rerun goes on where it stopped.
#[test]
fn sigterm_stops_cleanly_with_a_report_and_a_rerun_continues() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = big_manifest(dir.path(), 8);
    let total = std::fs::read_to_string(&manifest).unwrap().lines().count() as u64;
    // Each id once (the sample repeats one id per copy, as a duplicate).
    let ids: std::collections::BTreeSet<String> = std::fs::read_to_string(&manifest)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["event_id"].as_str().map(String::from))
        .collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let store = dir.path().join("s.sqlite");
    let report_path = dir.path().join("stopped.json");
    let mut child = common::attune_run(&manifest, &store)
        .arg("--report")
        .arg(&report_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop it once its first batches are committed.
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            panic!("the run ended ({status}) before it could be stopped:\n{stderr}");
        }
        assert!(started.elapsed().as_secs() < 120, "nothing was committed in two minutes");
        let committed = attune_profile::SqliteStore::open_existing(&store)
            .ok()
            .and_then(|s| attune_profile::ProfileStore::recorded(&s, &ids).ok())
            .map_or(0, |r| r.len());
        if committed > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let signalled = Instant::now();
    // SAFETY: sending a signal to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("stopped {:.1} s after SIGTERM", signalled.elapsed().as_secs_f64());
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
    let stopped: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(stopped["interrupted"], true);
    assert_eq!(stopped["signal"], "SIGTERM");
    let events = stopped["events"].as_u64().unwrap();
    assert!(events > 0 && events < total, "{events} of {total} events");
    let skipped: u64 = stopped["skipped"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    let failed = stopped["failed"].as_array().unwrap().len() as u64;
    assert_eq!(events, stopped["processed"].as_u64().unwrap() + skipped + failed, "{stopped}");
    // Everything it read and did not fail or skip at the gate is in the store.
    let judged = |why: &str| stopped["skipped"][why].as_u64().unwrap();
    let stored = stopped["processed"].as_u64().unwrap()
        + judged("sensitive")
        + judged("unsupported_language")
        + judged("unintelligible_speech");
    let store_has =
        attune_profile::ProfileStore::recorded(&attune_profile::SqliteStore::open_existing(&store).unwrap(), &ids)
            .unwrap()
            .len() as u64;
    assert_eq!(store_has, stored, "what the report counts is what was committed");

    // The rerun goes on: what was stored is skipped as duplicate, the rest processed.
    let resumed = common::run_manifest(&manifest, &store);
    assert_eq!(resumed["interrupted"], false);
    assert_eq!(resumed["events"].as_u64().unwrap(), total);
    let duplicates = resumed["skipped"]["duplicate"].as_u64().unwrap();
    assert!(duplicates >= stored, "{duplicates} duplicates, {stored} stored before");
}
