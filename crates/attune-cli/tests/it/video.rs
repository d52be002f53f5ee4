//! Videos end to end with the real models: `fixtures/video/manifest.jsonl` (made by
//! `fixtures/make_video.py`). A photo shown while a conversation is spoken gives the interests of
//! both, in every codec/container pair and in Japanese as in English, as one piece of evidence per
//! video; a video with sensitive speech is dropped whole; refused and broken files fail alone, with
//! their reason.

use crate::common;

#[test]
fn videos_give_the_interests_of_what_is_shown_and_what_is_said() {
    let manifest = common::root().join("fixtures/video/manifest.jsonl");
    let lines = common::manifest_lines(&manifest, "fixtures/make_video.py");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("p.sqlite");
    let report = common::run_manifest(&manifest, &store);
    let failed = common::failures(&report);
    let evidence = common::evidence(&store, &common::manifest_users(&lines));
    let (mut shown_and_said, mut sensitive, mut failures) = (0, 0, 0);
    for v in &lines {
        let (id, media, expect) = (v["event_id"].as_str().unwrap(), &v["media"], &v["expect"]);
        let got = evidence.get(id).cloned().unwrap_or_default();
        // One piece of evidence per video and topic, however many frames showed it.
        let mut unique = got.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), got.len(), "{media}: {got:?}");
        match expect["outcome"].as_str().unwrap() {
            "processed" => {
                assert!(!failed.contains_key(id), "{media} failed: {:?}", failed.get(id));
                let want: Vec<&str> =
                    expect["topics"].as_array().map_or(vec![], |a| a.iter().map(|t| t.as_str().unwrap()).collect());
                for topic in &want {
                    assert!(got.iter().any(|t| t == topic), "{media}: {topic} missing from {got:?}");
                }
                if want.len() == 2 {
                    shown_and_said += 1;
                }
            }
            "sensitive" => {
                sensitive += 1;
                assert!(got.is_empty() && !failed.contains_key(id), "{media} was not dropped: {got:?}");
            }
            "failed" => {
                failures += 1;
                let message = failed.get(id).unwrap_or_else(|| panic!("{media} did not fail"));
                let want = expect["error"].as_str().unwrap();
                assert!(message.contains(want), "{media}: `{message}` does not say `{want}`");
            }
            other => panic!("unknown outcome {other}"),
        }
    }
    assert_eq!(shown_and_said, 6, "H.264/MP4, HEVC/MOV, VP9/WebM, AV1/MKV, a rotated MP4 and one spoken in Japanese");
    assert_eq!(report["skipped"]["sensitive"].as_u64().unwrap(), sensitive);
    assert_eq!(report["failed"].as_array().unwrap().len(), failures);
    assert_eq!(report["events"].as_u64().unwrap() as usize, lines.len());
}
