//! Registration as data: each installed model's `model.toml` says its `task` and the `crate`
//! that runs it; each model crate offers one [`ModelCrate`] (its name and a loader for the task
//! it implements); the pipeline's registry lists the crates of the build, one line each, and
//! dispatches on the manifest. Adding a model touches no other model.

use crate::{
    ImageClassifier, InferError, ModelDir, Runtime, SpeechToText, TextEmbedder, TextInPictures, VoiceActivity,
};
use std::fmt;

/// What a model does: `task` in its `model.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    TextEmbedding,
    ImageClassification,
    SpeechToText,
    TextInPictures,
    /// Where a recording speaks, so that speech is decoded only there.
    VoiceActivity,
    /// The special-category classifier: built into its crate for the text model it was trained
    /// on, not installed as a model folder.
    SpecialCategory,
}

impl Task {
    pub fn as_str(self) -> &'static str {
        match self {
            Task::TextEmbedding => "text-embedding",
            Task::ImageClassification => "image-classification",
            Task::SpeechToText => "speech-to-text",
            Task::TextInPictures => "text-in-pictures",
            Task::VoiceActivity => "voice-activity",
            Task::SpecialCategory => "special-category",
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a loader may be told beyond the model's own manifest.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The largest batch per model call (`None`: the model's own default).
    pub max_batch: Option<usize>,
    /// Speech: the languages it may decode as (ISO 639-1); empty: all it knows.
    pub languages: Vec<String>,
}

/// A loader of one capability: the runtime, the installed folder, the options; the model.
pub type Load<T> = fn(&Runtime, &ModelDir, &LoadOptions) -> Result<Box<T>, InferError>;

/// A check of an installed folder (its manifest's settings and files) that makes no session.
pub type Check = fn(&ModelDir) -> Result<(), InferError>;

/// A model crate's loader, typed by the capability it gives.
#[derive(Clone, Copy)]
pub enum Loader {
    TextEmbedding(Load<dyn TextEmbedder>),
    ImageClassification(Load<dyn ImageClassifier>),
    /// A run makes speech sessions when a batch first needs one, so the registry runs `check`
    /// when the model is named: a broken installation refuses the run at its start rather than
    /// failing every recording in it.
    SpeechToText {
        check: Check,
        load: Load<dyn SpeechToText>,
    },
    TextInPictures(Load<dyn TextInPictures>),
    /// Made beside each speech session, so checked when named, as a speech model is.
    VoiceActivity {
        check: Check,
        load: Load<dyn VoiceActivity>,
    },
}

impl Loader {
    pub fn task(&self) -> Task {
        match self {
            Loader::TextEmbedding(_) => Task::TextEmbedding,
            Loader::ImageClassification(_) => Task::ImageClassification,
            Loader::SpeechToText { .. } => Task::SpeechToText,
            Loader::TextInPictures(_) => Task::TextInPictures,
            Loader::VoiceActivity { .. } => Task::VoiceActivity,
        }
    }
}

/// One model crate as the registry sees it: `name` is what `crate` in a `model.toml` says.
#[derive(Clone, Copy)]
pub struct ModelCrate {
    pub name: &'static str,
    pub load: Loader,
}

impl fmt::Debug for ModelCrate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModelCrate({}, {})", self.name, self.load.task())
    }
}

/// The crates of a build, and the dispatch from an installed model to the crate that runs it.
#[derive(Debug, Clone, Copy)]
pub struct Registry {
    crates: &'static [ModelCrate],
}

impl Registry {
    pub const fn new(crates: &'static [ModelCrate]) -> Registry {
        Registry { crates }
    }

    pub fn crates(&self) -> &'static [ModelCrate] {
        self.crates
    }

    /// The loader for the installed model `dir`, which must be a model of `task`.
    fn loader(&self, dir: &ModelDir, task: Task) -> Result<Loader, InferError> {
        let manifest = || dir.dir.join("model.toml");
        if dir.task != task {
            return Err(InferError::Manifest {
                path: manifest(),
                message: format!("`{}` is a model for {}, not for {task}", dir.name, dir.task),
            });
        }
        let model_crate =
            self.crates.iter().find(|c| c.name == dir.crate_name).ok_or_else(|| InferError::Manifest {
                path: manifest(),
                message: format!("its crate `{}` is not part of this build", dir.crate_name),
            })?;
        if model_crate.load.task() != task {
            return Err(InferError::Manifest {
                path: manifest(),
                message: format!(
                    "crate `{}` runs models for {}, not for {task}",
                    model_crate.name,
                    model_crate.load.task()
                ),
            });
        }
        Ok(model_crate.load)
    }

    /// The installed model `name`, checked to be a model of `task` that a crate of this build runs.
    pub fn check(&self, name: &str, task: Task, models_root: Option<&std::path::Path>) -> Result<ModelDir, InferError> {
        let dir = ModelDir::locate(name, models_root)?;
        if let Loader::SpeechToText { check, .. } | Loader::VoiceActivity { check, .. } = self.loader(&dir, task)? {
            check(&dir)?;
        }
        Ok(dir)
    }

    /// Finds the installed model `name` (in `models_root`, or the `.attune/models` folders) and
    /// loads it as a text embedder.
    pub fn text_embedder(
        &self,
        name: &str,
        runtime: &Runtime,
        models_root: Option<&std::path::Path>,
        options: &LoadOptions,
    ) -> Result<Box<dyn TextEmbedder>, InferError> {
        let dir = ModelDir::locate(name, models_root)?;
        match self.loader(&dir, Task::TextEmbedding)? {
            Loader::TextEmbedding(load) => load(runtime, &dir, options),
            _ => unreachable!("loader checks the task"),
        }
    }

    pub fn image_classifier(
        &self,
        name: &str,
        runtime: &Runtime,
        models_root: Option<&std::path::Path>,
        options: &LoadOptions,
    ) -> Result<Box<dyn ImageClassifier>, InferError> {
        let dir = ModelDir::locate(name, models_root)?;
        match self.loader(&dir, Task::ImageClassification)? {
            Loader::ImageClassification(load) => load(runtime, &dir, options),
            _ => unreachable!("loader checks the task"),
        }
    }

    pub fn text_in_pictures(
        &self,
        name: &str,
        runtime: &Runtime,
        models_root: Option<&std::path::Path>,
        options: &LoadOptions,
    ) -> Result<Box<dyn TextInPictures>, InferError> {
        let dir = ModelDir::locate(name, models_root)?;
        match self.loader(&dir, Task::TextInPictures)? {
            Loader::TextInPictures(load) => load(runtime, &dir, options),
            _ => unreachable!("loader checks the task"),
        }
    }

    /// The voice activity model `name`: its folder, checked by its crate, and the loader that
    /// makes a session of it (made beside each speech session, when a batch first needs one).
    pub fn voice_activity(
        &self,
        name: &str,
        models_root: Option<&std::path::Path>,
    ) -> Result<(ModelDir, Load<dyn VoiceActivity>), InferError> {
        let dir = ModelDir::locate(name, models_root)?;
        match self.loader(&dir, Task::VoiceActivity)? {
            Loader::VoiceActivity { check, load } => {
                check(&dir)?;
                Ok((dir, load))
            }
            _ => unreachable!("loader checks the task"),
        }
    }

    /// The speech model `name`: its folder, checked by its crate, and the loader that makes a
    /// session of it (a run makes sessions as batches need them, so the model is found and
    /// checked now and loaded later).
    pub fn speech_to_text(
        &self,
        name: &str,
        models_root: Option<&std::path::Path>,
    ) -> Result<(ModelDir, Load<dyn SpeechToText>), InferError> {
        let dir = ModelDir::locate(name, models_root)?;
        match self.loader(&dir, Task::SpeechToText)? {
            Loader::SpeechToText { check, load } => {
                check(&dir)?;
                Ok((dir, load))
            }
            _ => unreachable!("loader checks the task"),
        }
    }

    /// The installed models of `task` that this build can run, by name (for messages and
    /// `--help`).
    pub fn installed(&self, task: Task, models_root: Option<&std::path::Path>) -> Vec<String> {
        let mut names: Vec<String> = ModelDir::installed(models_root)
            .into_iter()
            .filter(|d| d.task == task && self.crates.iter().any(|c| c.name == d.crate_name && c.load.task() == task))
            .map(|d| d.name)
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn never_text(_: &Runtime, _: &ModelDir, _: &LoadOptions) -> Result<Box<dyn TextEmbedder>, InferError> {
        Err(InferError::Config("not loaded in this test".into()))
    }
    fn never_image(_: &Runtime, _: &ModelDir, _: &LoadOptions) -> Result<Box<dyn ImageClassifier>, InferError> {
        Err(InferError::Config("not loaded in this test".into()))
    }

    fn never_speech(_: &Runtime, _: &ModelDir, _: &LoadOptions) -> Result<Box<dyn SpeechToText>, InferError> {
        Err(InferError::Config("not loaded in this test".into()))
    }
    /// A speech crate's check: its `[runtime] graph` must be there.
    fn graph_present(dir: &ModelDir) -> Result<(), InferError> {
        #[derive(serde::Deserialize)]
        struct Settings {
            graph: String,
        }
        dir.file(&dir.config::<Settings>()?.graph).map(drop)
    }

    const CRATES: &[ModelCrate] = &[
        ModelCrate { name: "attune-model-words", load: Loader::TextEmbedding(never_text) },
        ModelCrate { name: "attune-model-pictures", load: Loader::ImageClassification(never_image) },
        ModelCrate {
            name: "attune-model-listener",
            load: Loader::SpeechToText { check: graph_present, load: never_speech },
        },
    ];
    const REGISTRY: Registry = Registry::new(CRATES);

    fn install(root: &Path, name: &str, manifest: &str) {
        std::fs::create_dir_all(root.join(name)).unwrap();
        std::fs::write(root.join(name).join("model.toml"), manifest).unwrap();
    }

    fn manifest(name: &str, krate: &str, task: &str, runtime: &str) -> String {
        format!("name = \"{name}\"\ncrate = \"{krate}\"\ntask = \"{task}\"\nlicence = \"MIT\"\n\n[runtime]\n{runtime}")
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct WordsSettings {
        onnx: String,
        dimensions: usize,
        version: String,
    }

    /// A manifest's `task` and `crate` choose the loader; a model of another task, a crate the
    /// build does not have, a stale `[runtime]` key, a folder that is not the model's name and a
    /// file outside the folder are each an error that says so, never a model silently misused.
    #[test]
    fn manifests_dispatch_to_their_crate_and_mistakes_are_errors() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        install(
            root,
            "words",
            &manifest(
                "words",
                "attune-model-words",
                "text-embedding",
                "onnx = \"m.onnx\"\ndimensions = 8\nversion = \"1\"\n",
            ),
        );
        install(root, "pics", &manifest("pics", "attune-model-pictures", "image-classification", "version = \"2\"\n"));
        install(root, "ears", &manifest("ears", "attune-model-ears", "speech-to-text", "version = \"3\"\n"));
        install(
            root,
            "stale",
            &manifest(
                "stale",
                "attune-model-words",
                "text-embedding",
                "onnx = \"m.onnx\"\ndimensions = 8\nversion = \"1\"\npooling = \"max\"\n",
            ),
        );
        install(root, "moved", &manifest("elsewhere", "attune-model-words", "text-embedding", "version = \"1\"\n"));
        install(
            root,
            "unversioned",
            &manifest("unversioned", "attune-model-words", "text-embedding", "onnx = \"m.onnx\"\n"),
        );

        let words = REGISTRY.check("words", Task::TextEmbedding, Some(root)).unwrap();
        assert_eq!((words.id(), words.crate_name.as_str()), ("words@1".to_string(), "attune-model-words"));
        let settings: WordsSettings = words.config().unwrap();
        assert_eq!(settings.dimensions, 8);

        let message = |r: Result<ModelDir, InferError>| r.unwrap_err().to_string();
        assert!(message(REGISTRY.check("pics", Task::TextEmbedding, Some(root)))
            .contains("is a model for image-classification, not for text-embedding"));
        assert!(message(REGISTRY.check("ears", Task::SpeechToText, Some(root))).contains("not part of this build"));
        assert!(message(REGISTRY.check("moved", Task::TextEmbedding, Some(root))).contains("its folder is `moved`"));
        assert!(message(REGISTRY.check("unversioned", Task::TextEmbedding, Some(root))).contains("version missing"));
        assert!(matches!(
            REGISTRY.check("absent", Task::TextEmbedding, Some(root)),
            Err(InferError::ModelMissing { .. })
        ));
        let stale = REGISTRY.check("stale", Task::TextEmbedding, Some(root)).unwrap();
        let err = stale.config::<WordsSettings>().unwrap_err().to_string();
        assert!(err.contains("pooling"), "{err}");

        // Files named by a manifest stay inside the model's folder.
        for outside in ["../pics/model.toml", "/etc/passwd", ""] {
            assert!(matches!(words.file(outside), Err(InferError::Manifest { .. })), "{outside}");
        }
        std::fs::write(root.join("words/m.onnx"), b"").unwrap();
        assert_eq!(words.file("m.onnx").unwrap(), root.join("words/m.onnx"));

        // What is installed, by task: only models this build's crates run.
        // (`unversioned` and `moved` do not read, so they are not listed.)
        assert_eq!(REGISTRY.installed(Task::TextEmbedding, Some(root)), ["stale", "words"]);
        assert_eq!(REGISTRY.installed(Task::ImageClassification, Some(root)), ["pics"]);
        assert!(REGISTRY.installed(Task::SpeechToText, Some(root)).is_empty());
    }

    /// Speech sessions are made when a recording first needs one; the crate's check runs when
    /// the model is named, so a broken installation is known before the run, not per recording.
    #[test]
    fn speech_models_are_checked_when_named_not_when_first_loaded() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let listener = |name: &str| {
            manifest(name, "attune-model-listener", "speech-to-text", "graph = \"g.onnx\"\nversion = \"1\"\n")
        };
        install(root, "whole", &listener("whole"));
        std::fs::write(root.join("whole/g.onnx"), b"").unwrap();
        install(root, "broken", &listener("broken"));

        let (dir, _load) = REGISTRY.speech_to_text("whole", Some(root)).unwrap();
        assert_eq!(dir.id(), "whole@1");
        assert!(REGISTRY.check("whole", Task::SpeechToText, Some(root)).is_ok());

        for r in [
            REGISTRY.speech_to_text("broken", Some(root)).map(|(d, _)| d),
            REGISTRY.check("broken", Task::SpeechToText, Some(root)),
        ] {
            assert!(matches!(r, Err(InferError::ModelMissing { .. })), "{:?}", r.map(|d| d.id()));
        }
        assert_eq!(REGISTRY.installed(Task::SpeechToText, Some(root)), ["broken", "whole"]);
    }
}
