//! Photos: 12-megapixel JPEGs through decode (reduced scale), preprocessing and EfficientNet-Lite0,
//! each stage alone and end to end, without and with reading the text in pictures (PP-OCRv4: a
//! glance at every photo, the full read only where it sees text). `just bench`; needs
//! `fixtures/make_images.py` and `fixtures/make_ocr.py`.

use attune_decode_image::{decode_bytes, ImageLimits};
use attune_infer::{Device, ModelDir, Runtime};
use attune_model_efficientnet::{EfficientNet, RgbFrame, MODEL_NAME};
use attune_model_ppocr::PpOcr;
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

    // Text in pictures, on the image as the pipeline hands it over (at most 512 on its shorter side).
    let mut ocr = PpOcr::load(&runtime, &ModelDir::locate(attune_model_ppocr::MODEL_NAME, None).unwrap()).unwrap();
    let shrunk = attune_decode_image::shrink(img.clone(), short * 2);
    assert!(ocr.read(&ocr_frame(&shrunk)).unwrap().lines.is_empty(), "the 12 MP photo has no text");
    g.throughput(Throughput::Elements(1));
    g.bench_function("text in pictures: a photo without text (the glance)", |b| {
        b.iter(|| ocr.read(&ocr_frame(&shrunk)).unwrap())
    });
    let sign = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/ocr/sign-surf.png");
    let sign = attune_decode_image::decode_file(&sign, &limits, short).expect("run `python3 fixtures/make_ocr.py`");
    g.bench_function("text in pictures: a sign of two lines (glance, detect, angle, read)", |b| {
        b.iter(|| ocr.read(&ocr_frame(&sign)).unwrap())
    });
    g.throughput(Throughput::Elements(batch as u64));
    g.bench_function("end to end with text in pictures: 16 photos without text", |b| {
        b.iter(|| {
            let t: Vec<_> = (0..batch)
                .map(|_| {
                    let img = decode_bytes(&bytes, &limits, short).unwrap();
                    let img = attune_decode_image::shrink(img, short * 2);
                    ocr.read(&ocr_frame(&img)).unwrap();
                    model.preprocess(&RgbFrame { width: img.width, height: img.height, data: &img.data }).unwrap()
                })
                .collect();
            model.classify(&t.iter().collect::<Vec<_>>()).unwrap()
        })
    });
    g.finish();
}

fn ocr_frame(i: &attune_decode_image::RgbImage) -> attune_model_ppocr::RgbFrame<'_> {
    attune_model_ppocr::RgbFrame { width: i.width, height: i.height, data: &i.data }
}

criterion_group!(benches, bench);
criterion_main!(benches);
