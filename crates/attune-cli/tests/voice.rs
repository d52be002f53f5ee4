//! Voice recordings end to end with the real models: `fixtures/audio/manifest.jsonl` (made by
//! `fixtures/make_audio.py`). Spoken conversations give the interests their text gives, in every
//! format; the spoken sensitive conversation is dropped; bad files fail alone.

mod common;

use std::collections::HashMap;

#[test]
fn spoken_conversations_become_the_interests_of_their_text() {
    let manifest = common::root().join("fixtures/audio/manifest.jsonl");
    let lines = common::manifest_lines(&manifest, "fixtures/make_audio.py");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("p.sqlite");
    let report = common::run_manifest(&manifest, &store);
    let failed = common::failures(&report);
    let evidence = common::evidence(&store, &["voice-user-0", "voice-user-1", "voice-user-2", "typed-user"]);
    // What each conversation gives when typed.
    let typed: HashMap<&str, Vec<String>> = lines
        .iter()
        .filter_map(|v| Some((v["expect"]["typed"].as_str()?, evidence.get(v["event_id"].as_str()?).cloned()?)))
        .collect();
    let (mut agree, mut spoken_total, mut sensitive) = (0, 0, 0);
    for v in lines.iter().filter(|v| v["kind"] == "audio") {
        let (id, media, expect) = (v["event_id"].as_str().unwrap(), &v["media"], &v["expect"]);
        match expect["outcome"].as_str().unwrap() {
            "processed" => {
                assert!(!failed.contains_key(id), "{media} failed: {:?}", failed.get(id));
                let Some(name) = expect["spoken"].as_str() else { continue };
                let want = expect["topics"][0].as_str().unwrap();
                assert!(typed[name].iter().any(|t| t == want), "typed {name} lacks {want}: {:?}", typed[name]);
                let got = evidence.get(id).cloned().unwrap_or_default();
                spoken_total += 1;
                if got.iter().any(|t| typed[name].contains(t)) {
                    agree += 1;
                } else {
                    eprintln!("{media}: spoken gave {got:?}, typed gave {:?}", typed[name]);
                }
            }
            "sensitive" => {
                sensitive += 1;
                assert!(!evidence.contains_key(id) && !failed.contains_key(id), "{media} was not dropped");
            }
            "failed" => {
                let message = failed.get(id).unwrap_or_else(|| panic!("{media} did not fail"));
                let want = expect["error"].as_str().unwrap();
                assert!(message.contains(want), "{media}: `{message}` does not say `{want}`");
            }
            other => panic!("unknown outcome {other}"),
        }
    }
    assert_eq!(report["skipped"]["sensitive"].as_u64().unwrap(), sensitive + 1, "the spoken and the typed one");
    // Speech recognition errors cost a topic now and then (espeak-ng's voice, lossy codecs);
    // measured 19 of 21 (the two Opus files of the guitar question lose "beginner").
    eprintln!("spoken recordings sharing a topic with their typed text: {agree} of {spoken_total}");
    assert!(agree * 100 >= spoken_total * 85, "{agree} of {spoken_total}");
}
