//! Read the text in pictures: `cargo run --release -p attune-model-ppocr --example read_text -- FILE…`.
//! Prints each line with its confidence, the lines found but not read, and the time taken.

use attune_infer::{Device, ModelDir, Runtime};
use attune_model_ppocr::{PpOcr, RgbFrame, MODEL_NAME};

fn main() {
    let runtime = Runtime::new(2, Device::Cpu).expect("ONNX Runtime (run `just setup`)");
    let dir = ModelDir::locate(MODEL_NAME, None).expect("model installed (run `just setup`)");
    let mut ocr = PpOcr::load(&runtime, &dir).expect("model loads");
    for file in std::env::args().skip(1) {
        let image = match attune_decode_image::decode_file(std::path::Path::new(&file), &Default::default(), 256) {
            Ok(image) => attune_decode_image::shrink(image, 512),
            Err(e) => {
                println!("{file}: {e}");
                continue;
            }
        };
        let t = std::time::Instant::now();
        let frame = RgbFrame { width: image.width, height: image.height, data: &image.data };
        match ocr.read(&frame) {
            Ok(text) => {
                println!(
                    "{file} ({}x{}, {:.0} ms): {} lines, {} unread",
                    image.width,
                    image.height,
                    t.elapsed().as_secs_f64() * 1e3,
                    text.lines.len(),
                    text.unread
                );
                for line in &text.lines {
                    println!("    {:.3}  {}", line.score, line.text);
                }
                for line in ocr.read_all(&frame).unwrap_or_default() {
                    let (text, score, q) = (line.text, line.score, line.corners);
                    let len = |a: (f32, f32), b: (f32, f32)| ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
                    let (w, h) = (len(q[0], q[1]), len(q[1], q[2]));
                    println!("    (every line found) {score:.3}  {text:?}  box {w:.0}x{h:.0}");
                }
            }
            Err(e) => println!("{file}: {e}"),
        }
    }
}
