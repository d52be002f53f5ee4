//! Chat-text throughput: the model alone, the tagger alone, and the whole pipeline on the
//! sample manifest (manifest → gate → embed → tag → SQLite). `just bench`.

use attune_infer::{Device, Runtime};
use attune_pipeline::{
    load_text_model, special_category_classifier, Pipeline, SpeechSessions, TextEmbedder, ENGLISH_TEXT_MODEL,
    MULTILINGUAL_TEXT_MODEL,
};
use attune_policy::Policy;
use attune_profile::{Provenance, SqliteStore};
use attune_tag::{Calibration, Segments, TextTagger};
use attune_testkit::repo_root as root;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// The `text` of every line of a labelled set or manifest (JSON Lines), from the repository root.
fn texts_of(path: &str) -> Vec<String> {
    std::fs::read_to_string(root().join(path))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].as_str().unwrap().to_string())
        .collect()
}

fn model(threads: usize) -> Box<dyn TextEmbedder> {
    let runtime = Runtime::new(threads, Device::Cpu).expect("run `just setup` first");
    load_text_model(ENGLISH_TEXT_MODEL, &runtime, None, 32).unwrap()
}

fn bench(c: &mut Criterion) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let texts = texts_of("fixtures/conversations/tuning.jsonl");
    let mut embedder = model(threads);
    let calibration = Calibration::for_model(embedder.id(), embedder.dimensions()).unwrap();
    let tagger = TextTagger::new(embedder.as_mut(), calibration).unwrap();

    let mut g = c.benchmark_group("text");
    g.sample_size(10);

    let batch: Vec<String> = texts.iter().take(32).cloned().collect();
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function("embed 32 conversations (one model call)", |b| b.iter(|| embedder.run_batch(&batch).unwrap()));

    let segments: Vec<Segments> = texts.iter().map(|t| tagger.segments(t)).collect();
    let flat: Vec<String> = segments.iter().flat_map(|s| s.texts.iter().cloned()).collect();
    let mut vectors = Vec::new();
    for chunk in flat.chunks(32) {
        vectors.extend(embedder.run_batch(chunk).unwrap());
    }
    let gate = policy_default_gate();
    g.throughput(Throughput::Elements(texts.len() as u64));
    g.bench_function("language gate (lingua, 12 supported + 22 decoys)", |b| {
        b.iter(|| {
            for t in &texts {
                std::hint::black_box(gate.decide(t));
            }
        })
    });
    // The lexicon on the never-tuned long sessions (5–10 messages of one language, 12
    // languages, most of them not ASCII): every run matches each text once, before encoding.
    let sessions = texts_of("fixtures/long_chats/holdout.jsonl");
    g.throughput(Throughput::Elements(sessions.len() as u64));
    g.bench_function(format!("lexicon: {} long sessions in 12 languages (sessions)", sessions.len()), |b| {
        b.iter(|| {
            for t in &sessions {
                std::hint::black_box(tagger.lexicon_match(t));
            }
        })
    });
    g.throughput(Throughput::Elements(texts.len() as u64));
    let admitted: Vec<_> = texts.iter().map(|t| gate.admit(t).ok()).collect();
    g.bench_function("tag precomputed embeddings (lexicon + 497 nodes)", |b| {
        b.iter(|| {
            let mut at = 0;
            for (t, s) in admitted.iter().zip(&segments) {
                let n = s.texts.len();
                if let Some(t) = t {
                    std::hint::black_box(tagger.tag(t, s, attune_tag::EncodedRef::vectors(&vectors[at..at + n])));
                }
                at += n;
            }
        })
    });

    let manifest = root().join("fixtures/sample/manifest.jsonl");
    let events = std::fs::read_to_string(&manifest).unwrap().lines().count() as u64;
    let policy = Policy::from_file(&root().join("fixtures/sample/policy.toml")).unwrap();
    let languages = policy.language_gate().unwrap();
    g.throughput(Throughput::Elements(events));
    g.bench_function("pipeline: sample manifest end to end (events)", |b| {
        b.iter(|| {
            let mut store = SqliteStore::open_in_memory().unwrap();
            let mut source = attune_event::ManifestSource::open(&manifest).unwrap();
            let provenance = Provenance { taxonomy: "bench".into(), model_set: "bench".into() };
            let report = Pipeline::builder(&policy, &languages, &mut store, provenance)
                .text_paths(vec![attune_pipeline::TextPath::borrowing(embedder.as_mut(), tagger.clone())])
                .text_in_pictures(attune_pipeline::PictureReading::Off)
                .speech(SpeechSessions::unavailable("no speech model in this bench"))
                .build()
                .run(&mut source, &mut |_| {})
                .unwrap();
            assert_eq!(report.events, events);
        })
    });
    g.finish();
}

/// The multilingual path: multilingual-e5-small with the special-category classifier (its
/// fine-tuned top layers on the encoder's `hidden_state_8`), on 120 chats of the calibration
/// split (10 per supported language): the encoder alone on the segments the tagger embeds, the same segments
/// encoded with the classifier (`TextTagger::encode`: one model call gives both), and each chat
/// encoded once whole (what a plain once-per-chat loop does, checking nothing).
fn bench_multilingual(c: &mut Criterion) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = Runtime::new(threads, Device::Cpu).expect("run `just setup` first");
    let mut embedder = load_text_model(MULTILINGUAL_TEXT_MODEL, &runtime, None, 32).unwrap();
    let calibration = Calibration::for_model(embedder.id(), embedder.dimensions()).unwrap();
    let classifier = special_category_classifier(embedder.id(), &runtime).expect("a classifier for e5").unwrap();
    let tagger = TextTagger::new(embedder.as_mut(), calibration)
        .unwrap()
        .with_classifier(classifier, embedder.as_ref())
        .unwrap();
    let mut texts = Vec::new();
    for entry in std::fs::read_dir(root().join("fixtures/sensitivity")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".calib.jsonl") {
            texts.extend(texts_of(&format!("fixtures/sensitivity/{name}")).into_iter().step_by(10));
        }
    }
    // What the tagger embeds: each chat's windows, and the clauses its classifier does not read
    // in place (none, for a classifier that reads them all there).
    let segments: Vec<_> = texts.iter().map(|t| tagger.segments(t)).collect();
    let flat: Vec<String> = segments.iter().flat_map(|s| s.texts.iter().cloned()).collect();
    let mut g = c.benchmark_group("text-multilingual");
    g.sample_size(10);
    g.throughput(Throughput::Elements(texts.len() as u64));
    g.bench_function(format!("e5: {} segments of {} chats, encoder alone (chats)", flat.len(), texts.len()), |b| {
        b.iter(|| attune_infer::run_in_batches_by_size(embedder.as_mut(), &flat, String::len).unwrap())
    });
    g.bench_function("e5: the same segments with the special-category classifier (chats)", |b| {
        b.iter(|| tagger.encode(embedder.as_mut(), &segments).unwrap())
    });
    g.bench_function("e5: each chat encoded once whole, nothing checked (chats)", |b| {
        b.iter(|| attune_infer::run_in_batches_by_size(embedder.as_mut(), &texts, String::len).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench, bench_multilingual);
criterion_main!(benches);

fn policy_default_gate() -> attune_lang::LanguageGate {
    Policy::default().language_gate().unwrap()
}
