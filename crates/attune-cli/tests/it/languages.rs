//! Chat in the supported languages, end to end with the default text models: each text goes
//! through the language gate, then to multilingual-e5-small with the special-category classifier
//! (all 12 supported languages); text in another language is skipped and counted, never tagged.

use crate::common;

use std::collections::{HashMap, HashSet};

fn chat(id: &str, text: &str) -> String {
    serde_json::json!({"event_id": id, "user_id": format!("u-{id}"), "country": "US", "product": "assistant",
        "captured_at": "2026-06-01T10:00:00Z", "kind": "text", "text": text})
    .to_string()
}

/// (id, text, expected: a topic among these, or "sensitive", or "skipped")
const SHORT_CHATS: [(&str, &str, &[&str]); 9] = [
    ("id-camp", "Rencana naik Rinjani lewat jalur Sembalun, camp 2 malam di Plawangan. Sleeping bag comfort temp berapa derajat yang aman?", &["725", "720"]),
    ("pt-surf", "Qual praia no Rio é melhor para surfar em julho? Sou iniciante e quero alugar uma prancha", &["638", "724"]),
    ("en-tent", "I need a lightweight tent and sleeping bag for a trip in the mountains.", &["725", "720"]),
    ("ar-prayer", "متى أوقات الصلاة اليوم في الرياض؟ وكيف أتوضأ بسرعة قبل صلاة الظهر في العمل", &["sensitive"]),
    ("es-rosary", "Quiero rezar el rosario todos los días, ¿me ayudas con una rutina?", &["sensitive"]),
    ("hi-chalisa", "हनुमान चालीसा का पाठ रोज़ सुबह कैसे करूँ, कोई आसान तरीका बताओ", &["sensitive"]),
    ("ja-dialysis", "父が週3回の人工透析を始めた。付き添いのときに何を持っていけばいい？", &["sensitive"]),
    ("sw-beach", "Kesho tunaenda pwani na watoto wangu, nipendekezee hoteli nzuri karibu na bahari", &["skipped"]),
    ("ko-camp", "오늘 저녁에 친구들이랑 캠핑 가는데 텐트 좀 추천해 주세요", &["skipped"]),
];

#[test]
fn chats_in_every_supported_language_are_tagged_or_dropped_and_others_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("chats.jsonl");
    std::fs::write(&manifest, SHORT_CHATS.iter().map(|(id, text, _)| chat(id, text)).collect::<Vec<_>>().join("\n"))
        .unwrap();
    let store = dir.path().join("s.sqlite");
    let report = common::run_manifest(&manifest, &store);

    assert_eq!(report["events"], 9, "{report}");
    assert_eq!(report["skipped"]["unsupported_language"], 2, "{report}");
    // The four sensitive chats are dropped (the lexicon), the three ordinary ones tagged: the
    // classifier (version 10) scores each of them under 0.04 against its bar of 0.12 (`attune
    // eval --sweep classifier_threshold=0.02:0.2:0.02` on them; version 5 dropped the Indonesian
    // camping chat at ~0.33 against 0.2).
    assert_eq!(report["skipped"]["sensitive"], 4, "{report}");
    assert_eq!(report["processed"], 3, "{report}");
    // Per language, counted, never quoted.
    let languages: HashMap<String, u64> = serde_json::from_value(report["languages"].clone()).unwrap();
    for code in ["id", "pt", "en", "ar", "es", "hi", "ja"] {
        assert_eq!(languages.get(code), Some(&1), "{code}: {languages:?}");
    }
    // The texts found sensitive, per language: the four sensitive chats' languages, once each.
    let sensitive: HashMap<String, u64> = serde_json::from_value(report["sensitive_by_language"].clone()).unwrap();
    assert_eq!(sensitive, ["ar", "es", "hi", "ja"].map(|c| (c.to_string(), 1)).into(), "{report}");
    assert!(report["model_set"].as_str().unwrap().contains("multilingual-e5-small"), "{report}");

    let users: Vec<String> = SHORT_CHATS.iter().map(|(id, _, _)| format!("u-{id}")).collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let evidence = common::evidence(&store, &users);
    for (id, _, expected) in SHORT_CHATS {
        let got = evidence.get(id).cloned().unwrap_or_default();
        match expected {
            ["sensitive"] | ["skipped"] => assert!(got.is_empty(), "{id}: {expected:?} but gave {got:?}"),
            topics => assert!(
                got.iter().any(|t| topics.contains(&t.as_str())),
                "{id}: expected one of {topics:?}, got {got:?}"
            ),
        }
    }
}

/// `fixtures/product_examples.jsonl` (what `scripts/finetune_sensitivity.py` checks a newly
/// trained classifier on, and `attune eval` a built one) holds every ordinary chat the
/// end-to-end tests ask to be tagged: this module's and the typed texts of the ordinary
/// recordings (`fixtures/make_audio.py`, which the voice, video and margins tests share). A
/// classifier that drops one of them then shows at training, not an hour later in this suite.
#[test]
fn the_product_examples_hold_every_ordinary_chat_the_suite_tags() {
    let root = common::root();
    let examples: HashSet<String> = common::manifest_lines(
        &root.join("fixtures/product_examples.jsonl"),
        "(written by hand, see fixtures/sensitivity/README.md)",
    )
    .iter()
    .map(|l| l["text"].as_str().unwrap().to_owned())
    .collect();
    let mut wanted: Vec<String> = SHORT_CHATS
        .iter()
        .filter(|(_, _, expected)| !matches!(expected, ["sensitive"] | ["skipped"]))
        .map(|(_, text, _)| text.to_string())
        .collect();
    let audio = root.join("fixtures/audio");
    let texts = common::typed_texts(&audio);
    for line in common::manifest_lines(&audio.join("manifest.jsonl"), "fixtures/make_audio.py") {
        if line["expect"]["outcome"] == "processed" && line["expect"]["spoken"].is_string() {
            wanted.push(texts[line["media"].as_str().unwrap()].clone());
        }
    }
    assert!(wanted.len() >= 6, "{wanted:?}");
    for text in wanted {
        assert!(examples.contains(&text), "fixtures/product_examples.jsonl lacks {text:?}");
    }
}

/// Turns that name nothing to take an interest from ("are you a bot?", "put it in a table",
/// "carry on") get no topics, in any language: before the topic head's "no interest" class each
/// got the nodes it happened to lie nearest (`attune eval fixtures/conversations/no_interest/*`).
/// They are processed, not skipped or dropped: nothing in them is sensitive either. A session
/// that thanks the assistant keeps what it was about. (Lines of the tuning turns the head was
/// trained on; the holdout turns' figure is `attune eval`'s.)
#[test]
fn turns_that_name_no_interest_give_no_topics_in_any_language() {
    const TURNS: [(&str, &str); 8] = [
        ("en-languages", "what languages can you speak?"),
        ("es-table", "¿me lo puedes poner en una tabla?"),
        ("id-online", "kamu masih online gk?"),
        ("pt-continue", "continua de onde parou"),
        ("tr-languages", "kaç dil biliyorsun?"),
        ("vi-bot", "bạn là bot hả?"),
        ("ms-formal", "tolong tulis semula dalam bahasa yang lebih formal"),
        ("th-formal", "กรุณาปรับให้เป็นภาษาทางการมากขึ้นครับ"),
    ];
    const TENT: &str = "I need a lightweight tent and sleeping bag for a trip in the mountains.";
    let session = format!("{TENT}\nthanks, that helps a lot!");
    let chats: Vec<(&str, &str)> =
        TURNS.iter().copied().chain([("en-tent-thanks", session.as_str()), ("en-tent", TENT)]).collect();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("turns.jsonl");
    std::fs::write(&manifest, chats.iter().map(|(id, text)| chat(id, text)).collect::<Vec<_>>().join("\n")).unwrap();
    let store = dir.path().join("s.sqlite");
    let report = common::run_manifest(&manifest, &store);
    assert_eq!(report["processed"], chats.len(), "{report}");

    let users: Vec<String> = chats.iter().map(|(id, _)| format!("u-{id}")).collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let evidence = common::evidence(&store, &users);
    for (id, _) in TURNS {
        assert_eq!(evidence.get(id), None, "{id} names no interest but gave topics");
    }
    // The thanks added Career Advice, Shopping and Education of its own before; now the session
    // gets what the tent line alone does (Camping; each by ≥ 0.009 on the machine that chose it).
    let (with_thanks, alone) = (&evidence["en-tent-thanks"], &evidence["en-tent"]);
    assert!(alone.iter().any(|t| ["725", "720"].contains(&t.as_str())), "{alone:?}");
    assert!(with_thanks.iter().all(|t| alone.contains(t)), "{with_thanks:?} against {alone:?}");
}

/// A session of several messages, one of them special-category: the whole session is dropped
/// (or, in a language the gate does not admit, skipped), never tagged, in every language. Its
/// sensitive message is often diluted in the session's window and harmless clause by clause;
/// each message of more than one clause is read whole too (`Segments::cut`).
#[test]
fn one_sensitive_message_drops_a_long_session_in_every_language() {
    let dir = tempfile::tempdir().unwrap();
    let sessions = common::mixed_long_sessions(SESSIONS_PER_LANGUAGE);
    assert_eq!(sessions.len(), 12 * SESSIONS_PER_LANGUAGE);
    let ids: Vec<String> = (0..sessions.len()).map(|k| format!("session-{k}")).collect();
    let lines: Vec<String> = ids.iter().zip(&sessions).map(|(id, s)| chat(id, s["text"].as_str().unwrap())).collect();
    let manifest = dir.path().join("sessions.jsonl");
    std::fs::write(&manifest, lines.join("\n")).unwrap();
    let store = dir.path().join("s.sqlite");
    let report = common::run_manifest(&manifest, &store);

    assert_eq!(report["events"], sessions.len(), "{report}");
    assert_eq!(report["processed"], 0, "a session with a sensitive message was tagged: {report}");
    let dropped = report["skipped"]["sensitive"].as_u64().unwrap();
    let unsupported = report["skipped"]["unsupported_language"].as_u64().unwrap();
    assert_eq!(dropped + unsupported, sessions.len() as u64, "{report}");
    assert!(dropped as usize >= sessions.len() - 2, "the language gate skipped {unsupported}: {report}");
    let users: Vec<String> = ids.iter().map(|id| format!("u-{id}")).collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    assert!(common::evidence(&store, &users).is_empty(), "a profile holds a topic of a sensitive session");
}

/// The sessions above (and `just eval`'s) are what `fixtures/make_long_chats.py` makes of the
/// labelled lines today: a labelled line edited without the sessions made again would leave
/// them measuring text that is no longer in the sets.
#[test]
fn long_chat_fixtures_are_what_their_script_makes() {
    let out = std::process::Command::new("python3")
        .arg(common::root().join("fixtures/make_long_chats.py"))
        .arg("--check")
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "fixtures/long_chats differ from what fixtures/make_long_chats.py makes (run it): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sessions per language in the test above (and in `margins.rs`, which checks each is dropped
/// by a margin).
pub const SESSIONS_PER_LANGUAGE: usize = 4;
