//! The compliance test every registered model runs: each installed model of each task, found
//! through the registry as a run finds it (a new model crate is tested by registering it). A
//! batch gives one output per input, the same outputs as one-by-one calls, and a malformed
//! input is an error, not a panic.

use attune_infer::{run_in_batches, LoadOptions, RgbFrame, SpeechRequest, Task, TextEmbedder};
use attune_pipeline::MODELS;
use attune_testkit::cpu_runtime;

/// The installed models of `task` that this build runs; at least one (a default installation
/// has one of each).
fn installed(task: Task) -> Vec<String> {
    let names = MODELS.installed(task, None);
    assert!(!names.is_empty(), "no {task} model is installed (run `just setup`)");
    names
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn gradient(width: u32, height: u32) -> Vec<u8> {
    (0..width * height).flat_map(|i| [(i % width * 255 / width) as u8, (i / width * 255 / height) as u8, 90]).collect()
}

#[test]
fn text_embedders_batch_as_they_run_one_by_one() {
    let texts: Vec<String> = [
        "any tips for a first sailing trip on a small dinghy?",
        "¿Qué raqueta de pádel me compro si juego dos veces por semana?",
        "",
        "रविवार को दिल्ली में कौन सी फिल्म देखें?",
        &"a long message about the best hiking boots for wet weather in the mountains ".repeat(12),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let runtime = cpu_runtime(2);
    for name in installed(Task::TextEmbedding) {
        let options = LoadOptions { max_batch: Some(2), ..LoadOptions::default() };
        let mut model: Box<dyn TextEmbedder> = MODELS.text_embedder(&name, &runtime, None, &options).unwrap();
        let batched = run_in_batches(model.as_mut(), &texts).unwrap();
        assert_eq!(batched.len(), texts.len(), "{name}: one output per input");
        for (text, vector) in texts.iter().zip(&batched) {
            assert_eq!(vector.len(), model.dimensions(), "{name}");
            let alone = model.run_batch(std::slice::from_ref(text)).unwrap();
            assert_eq!(alone.len(), 1, "{name}");
            let similarity = cosine(vector, &alone[0]);
            assert!(similarity > 0.999, "{name}: {text:?} batched vs alone {similarity}");
            let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-3, "{name}: unit length, not {norm}");
        }
        assert_eq!(model.embed_passages(&texts).unwrap().len(), texts.len(), "{name}");
        // An empty batch: nothing, or an error; never a panic.
        assert!(model.run_batch(&[]).map(|v| v.is_empty()).unwrap_or(true), "{name}: an empty batch");
    }
}

#[test]
fn image_classifiers_batch_as_they_run_one_by_one() {
    let (wide, small) = (gradient(300, 200), gradient(40, 64));
    let flat = vec![128u8; 64 * 64 * 3];
    let frames = [
        RgbFrame { width: 300, height: 200, data: &wide },
        RgbFrame { width: 40, height: 64, data: &small },
        RgbFrame { width: 64, height: 64, data: &flat },
    ];
    let runtime = cpu_runtime(2);
    for name in installed(Task::ImageClassification) {
        let options = LoadOptions { max_batch: Some(2), ..LoadOptions::default() };
        let mut model = MODELS.image_classifier(&name, &runtime, None, &options).unwrap();
        let batched = model.classify(&frames).unwrap();
        assert_eq!(batched.len(), frames.len(), "{name}: one output per input");
        for (frame, probabilities) in frames.iter().zip(&batched) {
            let alone = model.classify(std::slice::from_ref(frame)).unwrap();
            assert_eq!(alone.len(), 1, "{name}");
            let gap = probabilities.iter().zip(&alone[0]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(gap < 1e-4, "{name}: batched vs alone differ by {gap}");
            let sum: f32 = probabilities.iter().sum();
            assert!((sum - 1.0).abs() < 1e-3, "{name}: probabilities sum to {sum}");
        }
        for broken in [RgbFrame { width: 4, height: 4, data: &[0; 5] }, RgbFrame { width: 0, height: 0, data: &[] }] {
            assert!(model.classify(&[broken]).is_err(), "{name}: a malformed picture is an error");
        }
    }
}

#[test]
fn text_in_pictures_readers_read_nothing_in_a_blank_picture_and_refuse_a_broken_one() {
    let blank = vec![255u8; 320 * 240 * 3];
    let runtime = cpu_runtime(2);
    for name in installed(Task::TextInPictures) {
        let mut model = MODELS.text_in_pictures(&name, &runtime, None, &LoadOptions::default()).unwrap();
        let read = model.read(&RgbFrame { width: 320, height: 240, data: &blank }).unwrap();
        assert!(read.lines.is_empty() && read.unread == 0, "{name}: {read:?}");
        assert!(model.read(&RgbFrame { width: 4, height: 4, data: &[0; 5] }).is_err(), "{name}");
    }
}

#[test]
fn speech_models_give_one_result_per_recording() {
    let runtime = cpu_runtime(1);
    let silence = vec![0f32; 16_000];
    let empty: Vec<f32> = Vec::new();
    for name in installed(Task::SpeechToText) {
        let (dir, load) = MODELS.speech_to_text(&name, None).unwrap();
        let options = LoadOptions { languages: vec!["en".into(), "es".into()], ..LoadOptions::default() };
        let mut model = load(&runtime, &dir, &options).unwrap();
        assert_eq!(model.id(), dir.id(), "{name}: the id known before loading is the loaded model's");
        let requests =
            [SpeechRequest::detect(&silence), SpeechRequest::detect(&empty), SpeechRequest::detect(&silence)];
        let results = model.transcribe(&requests);
        assert_eq!(results.len(), requests.len(), "{name}: one result per recording");
        for result in results.iter().flatten() {
            assert!(result.text.trim().is_empty(), "{name}: silence transcribed as {:?}", result.text);
        }
    }
}
