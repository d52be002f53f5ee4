//! What a glance costs and what it misses, per glance size:
//! `cargo run --release -p attune-model-ppocr --example glance_cost -- FILE…`.

use attune_infer::{Device, ModelDir, Runtime};
use attune_model_ppocr::{PpOcr, RgbFrame, MODEL_NAME};

fn frame(i: &attune_decode_image::RgbImage) -> RgbFrame<'_> {
    RgbFrame { width: i.width, height: i.height, data: &i.data }
}

fn main() {
    let runtime = Runtime::new(2, Device::Cpu).expect("ONNX Runtime (run `just setup`)");
    let dir = ModelDir::locate(MODEL_NAME, None).expect("model installed (run `just setup`)");
    let images: Vec<(String, attune_decode_image::RgbImage)> = std::env::args()
        .skip(1)
        .map(|f| {
            let img = attune_decode_image::decode_file(std::path::Path::new(&f), &Default::default(), 256).unwrap();
            (f, attune_decode_image::shrink(img, 512))
        })
        .collect();
    for side in [128, 160, 192, 224, 256, 320, 384, 512] {
        let mut ocr = PpOcr::load(&runtime, &dir).unwrap().with_glance_side(side);
        ocr.may_hold_text(&frame(&images[0].1)).unwrap(); // warm-up
        let t = std::time::Instant::now();
        let mut missed = Vec::new();
        for _ in 0..3 {
            missed.clear();
            for (name, img) in &images {
                if !ocr.may_hold_text(&frame(img)).unwrap() {
                    missed.push(name.rsplit('/').next().unwrap().to_string());
                }
            }
        }
        let per = t.elapsed().as_secs_f64() * 1e3 / (3 * images.len()) as f64;
        println!("glance {side:>3}: {per:5.1} ms per picture; no text seen in {}: {}", missed.len(), missed.join(" "));
    }
}
