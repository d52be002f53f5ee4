//! Photos: 12-megapixel JPEGs through decode (reduced scale), preprocessing and EfficientNet-Lite0,
//! each stage alone and end to end. `just bench`; needs `fixtures/make_images.py`.

use attune_decode_image::{decode_bytes, ImageLimits};
use attune_infer::{Device, ModelDir, Runtime};
use attune_model_efficientnet::{EfficientNet, RgbFrame, MODEL_NAME};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;

fn bench(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images/big-12mp.jpg");
    let bytes = std::fs::read(&path).expect("run `python3 fixtures/make_images.py` first");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = Runtime::new(threads, Device::Cpu).expect("run `just setup` first");
    let mut model = EfficientNet::load(&runtime, &ModelDir::locate(MODEL_NAME, None).unwrap()).unwrap();
    let limits = ImageLimits::default();
    let short = model.min_short_side();

    let mut g = c.benchmark_group("images 12MP JPEG");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode at reduced scale (1/8)", |b| b.iter(|| decode_bytes(&bytes, &limits, short).unwrap()));
    g.bench_function("decode at full scale (for comparison)", |b| b.iter(|| decode_bytes(&bytes, &limits, 0).unwrap()));

    let img = decode_bytes(&bytes, &limits, short).unwrap();
    let frame = RgbFrame { width: img.width, height: img.height, data: &img.data };
    g.bench_function("preprocess (crop, resize to 224, normalise)", |b| b.iter(|| model.preprocess(&frame).unwrap()));
    let full = decode_bytes(&bytes, &limits, 0).unwrap();
    let full_frame = RgbFrame { width: full.width, height: full.height, data: &full.data };
    g.bench_function("preprocess from full scale (for comparison)", |b| {
        b.iter(|| model.preprocess(&full_frame).unwrap())
    });

    let batch = 16;
    let tensors: Vec<_> = (0..batch).map(|_| model.preprocess(&frame).unwrap()).collect();
    g.throughput(Throughput::Elements(batch as u64));
    g.bench_function("inference, batch of 16", |b| {
        b.iter(|| model.classify(&tensors.iter().collect::<Vec<_>>()).unwrap())
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("inference, batch of 1", |b| b.iter(|| model.classify(&[&tensors[0]]).unwrap()));

    g.throughput(Throughput::Elements(batch as u64));
    g.bench_function("end to end: 16 images decoded, preprocessed, one batch", |b| {
        b.iter(|| {
            let t: Vec<_> = (0..batch)
                .map(|_| {
                    let img = decode_bytes(&bytes, &limits, short).unwrap();
                    model.preprocess(&RgbFrame { width: img.width, height: img.height, data: &img.data }).unwrap()
                })
                .collect();
            model.classify(&t.iter().collect::<Vec<_>>()).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
