//! `attune run --retry-failed`: only the events that failed before are processed again; once
//! one succeeds it leaves the failure list.

use crate::common;

#[test]
fn only_failed_events_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let photos = common::root().join("fixtures/images");
    assert!(photos.join("chelsea.png").exists(), "run `python3 fixtures/make_images.py` first");
    let manifest = dir.path().join("m.jsonl");
    let line = |id: &str, kind: &str, body: &str| {
        format!(
            r#"{{"event_id":"{id}","user_id":"u1","country":"US","product":"glasses","captured_at":"2026-04-01T10:00:00Z","kind":"{kind}",{body}}}"#
        )
    };
    std::fs::write(
        &manifest,
        [
            line("chat", "text", r#""text":"any tips for a first sailing trip on a small dinghy?""#),
            line("late-photo", "image", r#""media":"cat.png""#), // not there yet: fails
            line("bad-kind", "hologram", r#""text":"x""#),       // fails every time
        ]
        .join("\n"),
    )
    .unwrap();
    let store = dir.path().join("s.sqlite");
    let first = common::run_manifest(&manifest, &store);
    assert_eq!(first["processed"], 1);
    let failed = common::failures(&first);
    assert!(failed["late-photo"].contains("cannot be opened"));
    assert!(failed.contains_key("bad-kind"));

    // The photo arrives; retry only what failed.
    std::fs::copy(photos.join("chelsea.png"), dir.path().join("cat.png")).unwrap();
    let report = store.with_extension("retry.json");
    let out =
        common::attune_run(&manifest, &store).arg("--retry-failed").arg("--report").arg(&report).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "some events fail: {}", String::from_utf8_lossy(&out.stderr));
    let retry: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(retry["processed"], 1, "the photo, and only the photo");
    assert_eq!(retry["skipped"]["not_selected"], 1, "the chat is left alone");
    assert_eq!(retry["skipped"]["duplicate"], 0);
    assert_eq!(common::failures(&retry).len(), 1, "the bad line fails again");
    let evidence = common::evidence(&store, &["u1"]);
    assert!(evidence["late-photo"].contains(&"543".to_string()), "the cat photo gives Cats");
}
