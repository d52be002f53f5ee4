//! The one place models are registered: a model crate is added here, and nowhere else.

use attune_infer::{InferError, Model, ModelDir, Runtime};
use std::path::Path;

/// A text-embedding model: text in, unit-length vector out. The English MiniLM now; a
/// multilingual model (Indonesian first) is another crate implementing the same trait.
pub trait TextEmbedder: Model<Input = String, Output = Vec<f32>> {}
impl<M: Model<Input = String, Output = Vec<f32>>> TextEmbedder for M {}

pub const DEFAULT_TEXT_MODEL: &str = attune_model_minilm::MODEL_NAME;

/// Load the text model `name` from `models_root` (or the installed `.attune/models`).
pub fn load_text_model(
    name: &str,
    runtime: &Runtime,
    models_root: Option<&Path>,
    max_batch: usize,
) -> Result<Box<dyn TextEmbedder>, InferError> {
    let dir = ModelDir::locate(name, models_root)?;
    match name {
        attune_model_minilm::MODEL_NAME => {
            Ok(Box::new(attune_model_minilm::MiniLm::load(runtime, &dir)?.with_max_batch(max_batch)))
        }
        other => Err(InferError::ModelMissing { name: format!("{other} (no such text model)"), dir: dir.dir }),
    }
}
