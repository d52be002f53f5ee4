//! The command line around the pipeline: which commands may create a store, and how each
//! command ends (exit codes a scheduler can act on, one-line errors).

use std::path::Path;
use std::process::{Command, Output};

fn attune(args: &[&str], store: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_attune")).args(args).arg("--store").arg(store).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `export`, `explain`, `forget` and `unforget` on a mistyped store path fail in one line and
/// create nothing: only `run` makes a store.
#[test]
fn only_run_creates_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sqlite");
    for args in [&["export"][..], &["explain", "u1"], &["forget", "u1"], &["unforget", "u1"]] {
        let out = attune(args, &missing);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: not one line: {err}");
        assert!(err.contains("does not exist"), "{args:?}: {err}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "{args:?} created {left:?}");
    }
}

fn chat(id: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","user_id":"u1","country":"US","product":"assistant","captured_at":"2026-04-01T10:00:00Z","kind":"text","text":"any tips for a first sailing trip on a small dinghy?"}}"#
    )
}

fn photo(id: &str, media: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","user_id":"u1","country":"US","product":"glasses","captured_at":"2026-04-01T10:00:00Z","kind":"image","media":"{media}"}}"#
    )
}

/// `attune run MANIFEST --store STORE --report REPORT ARGS…`: exit code, stderr, and the report
/// when one was written.
fn run(manifest: &Path, store: &Path, args: &[&str]) -> (Option<i32>, String, Option<serde_json::Value>) {
    let report = store.with_extension("report.json");
    let _ = std::fs::remove_file(&report);
    let out = Command::new(env!("CARGO_BIN_EXE_attune"))
        .arg("run")
        .arg(manifest)
        .arg("--store")
        .arg(store)
        .arg("--report")
        .arg(&report)
        .args(args)
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&report).ok().map(|r| serde_json::from_str(&r).unwrap());
    (out.status.code(), stderr(&out), report)
}

/// The models installed for the tests, less those whose folder name starts with one of `leave_out`.
fn models_without(dir: &Path, leave_out: &[&str]) -> std::path::PathBuf {
    let installed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.attune/models");
    let models = dir.join("models");
    std::fs::create_dir(&models).unwrap();
    for entry in std::fs::read_dir(&installed).unwrap() {
        let entry = entry.unwrap();
        if !leave_out.iter().any(|l| entry.file_name().to_string_lossy().starts_with(l)) {
            std::os::unix::fs::symlink(entry.path(), models.join(entry.file_name())).unwrap();
        }
    }
    models
}

/// 0 when every event is accounted for without failures, 3 when some failed, 4 when all did
/// (a manifest of broken lines used to end with 0).
#[test]
fn a_finished_run_says_whether_events_failed() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.sqlite");
    let good = dir.path().join("good.jsonl");
    std::fs::write(&good, chat("c1")).unwrap();
    let (code, err, report) = run(&good, &store, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report.unwrap()["processed"], 1);

    let mixed = dir.path().join("mixed.jsonl");
    std::fs::write(&mixed, [chat("c2"), "{not json".into(), chat("c3")].join("\n")).unwrap();
    let (code, err, report) = run(&mixed, &store, &[]);
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(report.unwrap()["failed"].as_array().unwrap().len(), 1);

    let garbage = dir.path().join("garbage.jsonl");
    std::fs::write(&garbage, "{not json\nnull\n\u{1}\u{2}\n[1,2]\n").unwrap();
    let (code, err, report) = run(&garbage, &store, &[]);
    assert_eq!(code, Some(4), "every event failed, yet: {err}");
    let report = report.unwrap();
    assert_eq!(report["events"], 4);
    assert_eq!(report["failed"].as_array().unwrap().len(), 4);
}

/// A run that cannot start ends with 2, in one line, and creates no store.
#[test]
fn a_run_that_cannot_start_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.sqlite");
    let manifest = dir.path().join("m.jsonl");
    std::fs::write(&manifest, chat("c1")).unwrap();
    let cases: [(&Path, &[&str], &str); 3] = [
        (&dir.path().join("no-such-manifest.jsonl"), &[], "cannot read manifest"),
        (&manifest, &["--policy", "/nonexistent/policy.toml"], "policy"),
        (&manifest, &["--threads", "many"], "invalid value"),
    ];
    for (manifest, args, says) in cases {
        let (code, err, report) = run(manifest, &store, args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(report.is_none());
        assert!(!store.exists(), "{args:?} created the store");
    }
    let (code, err, _) = run(&manifest, &store, &["--policy", "/nonexistent/policy.toml"]);
    assert_eq!((code, err.trim_end().lines().count()), (Some(2), 1), "{err}");
}

/// Without the image and speech models, a photo fails and the run says so (3); with
/// `--require-models` it does not start (2) and creates nothing.
#[test]
fn require_models_refuses_to_start_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let models = models_without(dir.path(), &["efficientnet", "whisper"]);
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/images");
    std::fs::copy(photos.join("chelsea.png"), dir.path().join("cat.png")).unwrap();
    let manifest = dir.path().join("m.jsonl");
    std::fs::write(&manifest, [chat("c1"), photo("p1", "cat.png")].join("\n")).unwrap();
    let models_arg = ["--models", models.to_str().unwrap()];

    let store = dir.path().join("lenient.sqlite");
    let (code, err, report) = run(&manifest, &store, &models_arg);
    assert_eq!(code, Some(3), "{err}");
    let report = report.unwrap();
    assert_eq!(report["processed"], 1);
    assert!(report["failed"][0]["message"].as_str().unwrap().contains("image model"), "{report}");
    let (code, err, _) = run(&manifest, &store, &[&models_arg[..], &["--require-models", "text"]].concat());
    assert_eq!(code, Some(3), "{err}");

    for (required, says) in [("image", "image model"), ("speech", "speech model"), ("text,all", "image model")] {
        let store = dir.path().join(format!("strict-{required}.sqlite"));
        let (code, err, report) = run(&manifest, &store, &[&models_arg[..], &["--require-models", required]].concat());
        assert_eq!(code, Some(2), "--require-models {required}: {err}");
        assert!(err.contains(says) && err.contains("required"), "{err}");
        assert_eq!(err.trim_end().lines().filter(|l| l.starts_with("attune:")).count(), 1, "{err}");
        assert!(report.is_none() && !store.exists(), "--require-models {required} left a store or report");
    }
}

#[test]
fn help_lists_the_exit_codes() {
    for args in [&["--help"][..], &["run", "--help"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_attune")).args(args).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Exit codes:") && help.contains("could not start"), "{help}");
    }
}
