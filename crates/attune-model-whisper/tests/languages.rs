//! Whisper base on espeak-ng speech in every supported language espeak-ng has a voice Whisper can
//! follow, on the same lines spoken by Kokoro-82M reading espeak-ng's phonemes, and on Kokoro's
//! Japanese voices (`fixtures/audio/languages`, made by `fixtures/make_audio.py` from the labelled
//! chat sets): the language each recording is decoded as, given its user's country, and character
//! error rates per language and voice, printed and bounded.

use attune_decode_audio::{decode_file, AudioLimits};
use attune_infer::{SpeechLanguage, SpeechRequest};
use attune_model_whisper::{Whisper, MULTILINGUAL_MODEL};
use std::collections::BTreeMap;

mod common;

/// One recording's entry in `fixtures/audio/languages/texts.json`.
#[derive(serde::Deserialize)]
struct SpokenLine {
    text: String,
    lang: String,
    /// The country of the user the line was written for (its language preferred in detection).
    country: String,
    /// Who speaks it: `espeak-ng`, `kokoro` (Japanese) or `kokoro+espeak-ng` (Kokoro's voice on
    /// espeak-ng's phonemes).
    voice: String,
}

/// Letters and digits, lower-cased, words separated by one space.
fn normalise(s: &str) -> Vec<char> {
    let cleaned: String = s.to_lowercase().chars().map(|c| if c.is_alphanumeric() { c } else { ' ' }).collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ").chars().collect()
}

/// Character error rate: edit distance over the reference's length.
fn cer(reference: &str, hypothesis: &str) -> f64 {
    common::error_rate(&normalise(reference), &normalise(hypothesis))
}

/// Word error rate, the same over words.
fn wer(reference: &str, hypothesis: &str) -> f64 {
    let words = |s: &str| -> Vec<String> {
        normalise(s).into_iter().collect::<String>().split(' ').filter(|w| !w.is_empty()).map(String::from).collect()
    };
    common::error_rate(&words(reference), &words(hypothesis))
}

/// The languages of the recording's user's country, as the pipeline passes them.
fn preferred(country: &str) -> Vec<String> {
    attune_lang::languages_of_country(country).iter().map(|l| l.code().to_string()).collect()
}

#[test]
fn every_language_is_decoded_as_itself_with_bounded_character_errors() {
    let dir = common::fixtures("audio/languages");
    let texts: BTreeMap<String, SpokenLine> = common::texts(&dir);
    let runtime = attune_testkit::cpu_runtime(2);
    let mut whisper = Whisper::load(&runtime, &attune_testkit::installed_model(MULTILINGUAL_MODEL)).unwrap();
    let codes: Vec<&str> = attune_lang::Language::DEFAULT_SUPPORTED.iter().map(|l| l.code()).collect();
    whisper.restrict_languages(&codes);
    let mut per_language: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
    for (name, entry) in &texts {
        let SpokenLine { text, lang, country, voice } = entry;
        let (text, lang) = (text.as_str(), lang.as_str());
        let pcm = decode_file(&dir.join(name), &AudioLimits::default()).unwrap();
        let request = SpeechRequest::new(&pcm.samples, SpeechLanguage::Detect { preferred: preferred(country) });
        let t = whisper.transcribe_requests(&[request]).pop().unwrap().unwrap();
        let rate = cer(text, &t.text);
        eprintln!(
            "{name:<16} {:<3} p {:.3} logprob {:>6.2} least lead {:.3} loops {} CER {rate:.2}  {}",
            t.language.as_deref().unwrap_or("-"),
            t.language_probability,
            t.avg_logprob,
            t.min_logit_gap,
            t.repetitive_windows,
            t.text
        );
        // Hindi: Whisper base loops on some of espeak-ng's Hindi and decodes one as English
        // (the text path then reads it as romanised Hindi and asks for a second decode).
        if lang != "hi" {
            assert_eq!(t.language.as_deref(), Some(lang), "{name} decoded as {:?}", t.language);
        }
        per_language.entry((lang.to_string(), voice.clone())).or_default().push((rate, wer(text, &t.text)));
    }
    // Measured on a 2-core EPYC (mean CER per language, espeak-ng's voices, whole 30 s windows):
    // en 0.09, es 0.19, id 0.28, tr 0.31, pt 0.34, vi 0.48, ar 0.50, ms 0.59, hi 0.84 (two of four
    // loop, one comes out in Urdu script); on a 2-core Xeon, ja 0.23 (Kokoro's voices; "燕岳" heard
    // as "翼黒だけ"). The same lines in Kokoro's voice on espeak-ng's phonemes (2-core Xeon, each
    // window at its own length; espeak-ng's voices then in brackets): en 0.12 (0.09), es 0.12
    // (0.19), pt 0.13 (0.29), id 0.11 (0.28), ms 0.16 (0.45), tr 0.21 (0.30), vi 0.40 (0.45: Kokoro
    // has no symbol for espeak-ng's Vietnamese tones, so it speaks without them), ar 0.46 (0.50),
    // hi 0.76 (0.81: Whisper base writes Kokoro's Hindi in Urdu script, the Hinglish line as
    // English). espeak-ng's voices outside English are harsh, Kokoro's Japanese speakers have an
    // accent, and Whisper base is small: these bound regressions, they are not the quality of real
    // speech. Bounds leave room for another CPU's kernels choosing another token now and then.
    let bounds = [
        ("en", "espeak-ng", 0.2),
        ("es", "espeak-ng", 0.35),
        ("pt", "espeak-ng", 0.45),
        ("id", "espeak-ng", 0.45),
        ("ms", "espeak-ng", 0.75),
        ("tr", "espeak-ng", 0.5),
        ("vi", "espeak-ng", 0.65),
        ("ar", "espeak-ng", 0.7),
        ("hi", "espeak-ng", 1.2),
        ("ja", "kokoro", 0.45),
        ("en", "kokoro+espeak-ng", 0.25),
        ("es", "kokoro+espeak-ng", 0.25),
        ("pt", "kokoro+espeak-ng", 0.3),
        ("id", "kokoro+espeak-ng", 0.25),
        ("ms", "kokoro+espeak-ng", 0.35),
        ("tr", "kokoro+espeak-ng", 0.4),
        ("vi", "kokoro+espeak-ng", 0.6),
        ("ar", "kokoro+espeak-ng", 0.7),
        ("hi", "kokoro+espeak-ng", 1.1),
    ];
    for ((lang, voice), rates) in &per_language {
        let mean = rates.iter().map(|r| r.0).sum::<f64>() / rates.len() as f64;
        let mean_wer = rates.iter().map(|r| r.1).sum::<f64>() / rates.len() as f64;
        eprintln!("{lang} ({voice}): mean CER {mean:.2}, WER {mean_wer:.2} over {} recordings", rates.len());
        let bound = bounds
            .iter()
            .find(|(l, v, _)| l == lang && v == voice)
            .unwrap_or_else(|| panic!("no bound for {lang} in {voice}'s voice"))
            .2;
        assert!(mean <= bound, "{lang} ({voice}): mean CER {mean:.2} over {bound}");
    }
}
