//! Voice: audio seconds processed per wall-clock second, end to end and per stage (decode,
//! log-mel front end, encoder, greedy decoder), for each Whisper (base, the default, and
//! tiny.en). `just bench`; needs `fixtures/make_audio.py`.

use attune_decode_audio::{decode_file, AudioLimits};
use attune_infer::{Device, ModelDir, Runtime};
use attune_model_whisper::{Whisper, MODEL_NAMES};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/audio");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = Runtime::new(threads, Device::Cpu).expect("run `just setup` first");
    let limits = AudioLimits::default();
    for model in MODEL_NAMES {
        bench_model(c, &dir, &runtime, &limits, model);
    }
}

fn bench_model(c: &mut Criterion, dir: &Path, runtime: &Runtime, limits: &AudioLimits, model: &str) {
    let mut whisper = Whisper::load(runtime, &ModelDir::locate(model, None).unwrap()).unwrap();
    let limits = *limits;
    let mut g = c.benchmark_group(format!("voice/{model}"));
    g.sample_size(10);
    // A real voice (Beckett, 10.0 s, 16 kHz WAV) and an MP3 (espeak-ng, 44.1 → 16 kHz).
    for name in ["beckett.wav", "camping.mp3"] {
        let path = dir.join(name);
        let pcm = decode_file(&path, &limits).expect("run `python3 fixtures/make_audio.py` first");
        let millis = (pcm.seconds() * 1000.0) as u64;
        // Throughput in milliseconds of audio: criterion's elem/s ÷ 1000 is audio s per wall s.
        g.throughput(Throughput::Elements(millis));
        g.bench_function(format!("{name}: decode + resample"), |b| b.iter(|| decode_file(&path, &limits).unwrap()));
        g.bench_function(format!("{name}: log-mel (one 30 s window)"), |b| {
            b.iter(|| whisper.log_mel().compute(&pcm.samples))
        });
        let mel = whisper.log_mel().compute(&pcm.samples);
        g.bench_function(format!("{name}: encoder (one window)"), |b| {
            b.iter(|| whisper.encode(std::slice::from_ref(&mel)).unwrap())
        });
        let cross = whisper.encode(std::slice::from_ref(&mel)).unwrap();
        g.bench_function(format!("{name}: greedy decoder with KV cache"), |b| {
            b.iter(|| whisper.greedy(&cross).unwrap())
        });
        g.bench_function(format!("{name}: end to end"), |b| {
            b.iter(|| {
                let pcm = decode_file(&path, &limits).unwrap();
                whisper.transcribe(&pcm.samples).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
