//! The end-to-end tests assert outcomes that rest on models' scores: a photo's topic, a spoken
//! conversation's topic, a sensitive recording dropped. ONNX Runtime picks its kernels per
//! instruction set (AVX2, AVX-512, VNNI), so every score moves a little from one CPU to the next
//! and an outcome decided by a hair on one machine can go the other way on another. This test
//! recomputes, with the same library calls the pipeline makes, each outcome those tests assert,
//! and requires it to be decided by a stated margin:
//!
//! - scores (cosine similarity, probe and class probability): [`SCORE_MARGIN`];
//! - Whisper's greedy tokens: every chosen token leads the runner-up by [`LOGIT_MARGIN`].
//!
//! It also measures how far the scores move when ONNX Runtime runs other kernels on this machine
//! (the graphs unfused, `Optimization::Disable`, against every fusion; for the tagger's reference
//! embeddings, on a sample of them), and requires each margin to be at least [`OVER_MOVEMENT`]
//! times that, and the transcripts to be the same both ways.
//! `cargo test -p attune-cli --test it margins:: -- --nocapture` prints every margin.

use crate::common;

use attune_decode::{decode_file, DecodeOptions, Decoded};
use attune_event::Kind;
use attune_infer::{Device, ModelDir, Optimization, Runtime};
use attune_model_whisper::Whisper;
use attune_pipeline::{load_image_model, load_text_model, special_category_classifier, ImageClassifier, TextEmbedder};
use attune_pipeline::{DEFAULT_IMAGE_MODEL, DEFAULT_SPEECH_MODEL, DEFAULT_TEXT_MODELS};
use attune_tag::{Calibration, ImageTagConfig, ImageTagger, Margins, TextTagger, Verdict};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// Scores are similarities and probabilities in [0, 1]; they moved by at most ~1e-5 between
/// kernel sets here. A decision the tests rely on must clear its bar by 100 times more.
const SCORE_MARGIN: f32 = 0.005;
/// Whisper's logits moved by ~1e-4 between kernel sets; a chosen token must lead by more.
const LOGIT_MARGIN: f32 = 0.05;
/// Every margin must also be this many times the largest movement measured in this run.
const OVER_MOVEMENT: f32 = 20.0;

/// One set of models, built at one optimisation level.
struct Models {
    embedder: Box<dyn TextEmbedder>,
    text: TextTagger,
    images: Box<dyn ImageClassifier>,
    image_tagger: ImageTagger,
    speech: Whisper,
}

impl Models {
    fn load(optimization: Optimization) -> Models {
        let runtime = Runtime::new(2, Device::Cpu).unwrap().with_optimization(optimization);
        // The run's default text model, with its special-category classifier when it has one.
        let mut embedder = load_text_model(DEFAULT_TEXT_MODELS[0], &runtime, None, 32).unwrap();
        let calibration = Calibration::for_model(embedder.id(), embedder.dimensions()).unwrap();
        // The reference embeddings are the shipped ones, as a run reads them from a fresh cache
        // (and as fast), for both kernel sets: how far the other kernels move the references
        // themselves is measured on a sample of them ([`Check::reference_movement`]).
        let cache = tempfile::tempdir().unwrap();
        let mut text = TextTagger::with_reference_cache(embedder.as_mut(), calibration, Some(cache.path())).unwrap();
        if let Some(classifier) = special_category_classifier(embedder.id(), &runtime) {
            text = text.with_classifier(classifier.unwrap(), embedder.as_ref()).unwrap();
        }
        let images = load_image_model(DEFAULT_IMAGE_MODEL, &runtime, None, 16).unwrap();
        let speech = Whisper::load(&runtime, &ModelDir::locate(DEFAULT_SPEECH_MODEL, None).unwrap()).unwrap();
        Models { embedder, text, images, image_tagger: ImageTagger::new(ImageTagConfig::default()).unwrap(), speech }
    }

    /// The text path as the pipeline runs it: lexicon, then segments and their embeddings.
    fn text(&mut self, text: &str) -> (Verdict, Margins) {
        let segments = self.text.segments(text);
        let encoded = self.text.encode(self.embedder.as_mut(), std::slice::from_ref(&segments)).unwrap();
        let gate = attune_lang::LanguageGate::with_defaults();
        let text = gate.admit(text).unwrap_or_else(|d| panic!("the language gate skips {text:?}: {d:?}"));
        (self.text.tag(&text, &segments, encoded.item(0)), self.text.margins(text.text(), &segments, encoded.item(0)))
    }

    fn image(&mut self, image: &attune_decode::image::RgbImage) -> Margins {
        let frame = attune_pipeline::RgbFrame { width: image.width, height: image.height, data: &image.data };
        let probabilities = self.images.classify(&[frame]).unwrap().remove(0);
        self.image_tagger.margins(&probabilities)
    }

    /// The transcript and its smallest logit lead.
    fn speech(&mut self, pcm: &[f32]) -> (String, f32) {
        let t = self.speech.transcribe(pcm).unwrap();
        (t.text, t.min_logit_gap)
    }
}

/// Margins computed both ways, and what the test learnt from them.
struct Check {
    fused: Models,
    unfused: Models,
    /// The largest score movement between the two kernel sets, over everything compared.
    moved: f32,
    /// (what, margin, unit) of every decision asserted.
    decisions: Vec<(String, f32, &'static str)>,
}

impl Check {
    /// How far the unfused kernels put one reference text in 16 (node and category descriptions,
    /// example chats) from the shipped vectors, which both sets of models read: a cosine
    /// similarity with a reference moves by at most that distance, and a node's vector (a
    /// normalised mean of references) by about as much, so twice it is added to every score's
    /// movement. (Computing all ~18,000 references on the unfused kernels instead took this test
    /// ~7 minutes of CI's 2 cores.)
    fn reference_movement(&mut self) {
        let embedder = self.unfused.embedder.as_mut();
        let calibration = Calibration::for_model(embedder.id(), embedder.dimensions()).unwrap();
        let drift = TextTagger::reference_drift(embedder, &calibration, 16).unwrap();
        println!(
            "reference embeddings on the unfused kernels: {} compared, at most {:.2e} from the shipped ones",
            drift.compared, drift.largest
        );
        assert!(drift.compared > 1_000, "{drift:?}");
        self.moved = self.moved.max(2.0 * drift.largest);
    }

    fn note_movement(&mut self, a: &Margins, b: &Margins) {
        self.moved = self.moved.max((a.sensitive - b.sensitive).abs());
        if let (Some(x), Some(y)) = (a.lexicon, b.lexicon) {
            self.moved = self.moved.max((x - y).abs());
        }
        let b_topics: HashMap<u32, f32> = b.topics.iter().copied().collect();
        for (id, e) in &a.topics {
            self.moved = self.moved.max((e - b_topics[id]).abs());
        }
    }

    /// The text's margins both ways: the transcript (or text) tagged by each set of models.
    fn text(&mut self, text_a: &str, text_b: &str) -> (Verdict, Margins) {
        let (verdict, a) = self.fused.text(text_a);
        let (_, b) = self.unfused.text(text_b);
        if text_a == text_b {
            self.note_movement(&a, &b);
        }
        (verdict, a)
    }

    fn image(&mut self, image: &attune_decode::image::RgbImage) -> Margins {
        let a = self.fused.image(image);
        let b = self.unfused.image(image);
        self.note_movement(&a, &b);
        a
    }

    /// The transcript (the same both ways, or the test fails), every token of it decided by
    /// [`LOGIT_MARGIN`].
    fn speech(&mut self, what: &str, pcm: &[f32]) -> String {
        let (text, other, gap) = self.transcripts(pcm);
        assert_eq!(text, other, "{what}: the transcript depends on the kernels");
        self.decisions.push((format!("{what}: transcript `{text}`"), gap, "logit"));
        text
    }

    /// The transcript, when it is the same both ways and every token of it is decided by
    /// [`LOGIT_MARGIN`]; for an outcome the tests assert of a share of the recordings, where one
    /// whose transcript another CPU could spell differently is simply not counted.
    fn speech_if_decided(&mut self, what: &str, pcm: &[f32]) -> Option<String> {
        let (text, other, gap) = self.transcripts(pcm);
        if text != other || gap < LOGIT_MARGIN {
            eprintln!("{what}: not counted, `{text}` (`{other}` on the other kernels) leads by {gap:.4} logit");
            return None;
        }
        self.decisions.push((format!("{what}: transcript `{text}`"), gap, "logit"));
        Some(text)
    }

    /// The transcript on each kernel set, and the smallest logit lead of the fused one's tokens.
    fn transcripts(&mut self, pcm: &[f32]) -> (String, String, f32) {
        let (text, gap) = self.fused.speech(pcm);
        let (other, _) = self.unfused.speech(pcm);
        (text, other, gap)
    }

    fn decided(&mut self, what: String, margin: f32) {
        self.decisions.push((what, margin, "score"));
    }

    /// A topic given, decided by its margin.
    fn topic_given(&mut self, what: &str, margins: &Margins, topic: u32) {
        self.decided(format!("{what}: topic {topic} given"), margins.topic_presence(topic));
        // …and the item was not dropped, by its own margin (negative excess = not sensitive).
        self.decided(format!("{what}: not sensitive"), -margins.sensitive);
    }

    /// Dropped as sensitive: by the lexicon (no score to move), or by a score past its bar.
    fn dropped(&mut self, what: &str, verdict: &Verdict, margins: &Margins) {
        assert!(matches!(verdict, Verdict::Sensitive { .. }), "{what} is not dropped: {verdict:?}");
        self.decided(format!("{what}: dropped ({verdict:?})"), margins.of_verdict(verdict));
    }
}

fn fixture(path: &str, made_by: &str) -> (std::path::PathBuf, Vec<Value>) {
    let manifest = common::root().join(path);
    let lines = common::manifest_lines(&manifest, made_by);
    (manifest.parent().unwrap().to_path_buf(), lines)
}

fn decoded(dir: &Path, line: &Value, kind: Kind) -> Decoded {
    decode_file(kind, &dir.join(line["media"].as_str().unwrap()), &DecodeOptions::default()).unwrap()
}

#[test]
fn every_model_decision_the_end_to_end_tests_assert_holds_by_a_margin() {
    let mut check = Check {
        fused: Models::load(Optimization::All),
        unfused: Models::load(Optimization::Disable),
        moved: 0.0,
        decisions: Vec::new(),
    };
    check.reference_movement();

    // Photos (tests/images.rs): each good photo gives its topic.
    let (dir, lines) = fixture("fixtures/images/manifest.jsonl", "fixtures/make_images.py");
    for line in lines.iter().filter(|l| l["expect"]["outcome"] == "processed") {
        let Decoded::Image(image) = decoded(&dir, line, Kind::Image) else { panic!("not an image") };
        let margins = check.image(&image);
        let topic: u32 = line["expect"]["topics"][0].as_str().unwrap().parse().unwrap();
        check.topic_given(line["media"].as_str().unwrap(), &margins, topic);
    }

    // Recordings (tests/voice.rs): the sensitive one dropped; the others give their typed
    // text's topic. That test asks 85% of them to agree; here every one counted must agree by a
    // margin, its transcript too, and enough of them must for 85%.
    let (dir, lines) = fixture("fixtures/audio/manifest.jsonl", "fixtures/make_audio.py");
    let texts = common::typed_texts(&dir);
    let (mut spoken, mut agreeing) = (0, 0);
    for line in lines.iter().filter(|l| l["kind"] == "audio") {
        let media = line["media"].as_str().unwrap();
        match line["expect"]["outcome"].as_str().unwrap() {
            "sensitive" => {
                let Decoded::Audio(pcm) = decoded(&dir, line, Kind::Audio) else { panic!("not audio") };
                let transcript = check.speech(media, &pcm.samples);
                let (verdict, margins) = check.text(&transcript, &transcript);
                check.dropped(media, &verdict, &margins);
            }
            "processed" if line["expect"]["spoken"].is_string() => {
                spoken += 1;
                let Decoded::Audio(pcm) = decoded(&dir, line, Kind::Audio) else { panic!("not audio") };
                let Some(transcript) = check.speech_if_decided(media, &pcm.samples) else { continue };
                let typed = &texts[media];
                let (_, typed_margins) = check.text(typed, typed);
                let (_, margins) = check.text(&transcript, &transcript);
                // Agreeing: the typed text's best topic is given to the transcript.
                let topic = typed_margins.topics[0].0;
                if margins.topic_presence(topic) >= SCORE_MARGIN && -margins.sensitive >= SCORE_MARGIN {
                    agreeing += 1;
                    check.topic_given(&format!("{media} (typed: {topic})"), &margins, topic);
                } else {
                    eprintln!("{media}: not counted as agreeing (`{transcript}`)");
                }
            }
            _ => {}
        }
    }
    assert!(agreeing * 100 >= spoken * 85, "{agreeing} of {spoken} recordings agree by a margin");

    // Videos (tests/video.rs): the photo's topic from the frames, the conversation's from the
    // soundtrack; the sensitive conversation dropped.
    let (dir, lines) = fixture("fixtures/video/manifest.jsonl", "fixtures/make_video.py");
    for line in lines.iter().filter(|l| l["expect"]["shown"].is_string()) {
        let media = line["media"].as_str().unwrap();
        let Decoded::Video(video) = decoded(&dir, line, Kind::Video) else { panic!("not a video") };
        let pcm = video.audio.as_ref().expect("a soundtrack");
        let transcript = check.speech(media, &pcm.samples);
        let (verdict, speech) = check.text(&transcript, &transcript);
        if line["expect"]["outcome"] == "sensitive" {
            check.dropped(media, &verdict, &speech);
            continue;
        }
        let topics: Vec<u32> =
            line["expect"]["topics"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().parse().unwrap()).collect();
        let frames: Vec<Margins> = video.frames.iter().map(|f| check.image(&f.image)).collect();
        for topic in topics {
            // From the pictures (its best frame) or from the speech, whichever decides it more.
            let best_frame = frames.iter().max_by(|a, b| a.topic_presence(topic).total_cmp(&b.topic_presence(topic)));
            let from_frames = best_frame.map_or(f32::NEG_INFINITY, |m| m.topic_presence(topic));
            if from_frames >= speech.topic_presence(topic) {
                check.topic_given(&format!("{media} frames"), best_frame.unwrap(), topic);
            } else {
                check.topic_given(&format!("{media} speech"), &speech, topic);
            }
        }
        for (k, frame) in frames.iter().enumerate() {
            check.decided(format!("{media} frame {k}: not sensitive"), -frame.sensitive);
        }
    }

    // The sample manifest (tests/sample.rs): every sensitive conversation is dropped. (It holds
    // malformed lines on purpose.)
    let sample = std::fs::read_to_string(common::root().join("fixtures/sample/manifest.jsonl")).unwrap();
    let lines: Vec<Value> = sample.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    // A sensitive chat the language gate does not admit is skipped before any model sees it:
    // kept out by lingua's n-gram counts, which involve no kernel choice.
    let gate = attune_lang::LanguageGate::with_defaults();
    for line in lines.iter().filter(|l| l["expect"]["outcome"] == "sensitive") {
        let text = line["text"].as_str().unwrap();
        if gate.admit(text).is_err() {
            continue;
        }
        let (verdict, margins) = check.text(text, text);
        check.dropped(line["event_id"].as_str().unwrap(), &verdict, &margins);
    }

    // Long sessions with one sensitive message (tests/languages.rs): each dropped.
    for (k, session) in common::mixed_long_sessions(crate::languages::SESSIONS_PER_LANGUAGE).iter().enumerate() {
        let text = session["text"].as_str().unwrap();
        if gate.admit(text).is_err() {
            continue;
        }
        let (verdict, margins) = check.text(text, text);
        check.dropped(&format!("long session {k} ({})", session["lang"]), &verdict, &margins);
    }

    let moved = check.moved;
    println!("largest score movement between fused and unfused kernels: {moved:.2e}");
    let mut failures = Vec::new();
    for (what, margin, unit) in &check.decisions {
        let floor = match *unit {
            "logit" => LOGIT_MARGIN,
            _ => SCORE_MARGIN.max(OVER_MOVEMENT * moved),
        };
        let ok = *margin >= floor;
        println!("{} {margin:>9.4} {unit:<5} {what}", if ok { "  " } else { "!!" });
        if !ok {
            failures.push(format!("{what}: margin {margin:.4} {unit} < {floor:.4}"));
        }
    }
    assert!(failures.is_empty(), "decided by less than the stated margin:\n{}", failures.join("\n"));
}
