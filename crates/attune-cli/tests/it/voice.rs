//! Voice recordings end to end with the real models: `fixtures/audio/manifest.jsonl` (made by
//! `fixtures/make_audio.py`). Spoken conversations give the interests their text gives, in every
//! format; the spoken sensitive conversation is dropped; bad files fail alone.

use crate::common;

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

/// The first audio line and the first text line of the fixture manifest, in a manifest of their
/// own in `dir` (with the recording beside it); `with_audio: false` leaves the recording out.
fn small_manifest(dir: &std::path::Path, with_audio: bool) -> std::path::PathBuf {
    let fixtures = common::root().join("fixtures/audio");
    let lines = common::manifest_lines(&fixtures.join("manifest.jsonl"), "fixtures/make_audio.py");
    let audio = lines.iter().find(|v| v["kind"] == "audio" && v["expect"]["outcome"] == "processed").unwrap();
    let text = lines.iter().find(|v| v["kind"] == "text").unwrap();
    let media = audio["media"].as_str().unwrap();
    std::fs::copy(fixtures.join(media), dir.join(media)).unwrap();
    let mut manifest = text.to_string() + "\n";
    if with_audio {
        manifest += &(audio.to_string() + "\n");
    }
    let path = dir.join(if with_audio { "with-audio.jsonl" } else { "text-only.jsonl" });
    std::fs::write(&path, manifest).unwrap();
    path
}

#[test]
fn speech_sessions_are_made_only_when_a_recording_needs_them() {
    let dir = tempfile::tempdir().unwrap();
    let text_only = common::run_manifest(&small_manifest(dir.path(), false), &dir.path().join("t.sqlite"));
    assert_eq!(text_only["processed"], 1);
    assert_eq!(text_only["threads"]["speech_sessions_made"], 0, "{}", text_only["threads"]);
    assert!(text_only["model_set"].as_str().unwrap().contains("whisper"), "provenance names the speech model");

    let with_audio = common::run_manifest(&small_manifest(dir.path(), true), &dir.path().join("a.sqlite"));
    assert_eq!((with_audio["processed"].as_u64(), with_audio["failed"].as_array().map(Vec::len)), (Some(2), Some(0)));
    let made = with_audio["threads"]["speech_sessions_made"].as_u64().unwrap();
    assert!(
        made >= 1 && made <= with_audio["threads"]["speech_sessions"].as_u64().unwrap(),
        "{}",
        with_audio["threads"]
    );
    assert!(with_audio["model_load_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn without_a_speech_model_recordings_fail_with_the_reason_and_text_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // The installed models but Whisper.
    let installed = common::root().join(".attune/models");
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    for entry in std::fs::read_dir(&installed).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_name().to_string_lossy().starts_with("whisper") {
            std::os::unix::fs::symlink(entry.path(), models.join(entry.file_name())).unwrap();
        }
    }
    let manifest = small_manifest(dir.path(), true);
    let report =
        common::run_manifest_with(&manifest, &dir.path().join("p.sqlite"), &["--models".as_ref(), models.as_os_str()]);
    let failed = common::failures(&report);
    assert_eq!((report["processed"].as_u64(), failed.len()), (Some(1), 1), "{failed:?}");
    let message = failed.values().next().unwrap();
    assert!(message.contains("speech model") && message.contains("whisper"), "{message}");
}

/// Five minutes of glasses audio in steady street noise with two questions in it three minutes
/// apart: the noise is far above the energy gate's silence level, so without a voice activity
/// model every 30 s window was decoded, Whisper heard words in the noise, and the recording was
/// skipped as unintelligible. Silero VAD finds the two questions; three minutes apart, each is
/// decoded as an utterance of its own, a line of the transcript, so the recording gives the topics
/// of both (read as one line, it gave the topics of one average of the two).
#[test]
fn a_long_recording_in_steady_noise_gives_the_topics_of_what_is_said_in_it() {
    const RATE: usize = 16_000;
    let fixtures = common::root().join("fixtures/audio");
    let lines = common::manifest_lines(&fixtures.join("manifest.jsonl"), "fixtures/make_audio.py");
    let topic_of = |media: &str| {
        let line = lines.iter().find(|v| v["media"] == media).unwrap();
        line["expect"]["topics"][0].as_str().unwrap().to_string()
    };
    let mut pcm = attune_testkit::brown_noise(300 * RATE, 0.05);
    for (at, media) in [(20 * RATE, "guitar.wav"), (200 * RATE, "baking.wav")] {
        let limits = attune_decode_audio::AudioLimits::default();
        let said = attune_decode_audio::decode_file(&fixtures.join(media), &limits).unwrap().samples;
        for (x, s) in pcm[at..at + said.len()].iter_mut().zip(said) {
            *x += s;
        }
    }
    let samples: Vec<u8> = pcm.iter().flat_map(|x| ((x.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes()).collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("street.wav"), attune_testkit::wav(1, 1, RATE as u32, 16, &samples, None)).unwrap();
    let manifest = dir.path().join("street.jsonl");
    let line = serde_json::json!({"event_id": "street", "user_id": "walker", "country": "US", "product": "glasses",
        "captured_at": "2026-06-01T09:00:00Z", "kind": "audio", "media": "street.wav"});
    std::fs::write(&manifest, format!("{line}\n")).unwrap();
    let store = dir.path().join("p.sqlite");
    let report = common::run_manifest(&manifest, &store);
    assert!(common::failures(&report).is_empty(), "{}", report["failed"]);
    assert_eq!((report["processed"].as_u64(), report["skipped"]["unintelligible_speech"].as_u64()), (Some(1), Some(0)));
    assert!(report["model_set"].as_str().unwrap().contains("silero-vad"), "provenance names the voice activity model");
    let got = common::evidence(&store, &["walker"]).remove("street").unwrap_or_default();
    let said = [topic_of("guitar.wav"), topic_of("baking.wav")];
    eprintln!("the street recording gave {got:?}; its questions' topics are {said:?}");
    assert!(said.iter().all(|t| got.contains(t)), "{got:?} lacks one of {said:?}");
}

/// Spoken conversations in ten languages (`fixtures/audio/languages`: espeak-ng, or Kokoro's
/// Japanese voices, reading lines of the labelled chat sets, users in a country of each language;
/// and the nine languages espeak-ng speaks again in Kokoro's voice on espeak-ng's phonemes, which
/// Whisper hears far better), beside the same lines typed. No spoken sensitive conversation may
/// give a topic, in any language or voice: dropped as sensitive, or skipped as unintelligible (a
/// transcript Whisper was unsure of) or in an unsupported language. English and Japanese speech,
/// the two voices Whisper hears well, give a topic their text gives; so do at least four of the
/// eighteen ordinary lines in Kokoro's voice on espeak-ng's phonemes.
#[test]
fn spoken_sensitive_conversations_are_never_tagged_in_any_language() {
    let manifest = common::root().join("fixtures/audio/languages/manifest.jsonl");
    let lines = common::manifest_lines(&manifest, "fixtures/make_audio.py");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("p.sqlite");
    let report = common::run_manifest(&manifest, &store);
    assert!(common::failures(&report).is_empty(), "{report}");
    let evidence = common::evidence(&store, &common::manifest_users(&lines));
    // Per voice (`expect.voice`): ordinary recordings, those tagged, those sharing a topic with
    // their typed text.
    let mut per_voice: std::collections::BTreeMap<String, (usize, usize, usize)> = Default::default();
    for v in lines.iter().filter(|v| v["kind"] == "audio") {
        let (id, expect) = (v["event_id"].as_str().unwrap(), &v["expect"]);
        let got = evidence.get(id).cloned().unwrap_or_default();
        let typed = evidence.get(&format!("typed-{}", expect["spoken"].as_str().unwrap())).cloned().unwrap_or_default();
        if expect["outcome"] == "sensitive" {
            assert!(got.is_empty(), "{id}, a spoken sensitive conversation, gave {got:?}");
            continue;
        }
        let voice = expect["voice"].as_str().unwrap_or("espeak-ng").to_string();
        let counts = per_voice.entry(voice.clone()).or_default();
        counts.0 += 1;
        eprintln!("{id}: spoken {got:?}, typed {typed:?}");
        if !got.is_empty() {
            counts.1 += 1;
            counts.2 += usize::from(got.iter().any(|t| typed.contains(t)));
        }
        if (expect["lang"] == "en" && voice == "espeak-ng") || expect["lang"] == "ja" {
            // Their transcripts sit at mean log-probabilities of -0.1 to -0.45, far above the floor
            // of -0.7 (Japanese: character error rates 0.31 and 0.15 here).
            assert!(got.iter().any(|t| typed.contains(t)), "{id}: spoken {got:?}, typed {typed:?}");
        }
    }
    // Measured (2-core Xeon): espeak-ng's and Kokoro's Japanese voices, of 20 ordinary recordings
    // 5 or 6 tagged (both English, both Japanese, and one or two Spanish or Portuguese lines,
    // whose transcripts sit at the floor's -0.7, so which of them passes moves with the batch a
    // window is decoded in), all but one misheard Spanish line sharing a topic with their typed
    // text. Kokoro's voice on espeak-ng's phonemes: of 18, 5 tagged, each sharing a topic (both
    // English, one each of Spanish, Portuguese, Turkish); 4 dropped as sensitive (misheard words
    // in Indonesian, Malay, Spanish, Portuguese transcripts), Hindi skipped as unsupported (Whisper
    // base writes it in Urdu's script), the rest unintelligible. 43 of all 76 recordings skipped as
    // unintelligible_speech.
    for (voice, (ordinary, tagged, agree)) in &per_voice {
        eprintln!(
            "{voice}: of {ordinary} ordinary spoken conversations {tagged} tagged, {agree} sharing a topic with their typed text"
        );
    }
    eprintln!("skipped as unintelligible: {}", report["skipped"]["unintelligible_speech"]);
    let agreeing = |voice: &str| per_voice.get(voice).map_or(0, |c| c.2);
    assert!(agreeing("espeak-ng") + agreeing("kokoro") >= 4, "{per_voice:?}");
    assert!(agreeing("kokoro+espeak-ng") >= 4, "{per_voice:?}");
}

/// A user's chats tell the language of their recordings where their country does not: users in
/// the US who chat in Japanese, Spanish or Portuguese, and a user in Japan who chats in English,
/// speaking the recordings of `fixtures/audio/languages` in their chats' (or country's) language.
/// Japanese is preferred in detection from the first user's chats; by their country alone (English
/// and Spanish preferred), three of the four Japanese recordings were decoded as English, came out
/// as nonsense and were skipped as unintelligible, the camping question among them. The user in
/// Japan typing English shows the other order does no harm to clear speech: Whisper hears Kokoro's
/// Japanese at p ≥ 0.995, enough against English preferred. (A recording not understood in the
/// language first preferred, decoded again in the other clue's, is `attune-pipeline`'s
/// `tests/speech_language.rs`: espeak-ng's voices are not understood in either.) Every spoken
/// sensitive line is dropped; the Japanese ordinary ones give the topics of their typed text.
#[test]
fn a_users_chats_tell_the_language_of_their_recordings() {
    let fixtures = common::root().join("fixtures/audio/languages");
    let lines = common::manifest_lines(&fixtures.join("manifest.jsonl"), "fixtures/make_audio.py");
    let of = |kind: &str, lang: &str| -> Vec<&serde_json::Value> {
        lines.iter().filter(|v| v["kind"] == kind && v["expect"]["lang"] == lang).collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut manifest: Vec<serde_json::Value> = Vec::new();
    // (user, country, what they type, what they say): their chats come first in the manifest, as
    // a user's chats come before a recording in most runs.
    let mut users: Vec<(String, &str, Vec<&serde_json::Value>, &str)> =
        ["ja", "es", "pt"].iter().map(|&lang| (format!("in-us-typing-{lang}"), "US", of("text", lang), lang)).collect();
    let english_chats = of("text", "en").into_iter().filter(|v| v["expect"]["outcome"] == "processed").collect();
    users.push(("in-jp-typing-en".into(), "JP", english_chats, "ja"));
    for (user, country, chats, _) in &users {
        for chat in chats {
            let mut chat = (*chat).clone();
            chat["event_id"] = format!("{user}/{}", chat["event_id"].as_str().unwrap()).into();
            (chat["user_id"], chat["country"]) = (user.as_str().into(), (*country).into());
            manifest.push(chat);
        }
    }
    for (user, country, _, spoken) in &users {
        for recording in of("audio", spoken) {
            let mut recording = recording.clone();
            let media = recording["media"].as_str().unwrap();
            if !dir.path().join(media).exists() {
                std::fs::copy(fixtures.join(media), dir.path().join(media)).unwrap();
            }
            recording["event_id"] = format!("{user}/{}", recording["event_id"].as_str().unwrap()).into();
            (recording["user_id"], recording["country"]) = (user.as_str().into(), (*country).into());
            manifest.push(recording);
        }
    }
    let path = dir.path().join("manifest.jsonl");
    std::fs::write(&path, manifest.iter().map(|v| v.to_string() + "\n").collect::<String>()).unwrap();
    let report = common::run_manifest(&path, &dir.path().join("p.sqlite"));
    assert!(common::failures(&report).is_empty(), "{report}");
    let recordings = manifest.iter().filter(|v| v["kind"] == "audio").count() as u64;
    assert_eq!(report["speech_languages_from_chats"].as_u64(), Some(recordings), "every speaker chatted first");
    let evidence = common::evidence(&dir.path().join("p.sqlite"), &common::manifest_users(&manifest));
    for v in manifest.iter().filter(|v| v["kind"] == "audio") {
        let (id, expect) = (v["event_id"].as_str().unwrap(), &v["expect"]);
        let got = evidence.get(id).cloned().unwrap_or_default();
        // What the line gives typed: the chat of the user in the US who types its language.
        let typed =
            format!("in-us-typing-{}/typed-{}", expect["lang"].as_str().unwrap(), expect["spoken"].as_str().unwrap());
        let typed = evidence.get(&typed).cloned().unwrap_or_default();
        eprintln!("{id}: spoken {got:?}, typed {typed:?}");
        if expect["outcome"] == "sensitive" {
            assert!(got.is_empty(), "{id}, a spoken sensitive conversation, gave {got:?}");
        } else if expect["lang"] == "ja" {
            assert!(got.iter().any(|t| typed.contains(t)), "{id}: spoken {got:?}, typed {typed:?}");
        }
    }
    eprintln!(
        "decoded a second time: {}; skipped as unintelligible: {}",
        report["speech_redecoded"], report["skipped"]["unintelligible_speech"]
    );
}
