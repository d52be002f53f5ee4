//! What a glance costs and what it sees, per glance size: each picture's peak text probability
//! on the small copy (a picture counts as holding text above the manifest's `det_threshold`),
//! and the time per picture:
//! `[THREADS=N] cargo run --release -p attune-model-ppocr --example glance_cost -- FILE…`.
//!
//! On the 2-core AMD EPYC, plain photos at 256: 11.8 ms with 2 threads, 17.7 ms with 1 with the
//! shipped detection graph; ~6 ms with 2 threads with the folded one. The peaks are ~1.0 or
//! 0.000, and 224 already misses the small camping sign.

use attune_infer::{Device, ModelDir, Runtime};
use attune_model_ppocr::{PpOcr, RgbFrame, MODEL_NAME};

fn frame(i: &attune_decode_image::RgbImage) -> RgbFrame<'_> {
    RgbFrame { width: i.width, height: i.height, data: &i.data }
}

fn main() {
    let threads: usize = std::env::var("THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(2);
    let runtime = Runtime::new(threads, Device::Cpu).expect("ONNX Runtime (run `just setup`)");
    let dir = ModelDir::locate(MODEL_NAME, None).expect("model installed (run `just setup`)");
    let images: Vec<(String, attune_decode_image::RgbImage)> = std::env::args()
        .skip(1)
        .map(|f| {
            let img = attune_decode_image::decode_file(std::path::Path::new(&f), &Default::default(), 256).unwrap();
            (f, attune_decode_image::shrink(img, 512))
        })
        .collect();
    for side in [128, 160, 192, 224, 256, 320] {
        let mut ocr = PpOcr::load(&runtime, &dir).unwrap().with_glance_side(side);
        ocr.may_hold_text(&frame(&images[0].1)).unwrap(); // warm-up
        let t = std::time::Instant::now();
        let mut peaks = Vec::new();
        for _ in 0..3 {
            peaks.clear();
            for (name, img) in &images {
                peaks.push((ocr.glance_peak(&frame(img)).unwrap(), name.rsplit('/').next().unwrap().to_string()));
            }
        }
        let per = t.elapsed().as_secs_f64() * 1e3 / (3 * images.len()) as f64;
        peaks.sort_by(|a, b| a.0.total_cmp(&b.0));
        let lowest: Vec<String> = peaks.iter().take(4).map(|(p, n)| format!("{n} {p:.3}")).collect();
        let highest: Vec<String> = peaks.iter().rev().take(2).map(|(p, n)| format!("{n} {p:.3}")).collect();
        println!(
            "glance {side:>3}: {per:5.1} ms per picture; lowest peaks {}; highest {}",
            lowest.join(", "),
            highest.join(", ")
        );
    }
}
