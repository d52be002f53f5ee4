//! Events with more than one part, as the products make them (`fixtures/parts/`, made by
//! `fixtures/make_parts.py`): a prompt with its image, a caption with its video, a question with
//! a photo, chats of many turns; in every language the text path supports.
//!
//! Each text of an event also comes alone ("twin" events) in the same run, so these checks are on
//! how parts combine — any sensitive part drops the event, the assistant never introduces a topic,
//! a picture keeps its topic beside harmless words — never on where a model's score falls.

use crate::common;

use attune_profile::{ProfileStore, SqliteStore};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// An event's outcome in the ledger and its topics with the parts they came from.
#[derive(Debug, Default, Clone)]
struct Outcome {
    ledger: String,
    topics: BTreeMap<String, Vec<String>>,
}

impl Outcome {
    fn dropped(&self) -> bool {
        self.ledger == "dropped"
    }
}

#[test]
fn every_part_is_checked_and_only_the_users_parts_give_topics() {
    let dir = common::root().join("fixtures/parts");
    let lines = common::manifest_lines(&dir.join("manifest.jsonl"), "fixtures/make_parts.py");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("parts.sqlite");
    let report = common::run_manifest(&dir.join("manifest.jsonl"), &store);
    assert_eq!(report["events"].as_u64().unwrap(), lines.len() as u64, "{report}");
    assert!(report["failed"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(report["skipped"]["unsupported_language"], 0, "every language here is supported: {report}");

    let db = SqliteStore::open(&store).unwrap();
    let ledger: HashMap<String, String> = common::ledger(&store);
    let mut outcomes: HashMap<String, Outcome> = HashMap::new();
    for line in &lines {
        let (id, user) = (line["event_id"].as_str().unwrap(), line["user_id"].as_str().unwrap());
        let mut o = Outcome { ledger: ledger.get(id).cloned().unwrap_or_default(), ..Default::default() };
        for topic in db.explain(user).unwrap() {
            for e in topic.events.iter().filter(|e| e.event_id == id) {
                o.topics.insert(topic.topic_id.clone(), e.sources.iter().map(|s| s.as_str().to_string()).collect());
            }
        }
        outcomes.insert(id.to_string(), o);
    }
    let of = |id: &Value| outcomes[id.as_str().unwrap()].clone();

    let mut problems = Vec::new();
    let mut tally: BTreeMap<&str, (usize, usize)> = BTreeMap::new(); // case → (dropped, events)
    for line in &lines {
        let (id, want) = (line["event_id"].as_str().unwrap(), &line["expect"]);
        let case = want["case"].as_str().unwrap();
        let got = &outcomes[id];
        let entry = tally.entry(case).or_default();
        entry.0 += usize::from(got.dropped());
        entry.1 += 1;
        let mut check = |ok: bool, what: &str| {
            if !ok {
                problems.push(format!("{id} ({case}): {what}; got {got:?}"));
            }
        };
        // No topic ever comes from the assistant alone, in any event.
        check(
            got.topics.values().all(|from| from.iter().any(|s| s != "assistant")),
            "a topic from the assistant alone",
        );
        match case {
            "alone" => {}
            // Dropped whenever its words alone are: the picture cannot vouch for them.
            "sensitive-words-with-media" | "sensitive-turn-17-of-30" => {
                check(!of(&want["twin"]).dropped() || got.dropped(), "kept though its words alone are dropped")
            }
            "ordinary-words-with-media" | "no-words-with-media" => {
                let twin = want.get("twin").map(of);
                match twin {
                    Some(t) if t.dropped() => check(got.dropped(), "kept though its words alone are dropped"),
                    _ => {
                        let picture = want["picture_topic"].as_str().unwrap();
                        let from = got.topics.get(picture);
                        check(
                            from.is_some_and(|f| f.iter().any(|s| s == "picture")),
                            &format!("no topic {picture} from its picture"),
                        );
                    }
                }
            }
            "assistant-only-topic" => {
                let user = of(&want["user_twin"]);
                let assistant = want.get("assistant_twin").map(of);
                if user.dropped() || assistant.as_ref().is_some_and(Outcome::dropped) {
                    check(got.dropped(), "kept though one side alone is dropped");
                } else {
                    let extra: BTreeSet<&String> =
                        got.topics.keys().filter(|t| !user.topics.contains_key(*t)).collect();
                    check(extra.is_empty(), &format!("topics {extra:?} that the user's words alone do not give"));
                }
            }
            "user-topic-strengthened" => {
                let topic = want["topic"].as_str().unwrap();
                check(
                    got.topics.get(topic).is_some_and(|f| f.iter().any(|s| s == "words")),
                    &format!("no topic {topic} from the user's words"),
                );
            }
            "long-chat-without-it" => {} // a figure: the classifier's false positives over 29 turns
            other => panic!("unknown case {other}"),
        }
    }
    // The cases are exercised: the labelled sensitive lines are dropped alone (they are explicit).
    let twins_dropped = lines
        .iter()
        .filter(|l| l["expect"]["case"] == "alone" && l["event_id"].as_str().unwrap().contains("-alone-s"))
        .filter(|l| outcomes[l["event_id"].as_str().unwrap()].dropped())
        .count();
    println!("dropped / events per case: {tally:?}; sensitive lines dropped alone: {twins_dropped}/36");
    assert!(twins_dropped >= 33, "only {twins_dropped} of 36 explicit sensitive lines dropped alone");
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

/// `schemas/attune.manifest.v1.json` says what the parser accepts: the fixtures' lines are valid
/// against it, and lines the parser refuses are not.
#[test]
fn the_manifest_schema_matches_the_parser() {
    let root = common::root();
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("schemas/attune.manifest.v1.json")).unwrap()).unwrap();
    assert_eq!(schema["$id"], "attune.manifest.v1");
    let validator = jsonschema::draft202012::options().should_validate_formats(true).build(&schema).unwrap();
    let parts = common::manifest_lines(&root.join("fixtures/parts/manifest.jsonl"), "fixtures/make_parts.py");
    assert!(parts.len() > 100);
    for line in &parts {
        assert!(validator.is_valid(line), "{line}");
    }
    let base =
        r#""event_id":"e","user_id":"u","country":"US","product":"assistant","captured_at":"2026-06-01T10:00:00Z""#;
    for bad in [
        r#""kind":"text""#,
        r#""kind":"text","text":"hi","media":"a.jpg""#,
        r#""kind":"image","text":"a fox""#,
        r#""kind":"text","text":"hi","turns":[{"role":"user","text":"hi"}]"#,
        r#""kind":"text","turns":[{"role":"system","text":"be brief"}]"#,
        r#""kind":"text","turns":[]"#,
        r#""kind":"hologram","media":"a.jpg""#,
    ] {
        let line: Value = serde_json::from_str(&format!("{{{base},{bad}}}")).unwrap();
        assert!(!validator.is_valid(&line), "{bad}");
    }
}
