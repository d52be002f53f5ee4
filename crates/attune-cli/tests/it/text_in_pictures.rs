//! Text in pictures, end to end (`fixtures/ocr/`, made by `fixtures/make_ocr.py`): signs, menus,
//! posters, placards and labels rendered onto real photos, in every supported language's script.
//! Whatever the OCR model can or cannot read, a picture whose text touches a special category
//! never reaches a profile; an ordinary sign adds its topics; a photo without text is tagged as
//! before, from its picture alone.

use crate::common;

use attune_profile::{ProfileStore, SqliteStore};
use std::collections::HashMap;

#[test]
fn sensitive_text_in_pictures_never_reaches_a_profile() {
    let dir = common::root().join("fixtures/ocr");
    let lines = common::manifest_lines(&dir.join("manifest.jsonl"), "fixtures/make_ocr.py");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("ocr.sqlite");
    let report = common::run_manifest(&dir.join("manifest.jsonl"), &store);
    assert!(report["failed"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(report["events"].as_u64().unwrap(), lines.len() as u64);

    let ledger: HashMap<String, String> = common::ledger(&store);
    let db = SqliteStore::open(&store).unwrap();
    let mut problems = Vec::new();
    let mut kept_out: HashMap<&str, usize> = HashMap::new();
    for line in &lines {
        let (id, user, want) = (line["event_id"].as_str().unwrap(), line["user_id"].as_str().unwrap(), &line["expect"]);
        let outcome = ledger.get(id).map(String::as_str).unwrap_or("(none)");
        // Topic → the kinds of part it came from.
        let topics: HashMap<String, Vec<String>> = db
            .explain(user)
            .unwrap()
            .into_iter()
            .flat_map(|t| {
                let id = t.topic_id.clone();
                t.events.into_iter().map(move |e| (id.clone(), e.sources.iter().map(|s| s.to_string()).collect()))
            })
            .collect();
        if want["sensitive"].is_string() {
            *kept_out.entry(outcome).or_default() += 1;
            if !topics.is_empty() || !matches!(outcome, "dropped" | "unreadable_text" | "unsupported_language") {
                problems.push(format!("{id}: sensitive text, yet {outcome} with {topics:?}"));
            }
            // What the model reads (Latin letters) is checked, not merely set aside.
            if want["script"] == "latin" && outcome != "dropped" {
                problems.push(format!("{id}: readable sensitive text {outcome}, not dropped"));
            }
        }
        match want["case"].as_str().unwrap() {
            "no-text" if topics.values().flatten().any(|s| s != "picture") => {
                problems.push(format!("{id}: a photo without text has topics from {topics:?}"))
            }
            "no-text" if !matches!(outcome, "tagged" | "no_topic") => {
                problems.push(format!("{id}: a photo without text came out {outcome}"))
            }
            _ => {}
        }
    }
    // Ordinary signs are read, and what they say becomes topics: the surf shop's (638 Surfing).
    let surf = db.explain("ocr-ocr-sign-surf").unwrap();
    if !surf.iter().any(|t| t.topic_id == "638" && t.events[0].sources.iter().any(|s| s.as_str() == "text_in_picture"))
    {
        problems.push(format!("sign-surf: no Surfing from its text: {surf:?}"));
    }
    println!("sensitive pictures by outcome: {kept_out:?}; report: {}", report["skipped"]);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
