//! The one place model crates are registered: a model crate is added to [`MODEL_CRATES`], one
//! line, and nowhere else. Which installed model a run uses is chosen by its folder name
//! (`--text-model`, `--image-model`, `--speech-model`, `--text-in-pictures-model`); the folder's
//! `model.toml` says its `task` and `crate`, and [`Registry`] dispatches on them.

use crate::sessions::{MakeSession, SpeechSessions};
use crate::voice_activity::Listening;
use attune_infer::{
    ImageClassifier, InferError, LoadOptions, ModelCrate, Registry, Runtime, SpeechToText, Task, TextEmbedder,
    TextInPictures,
};
use std::path::Path;

/// The model crates of this build.
pub const MODEL_CRATES: &[ModelCrate] = &[
    attune_model_minilm::MODEL_CRATE,
    attune_model_e5::MODEL_CRATE,
    attune_model_efficientnet::MODEL_CRATE,
    attune_model_whisper::MODEL_CRATE,
    attune_model_ppocr::MODEL_CRATE,
    attune_model_silero_vad::MODEL_CRATE,
];

/// Dispatch from an installed model to its crate.
pub const MODELS: Registry = Registry::new(MODEL_CRATES);

/// The multilingual sentence encoder, with its special-category classifier: every supported
/// language, English included.
pub const MULTILINGUAL_TEXT_MODEL: &str = attune_model_e5::MODEL_NAME;

/// The English-only sentence encoder (its calibration's one language): about twice as fast on
/// English as e5 with its classifier, but it leaks more special-category chats and finds topics
/// less often (README, "Chat in every language"), so it is only used when asked for
/// (`--text-model minilm-l6-v2,multilingual-e5-small`: MiniLM for English, e5 for the rest).
pub const ENGLISH_TEXT_MODEL: &str = attune_model_minilm::MODEL_NAME;

/// A run's text models by default, in order of preference: multilingual-e5-small with its
/// special-category classifier for all 12 supported languages.
pub const DEFAULT_TEXT_MODELS: [&str; 1] = [MULTILINGUAL_TEXT_MODEL];

pub const DEFAULT_IMAGE_MODEL: &str = "efficientnet-lite0";

/// Multilingual Whisper base: every supported language, English included (`whisper-tiny-en` is
/// faster, for English-only deployments: `--speech-model whisper-tiny-en`).
pub const DEFAULT_SPEECH_MODEL: &str = "whisper-base";

/// PP-OCRv4: Latin and Chinese characters (`models/ppocr-v4/model.toml` says what it cannot read).
pub const DEFAULT_TEXT_IN_PICTURES_MODEL: &str = "ppocr-v4";

/// Silero VAD: where a recording speaks, so that speech is decoded only there (`none`: the
/// speech model's own energy gate, which finds the pauses of quiet recordings only).
pub const DEFAULT_VOICE_ACTIVITY_MODEL: &str = attune_model_silero_vad::MODEL_NAME;

/// A model that cannot be had, with the installed models of its task that could.
fn with_alternatives(e: InferError, task: Task, models_root: Option<&Path>) -> InferError {
    match e {
        InferError::ModelMissing { name, dir } => {
            let installed = MODELS.installed(task, models_root);
            let name = if installed.is_empty() {
                format!("{name} (no {task} model is installed)")
            } else {
                format!("{name} (installed {task} models: {})", installed.join(", "))
            };
            InferError::ModelMissing { name, dir }
        }
        other => other,
    }
}

/// Load the text model `name` from `models_root` (or the installed `.attune/models`).
pub fn load_text_model(
    name: &str,
    runtime: &Runtime,
    models_root: Option<&Path>,
    max_batch: usize,
) -> Result<Box<dyn TextEmbedder>, InferError> {
    let options = LoadOptions { max_batch: Some(max_batch), ..LoadOptions::default() };
    MODELS
        .text_embedder(name, runtime, models_root, &options)
        .map_err(|e| with_alternatives(e, Task::TextEmbedding, models_root))
}

/// The special-category classifier trained on `text_model` (`name@version`), when one is: a
/// model crate implementing `attune_tag::SensitivityClassifier`, its weights built into it.
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

/// Load the text-in-pictures model `name` from `models_root` (or the installed `.attune/models`).
pub fn load_text_in_pictures_model(
    name: &str,
    runtime: &Runtime,
    models_root: Option<&Path>,
) -> Result<Box<dyn TextInPictures>, InferError> {
    MODELS
        .text_in_pictures(name, runtime, models_root, &LoadOptions::default())
        .map_err(|e| with_alternatives(e, Task::TextInPictures, models_root))
}

/// Load the image model `name` from `models_root` (or the installed `.attune/models`).
pub fn load_image_model(
    name: &str,
    runtime: &Runtime,
    models_root: Option<&Path>,
    max_batch: usize,
) -> Result<Box<dyn ImageClassifier>, InferError> {
    let options = LoadOptions { max_batch: Some(max_batch), ..LoadOptions::default() };
    MODELS
        .image_classifier(name, runtime, models_root, &options)
        .map_err(|e| with_alternatives(e, Task::ImageClassification, models_root))
}

/// Up to `limit` sessions of the speech model `name`, each loaded when a batch first needs it and
/// restricted to decoding as `languages` (ISO 639-1: those the text path can tag), each with a
/// session of the voice activity model `voice_activity` beside it when one is named (the speech
/// model then decodes only where it finds speech). The models are found now, so a missing
/// installation is known before the run.
pub fn speech_sessions(
    name: &str,
    runtime: &Runtime,
    models_root: Option<&Path>,
    limit: usize,
    languages: &[&str],
    voice_activity: Option<&str>,
) -> Result<SpeechSessions<'static>, InferError> {
    let (dir, load) =
        MODELS.speech_to_text(name, models_root).map_err(|e| with_alternatives(e, Task::SpeechToText, models_root))?;
    let activity = voice_activity
        .map(|v| {
            MODELS.voice_activity(v, models_root).map_err(|e| with_alternatives(e, Task::VoiceActivity, models_root))
        })
        .transpose()?;
    let options = LoadOptions { max_batch: None, languages: languages.iter().map(|l| l.to_string()).collect() };
    let runtime = runtime.clone();
    let id = match &activity {
        Some((activity_dir, _)) => format!("{}+{}", dir.id(), activity_dir.id()),
        None => dir.id(),
    };
    let session_id = id.clone();
    let make: MakeSession<'static> = Box::new(move || -> Result<Box<dyn SpeechToText>, InferError> {
        let speech = load(&runtime, &dir, &options)?;
        match &activity {
            Some((activity_dir, load_activity)) => {
                let activity = load_activity(&runtime, activity_dir, &LoadOptions::default())?;
                Ok(Box::new(Listening { speech, activity, id: session_id.clone() }))
            }
            None => Ok(speech),
        }
    });
    Ok(SpeechSessions::on_demand(id, limit, make))
}
