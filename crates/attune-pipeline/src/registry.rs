//! The one place models are registered: a model crate is added here, and nowhere else.

use crate::sessions::{MakeSession, SpeechSessions};
use attune_decode::image::RgbImage;
use attune_infer::{InferError, Model, ModelDir, Runtime};
use attune_model_efficientnet::{EfficientNet, RgbFrame};
use attune_model_whisper::Whisper;
use std::path::Path;

pub use attune_infer::{SpeechToText, TextEmbedder};

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

/// Reads the text in pictures (photos, video frames): its lines, and how many it found but could
/// not read.
pub trait TextInPictures: Send {
    fn id(&self) -> &str;
    fn read(&mut self, image: &RgbImage) -> Result<attune_infer::PictureText, InferError>;
}

impl TextInPictures for attune_model_ppocr::PpOcr {
    fn id(&self) -> &str {
        attune_model_ppocr::PpOcr::id(self)
    }
    fn read(&mut self, image: &RgbImage) -> Result<attune_infer::PictureText, InferError> {
        attune_model_ppocr::PpOcr::read(
            self,
            &attune_model_ppocr::RgbFrame { width: image.width, height: image.height, data: &image.data },
        )
    }
}

/// PP-OCRv4: Latin and Chinese characters (`models/ppocr-v4/model.toml` says what it cannot read).
pub const DEFAULT_TEXT_IN_PICTURES_MODEL: &str = attune_model_ppocr::MODEL_NAME;

/// The text-in-pictures models this build knows, by folder name.
pub const TEXT_IN_PICTURES_MODELS: [&str; 1] = [attune_model_ppocr::MODEL_NAME];

/// Load the text-in-pictures model `name` from `models_root` (or the installed `.attune/models`).
pub fn load_text_in_pictures_model(
    name: &str,
    runtime: &Runtime,
    models_root: Option<&Path>,
) -> Result<Box<dyn TextInPictures>, InferError> {
    let dir = ModelDir::locate(name, models_root)?;
    match name {
        attune_model_ppocr::MODEL_NAME => Ok(Box::new(attune_model_ppocr::PpOcr::load(runtime, &dir)?)),
        other => {
            Err(InferError::ModelMissing { name: format!("{other} (no such text-in-pictures model)"), dir: dir.dir })
        }
    }
}

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

/// Multilingual Whisper base: every supported language, English included (`whisper-tiny-en` is
/// faster, for English-only deployments: `--speech-model whisper-tiny-en`).
pub const DEFAULT_SPEECH_MODEL: &str = attune_model_whisper::MULTILINGUAL_MODEL;

/// The speech models this build knows, by folder name.
pub const SPEECH_MODELS: [&str; 2] = attune_model_whisper::MODEL_NAMES;

/// Up to `limit` sessions of the speech model `name`, each loaded when a batch first needs it and
/// restricted to decoding as `languages` (ISO 639-1: those the text path can tag). The model is
/// found now, so a missing installation is known before the run.
pub fn speech_sessions(
    name: &str,
    runtime: &Runtime,
    models_root: Option<&Path>,
    limit: usize,
    languages: &[&str],
) -> Result<SpeechSessions<'static>, InferError> {
    let dir = ModelDir::locate(name, models_root)?;
    let languages: Vec<String> = languages.iter().map(|l| l.to_string()).collect();
    let (id, make): (String, MakeSession<'static>) = match name {
        attune_model_whisper::MULTILINGUAL_MODEL | attune_model_whisper::ENGLISH_MODEL => {
            let runtime = runtime.clone();
            (
                Whisper::id_for(&dir)?,
                Box::new(move || {
                    let mut whisper = Whisper::load(&runtime, &dir)?;
                    whisper.restrict_languages(&languages.iter().map(String::as_str).collect::<Vec<_>>());
                    Ok(Box::new(whisper) as Box<dyn SpeechToText>)
                }),
            )
        }
        other => {
            return Err(InferError::ModelMissing { name: format!("{other} (no such speech model)"), dir: dir.dir })
        }
    };
    Ok(SpeechSessions::on_demand(id, limit, make))
}
