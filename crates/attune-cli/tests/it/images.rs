//! Photos end to end with the real image model: `fixtures/images/manifest.jsonl` (made by
//! `fixtures/make_images.py`). Each good photo gives its expected interest; each bad file is a
//! clear failure of its own event while the rest of the batch is processed.

use crate::common;

#[test]
fn photos_become_interests_and_bad_files_fail_alone() {
    let manifest = common::root().join("fixtures/images/manifest.jsonl");
    let lines = common::manifest_lines(&manifest, "fixtures/make_images.py");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("p.sqlite");
    let report = common::run_manifest(&manifest, &store);
    let failed = common::failures(&report);
    let evidence = common::evidence(&store, &["photo-user-0", "photo-user-1", "photo-user-2", "photo-user-3"]);
    for line in &lines {
        let (id, media, expect) = (line["event_id"].as_str().unwrap(), &line["media"], &line["expect"]);
        match expect["outcome"].as_str().unwrap() {
            "processed" => {
                let want = expect["topics"][0].as_str().unwrap();
                let got = evidence.get(id).cloned().unwrap_or_default();
                assert!(got.iter().any(|t| t == want), "{id} ({media}): expected topic {want}, got {got:?}");
            }
            "failed" => {
                let message = failed.get(id).unwrap_or_else(|| panic!("{id} ({media}) did not fail"));
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
