//! The one place models are registered: a model crate is added here, and nowhere else.

use crate::sessions::{MakeSession, SpeechSessions};
use attune_decode::image::RgbImage;
use attune_infer::{InferError, Model, ModelDir, Runtime};
use attune_model_efficientnet::{EfficientNet, RgbFrame};
use attune_model_whisper::Whisper;
use std::path::Path;

pub use attune_infer::TextEmbedder;

/// The English sentence encoder (its calibration's one language).
pub const ENGLISH_TEXT_MODEL: &str = attune_model_minilm::MODEL_NAME;

/// A run's text models by default, in order of preference: MiniLM for English, multilingual-e5-small
/// with its special-category classifier for the other supported languages. (e5 takes English
/// too with `--text-model multilingual-e5-small`: on English it finds topics far more often, but
/// its classifier drops ordinary English chats that MiniLM keeps; README, "Chat in every
/// language".)
pub const DEFAULT_TEXT_MODELS: [&str; 2] = [attune_model_minilm::MODEL_NAME, attune_model_e5::MODEL_NAME];

/// The text models this build knows, by folder name.
pub const TEXT_MODELS: [&str; 2] = [attune_model_minilm::MODEL_NAME, attune_model_e5::MODEL_NAME];

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
        attune_model_e5::MODEL_NAME => {
            Ok(Box::new(attune_model_e5::E5::load(runtime, &dir)?.with_max_batch(max_batch)))
        }
        other => Err(InferError::ModelMissing { name: format!("{other} (no such text model)"), dir: dir.dir }),
    }
}

/// The special-category classifier trained on `text_model` (`name@version`), when one is: a
/// model crate implementing `attune_tag::SensitivityClassifier`, registered here.
pub fn special_category_classifier(
    text_model: &str,
    runtime: &Runtime,
) -> Option<Result<std::sync::Arc<dyn attune_tag::SensitivityClassifier>, String>> {
    use attune_model_sensitivity::SensitivityModel;
    SensitivityModel::exists_for(text_model).then(|| {
        SensitivityModel::for_text_model(text_model, runtime)
            .map(|m| std::sync::Arc::new(m) as std::sync::Arc<dyn attune_tag::SensitivityClassifier>)
            .map_err(|e| e.to_string())
    })
}

/// An image classifier: images in, class probabilities out (ImageNet-1k for now; the class
/// table in attune-tag matches it).
pub trait ImageClassifier: Send {
    fn id(&self) -> &str;
    fn max_batch(&self) -> usize;
    /// The shorter side the decoder should deliver at least.
    fn min_short_side(&self) -> u32;
    /// Preprocess and classify `images` in one model call.
    fn classify(&mut self, images: &[&RgbImage]) -> Result<Vec<Vec<f32>>, InferError>;
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
    fn classify(&mut self, images: &[&RgbImage]) -> Result<Vec<Vec<f32>>, InferError> {
        let tensors = images
            .iter()
            .map(|i| self.preprocess(&RgbFrame { width: i.width, height: i.height, data: &i.data }))
            .collect::<Result<Vec<_>, _>>()?;
        EfficientNet::classify(self, &tensors.iter().collect::<Vec<_>>())
    }
}

pub const DEFAULT_IMAGE_MODEL: &str = attune_model_efficientnet::MODEL_NAME;

/// Load the image model `name` from `models_root` (or the installed `.attune/models`).
pub fn load_image_model(
    name: &str,
    runtime: &Runtime,
    models_root: Option<&Path>,
    max_batch: usize,
) -> Result<Box<dyn ImageClassifier>, InferError> {
    let dir = ModelDir::locate(name, models_root)?;
    match name {
        attune_model_efficientnet::MODEL_NAME => {
            Ok(Box::new(EfficientNet::load(runtime, &dir)?.with_max_batch(max_batch)))
        }
        other => Err(InferError::ModelMissing { name: format!("{other} (no such image model)"), dir: dir.dir }),
    }
}

/// Speech to text: 16 kHz mono PCM in, a transcript out (English Whisper now; a multilingual
/// model is another crate implementing this).
pub trait SpeechToText: Send {
    fn id(&self) -> &str;
    fn transcribe(&mut self, pcm: &[f32]) -> Result<String, InferError>;
    /// How many recordings `transcribe_batch` takes to best effect.
    fn batch(&self) -> usize {
        1
    }
    /// Several recordings at once, one result each, in order. A model that decodes recordings
    /// together overrides this; the failure of one recording must not fail the others.
    fn transcribe_batch(&mut self, pcms: &[&[f32]]) -> Vec<Result<String, InferError>> {
        pcms.iter().map(|pcm| self.transcribe(pcm)).collect()
    }
}

impl SpeechToText for Whisper {
    fn id(&self) -> &str {
        Model::id(self)
    }
    fn transcribe(&mut self, pcm: &[f32]) -> Result<String, InferError> {
        Whisper::transcribe(self, pcm).map(|t| t.text)
    }
    fn batch(&self) -> usize {
        Model::max_batch(self)
    }
    fn transcribe_batch(&mut self, pcms: &[&[f32]]) -> Vec<Result<String, InferError>> {
        Whisper::transcribe_batch(self, pcms).into_iter().map(|t| t.map(|t| t.text)).collect()
    }
}

pub const DEFAULT_SPEECH_MODEL: &str = attune_model_whisper::MODEL_NAME;

/// Up to `limit` sessions of the speech model `name`, each loaded when a batch first needs it.
/// The model is found now, so a missing installation is known before the run.
pub fn speech_sessions(
    name: &str,
    runtime: &Runtime,
    models_root: Option<&Path>,
    limit: usize,
) -> Result<SpeechSessions<'static>, InferError> {
    let dir = ModelDir::locate(name, models_root)?;
    let (id, make): (String, MakeSession<'static>) = match name {
        attune_model_whisper::MODEL_NAME => {
            let runtime = runtime.clone();
            (
                Whisper::id_for(&dir)?,
                Box::new(move || Ok(Box::new(Whisper::load(&runtime, &dir)?) as Box<dyn SpeechToText>)),
            )
        }
        other => {
            return Err(InferError::ModelMissing { name: format!("{other} (no such speech model)"), dir: dir.dir })
        }
    };
    Ok(SpeechSessions::on_demand(id, limit, make))
}
