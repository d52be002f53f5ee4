//! attune's decoding, preprocessing and inference against a reference run of the same ONNX in
//! onnxruntime-python with Pillow preprocessing (`models/efficientnet-lite0/reference.py`, whose
//! output is committed): same top-5 labels, probabilities within 1e-3.

use attune_decode_image::{decode_file, ImageLimits};
use attune_model_efficientnet::{top_k, EfficientNet, RgbFrame, MODEL_NAME};
use attune_testkit::{cpu_runtime, installed_model, repo_root as root};

#[test]
fn top5_matches_onnxruntime_python_within_1e_3() {
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("models/efficientnet-lite0/reference-top5.json")).unwrap(),
    )
    .unwrap();
    let mut model = EfficientNet::load(&cpu_runtime(2), &installed_model(MODEL_NAME)).unwrap();
    let mut worst = 0f32;
    let mut tensors = Vec::new();
    let names: Vec<&String> = reference.as_object().unwrap().keys().collect();
    for name in &names {
        let path = root().join("fixtures/images").join(name);
        assert!(path.exists(), "{} missing: run `python3 fixtures/make_images.py`", path.display());
        let img = decode_file(&path, &ImageLimits::default(), model.min_short_side()).unwrap();
        tensors.push(model.preprocess(&RgbFrame { width: img.width, height: img.height, data: &img.data }).unwrap());
    }
    // One batch for all photos: batching must not change any result either.
    let probabilities = model.classify(&tensors.iter().collect::<Vec<_>>()).unwrap();
    for (name, p) in names.iter().zip(&probabilities) {
        let got = top_k(p, 5);
        let want = reference[name.as_str()].as_array().unwrap();
        for ((index, prob), w) in got.iter().zip(want) {
            assert_eq!(*index as u64, w["index"].as_u64().unwrap(), "{name}: top-5 order differs: {got:?}");
            let diff = (prob - w["probability"].as_f64().unwrap() as f32).abs();
            worst = worst.max(diff);
            assert!(diff <= 1e-3, "{name}: {} differs by {diff}", w["label"]);
        }
    }
    eprintln!("largest top-5 probability difference: {worst:.2e}");
}
