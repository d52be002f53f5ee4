//! The image-classification capability: what an image model crate implements for the pipeline.

use crate::InferError;

/// A decoded picture: `width × height` RGB pixels, row by row. The one pixel type every image
/// model crate takes, so the pipeline hands decoded photos and video frames to any of them.
#[derive(Debug, Clone, Copy)]
pub struct RgbFrame<'a> {
    pub width: u32,
    pub height: u32,
    /// `width × height × 3` bytes.
    pub data: &'a [u8],
}

/// An image classifier: pictures in, class probabilities out (ImageNet-1k for now; the class
/// table in attune-tag matches it).
pub trait ImageClassifier: Send {
    fn id(&self) -> &str;
    fn max_batch(&self) -> usize;
    /// The shorter side the decoder should deliver at least.
    fn min_short_side(&self) -> u32;
    /// Preprocess and classify `images` in one model call: one probability vector per image.
    fn classify(&mut self, images: &[RgbFrame<'_>]) -> Result<Vec<Vec<f32>>, InferError>;
}
