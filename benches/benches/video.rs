//! Video: seconds of 1080p video processed per wall-clock second, for each sampling strategy, on
//! a clip with a keyframe every second and one with x264's default (every 8.3 s). Decode alone,
//! and end to end (decode, EfficientNet on the sampled frames, Whisper on the soundtrack).
//! `just bench`; needs `fixtures/make_video.py`.
//!
//! Criterion's rates are in milliseconds of video: elem/s ÷ 1000 is video seconds per second.

use attune_decode_video::{decode_file, Sampling, VideoOptions};
use attune_infer::{Device, ModelDir, Runtime};
use attune_model_efficientnet::{EfficientNet, RgbFrame};
use attune_model_whisper::Whisper;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/video");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = Runtime::new(threads, Device::Cpu).expect("run `just setup` first");
    let mut classifier =
        EfficientNet::load(&runtime, &ModelDir::locate(attune_model_efficientnet::MODEL_NAME, None).unwrap()).unwrap();
    let mut whisper =
        Whisper::load(&runtime, &ModelDir::locate(attune_model_whisper::MULTILINGUAL_MODEL, None).unwrap()).unwrap();

    let mut g = c.benchmark_group("video 1080p");
    g.sample_size(10);
    for clip in ["bench-1080p-gop1s.mp4", "bench-1080p-gop8s.mp4"] {
        let path = dir.join(clip);
        let probe = decode_file(&path, &VideoOptions::default()).expect("run `python3 fixtures/make_video.py` first");
        g.throughput(Throughput::Elements((probe.duration_s * 1000.0) as u64));
        for (name, sampling) in
            [("keyframes", Sampling::Keyframes), ("every-frame", Sampling::EveryFrame), ("auto", Sampling::Auto)]
        {
            let options =
                VideoOptions { sampling, frame_short_side: classifier.min_short_side(), ..Default::default() };
            let v = decode_file(&path, &options).unwrap();
            eprintln!(
                "{clip} {name}: {} frames kept of {} decoded ({:?}), keyframe gap {:?}",
                v.frames.len(),
                v.decoded_frames,
                v.strategy,
                v.keyframe_gap_s
            );
            g.bench_function(format!("{clip}: decode, {name}"), |b| b.iter(|| decode_file(&path, &options).unwrap()));
            g.bench_function(format!("{clip}: end to end, {name}"), |b| {
                b.iter(|| {
                    let v = decode_file(&path, &options).unwrap();
                    let tensors: Vec<_> = v
                        .frames
                        .iter()
                        .map(|f| {
                            let frame = RgbFrame { width: f.image.width, height: f.image.height, data: &f.image.data };
                            classifier.preprocess(&frame).unwrap()
                        })
                        .collect();
                    for chunk in tensors.chunks(16) {
                        classifier.classify(&chunk.iter().collect::<Vec<_>>()).unwrap();
                    }
                    whisper.transcribe(&v.audio.unwrap().samples).unwrap()
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
