//! Inference plumbing shared by every model crate:
//! - [`Model`], the one trait a model crate implements (like ripgrep's `Matcher`);
//! - [`Runtime`], the one place that finds ONNX Runtime, sets the thread budget and the execution
//!   providers, and builds sessions, so model crates never touch those details;
//! - [`ModelDir`], a model's installed folder with its `model.toml` manifest;
//! - the capability traits model crates implement ([`TextEmbedder`], [`ImageClassifier`],
//!   [`SpeechToText`], [`TextInPictures`]) and their registration ([`ModelCrate`], [`Registry`]),
//!   dispatched on the manifest's `task` and `crate`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use ort;

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("ONNX Runtime library not found (looked for {looked}); run `just setup` or set ORT_DYLIB_PATH")]
    RuntimeMissing { looked: String },
    #[error("ONNX Runtime failed to load from {path}: {message}")]
    RuntimeLoad { path: PathBuf, message: String },
    #[error("model `{name}` is not installed in {dir} (run `just setup`)")]
    ModelMissing { name: String, dir: PathBuf },
    #[error("model manifest {path} is not valid: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("building the session for {model} failed: {message}")]
    Session { model: String, message: String },
    #[error("{model}: inference failed: {message}")]
    Run { model: String, message: String },
    #[error("{model}: bad input: {message}")]
    Input { model: String, message: String },
    #[error("{0}")]
    Config(String),
}

mod image;
mod picture_text;
mod registration;
mod speech;
mod text;

pub use image::{ImageClassifier, RgbFrame};
pub use picture_text::{PictureText, TextInPictures, TextLine};
pub use registration::{Check, Load, LoadOptions, Loader, ModelCrate, Registry, Task};
pub use speech::{SpeechLanguage, SpeechRequest, SpeechToText, SpokenText, VoiceActivity};
pub use text::{calls_within, in_token_calls, mean_pool_unit, TextEmbedder, TokenStates, MAX_CALL_TOKENS};

/// A model: a batch of inputs in, one output per input out, in order.
///
/// Implemented once per model crate. The pipeline only sees this trait, so choosing a model is
/// configuration and adding one touches no other model.
pub trait Model: Send {
    type Input;
    type Output;

    /// A stable identifier of the model and its weights, recorded in profiles (`model_set`).
    fn id(&self) -> &str;

    /// The largest batch worth sending in one call.
    fn max_batch(&self) -> usize;

    /// Run one batch. An `Err` fails the whole batch; callers retry items one by one to find
    /// the bad one, so one bad input costs one event.
    fn run_batch(&mut self, inputs: &[Self::Input]) -> Result<Vec<Self::Output>, InferError>;
}

/// Run `model` over any number of inputs, `max_batch` at a time, checking that every call
/// gives one output per input.
pub fn run_in_batches<M>(model: &mut M, inputs: &[M::Input]) -> Result<Vec<M::Output>, InferError>
where
    M: Model + ?Sized,
{
    let mut out = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(model.max_batch().max(1)) {
        let got = model.run_batch(chunk)?;
        if got.len() != chunk.len() {
            return Err(InferError::Run {
                model: model.id().to_string(),
                message: format!("{} outputs for {} inputs", got.len(), chunk.len()),
            });
        }
        out.extend(got);
    }
    Ok(out)
}

/// [`run_in_batches`] in order of `size` (a text's length, say), so each batch holds inputs of
/// similar size and pads little; the outputs come back in the order of the inputs. Padding is
/// most of the work when long and short texts share a batch.
pub fn run_in_batches_by_size<M>(
    model: &mut M,
    inputs: &[M::Input],
    size: impl Fn(&M::Input) -> usize,
) -> Result<Vec<M::Output>, InferError>
where
    M: Model + ?Sized,
    M::Input: Clone,
{
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_key(|&i| size(&inputs[i]));
    let sorted: Vec<M::Input> = order.iter().map(|&i| inputs[i].clone()).collect();
    let outputs = run_in_batches(model, &sorted)?;
    let mut slots: Vec<Option<M::Output>> = (0..inputs.len()).map(|_| None).collect();
    for (i, out) in order.into_iter().zip(outputs) {
        slots[i] = Some(out);
    }
    Ok(slots.into_iter().map(|o| o.expect("one output per input, checked by run_in_batches")).collect())
}

/// Where sessions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    /// CUDA when the provider registers, CPU otherwise (logged).
    CudaIfAvailable,
}

/// How sessions are built: one budget for the whole process.
#[derive(Clone)]
pub struct Runtime {
    env: &'static ort::environment::Environment,
    intra_threads: usize,
    device: Device,
    optimization: Optimization,
    /// Whether a session's threads keep spinning for a while after a call (ONNX Runtime's
    /// default), waiting for the next one.
    spinning: bool,
}

/// How much ONNX Runtime rewrites a graph before running it (its graph optimisation levels).
/// Each level runs other kernels in another order (fused attention and layer norms, or the
/// plain operators), so scores move by about as much as they do between CPUs with different
/// instruction sets: comparing two levels on one machine shows how far a decision is from
/// depending on one CPU's rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optimization {
    /// Every fusion ONNX Runtime knows (the default).
    All,
    Extended,
    Basic,
    /// The graph as written.
    Disable,
}

impl Optimization {
    /// `ATTUNE_ORT_OPTIMIZATION` (`all`, `extended`, `basic`, `disable`), else `All`.
    pub fn from_env() -> Result<Optimization, InferError> {
        match std::env::var("ATTUNE_ORT_OPTIMIZATION").as_deref() {
            Err(_) | Ok("") | Ok("all") => Ok(Optimization::All),
            Ok("extended") => Ok(Optimization::Extended),
            Ok("basic") => Ok(Optimization::Basic),
            Ok("disable") => Ok(Optimization::Disable),
            Ok(other) => Err(InferError::Config(format!(
                "ATTUNE_ORT_OPTIMIZATION={other}: expected all, extended, basic or disable"
            ))),
        }
    }

    fn level(self) -> ort::session::builder::GraphOptimizationLevel {
        use ort::session::builder::GraphOptimizationLevel as Level;
        match self {
            Optimization::All => Level::Level3,
            Optimization::Extended => Level::Level2,
            Optimization::Basic => Level::Level1,
            Optimization::Disable => Level::Disable,
        }
    }
}

/// The process's one ONNX Runtime environment, kept alive for the life of the process.
static INIT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

impl Runtime {
    /// Load ONNX Runtime (once per process) and keep the settings for the sessions to come.
    pub fn new(intra_threads: usize, device: Device) -> Result<Runtime, InferError> {
        let path = match device {
            Device::CudaIfAvailable => match find_onnxruntime_gpu() {
                Some(path) => {
                    preload_cuda_libraries(path.parent().unwrap_or(Path::new(".")));
                    path
                }
                None => {
                    tracing::warn!("no CUDA build of ONNX Runtime installed (`just setup-gpu`); running on CPU");
                    find_onnxruntime()?
                }
            },
            Device::Cpu => find_onnxruntime()?,
        };
        let loaded = INIT.get_or_init(|| {
            ort::init_from(&path).map_err(|e| e.to_string())?.with_name("attune").build().map_err(|e| e.to_string())
        });
        match loaded {
            Ok(env) => Ok(Runtime {
                env,
                intra_threads: intra_threads.max(1),
                device,
                optimization: Optimization::from_env()?,
                spinning: true,
            }),
            Err(message) => Err(InferError::RuntimeLoad { path, message: message.clone() }),
        }
    }

    pub fn intra_threads(&self) -> usize {
        self.intra_threads
    }

    /// Where this runtime's sessions run: a model with a graph made for one (an int8 graph for
    /// the CPU) picks it by this.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The same runtime, building its sessions at another optimisation level.
    pub fn with_optimization(mut self, optimization: Optimization) -> Runtime {
        self.optimization = optimization;
        self
    }

    /// The same runtime, building sessions whose threads sleep as soon as a call ends. For
    /// models whose sessions take turns call by call (the text encoder's two graphs and the
    /// special-category classifier): each session has its own threads, and a spinning one
    /// holds the cores the next call needs (`attune eval` on the calibration split, 2 threads:
    /// 64 items/s without spinning against 54 with).
    pub fn without_spinning(mut self) -> Runtime {
        self.spinning = false;
        self
    }

    /// Build a session for an ONNX file with this runtime's threads and providers.
    pub fn session(&self, model: &str, onnx: &Path) -> Result<ort::session::Session, InferError> {
        self.session_from(model, OnnxSource::File(onnx))
    }

    /// [`Runtime::session`] for a graph held in memory (one compiled into a model crate).
    pub fn session_from_memory(&self, model: &str, onnx: &[u8]) -> Result<ort::session::Session, InferError> {
        self.session_from(model, OnnxSource::Memory(onnx))
    }

    fn session_from(&self, model: &str, onnx: OnnxSource<'_>) -> Result<ort::session::Session, InferError> {
        let fail = |e: ort::Error| InferError::Session { model: model.to_string(), message: e.to_string() };
        let mut builder = ort::session::Session::builder(self.env)
            .map_err(fail)?
            .with_optimization_level(self.optimization.level())
            .map_err(|e| fail(e.into()))?
            .with_intra_threads(self.intra_threads)
            .map_err(|e| fail(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| fail(e.into()))?;
        if !self.spinning {
            builder = builder.with_intra_op_spinning(false).map_err(|e| fail(e.into()))?;
        }
        // Every model here sees input shapes that keep changing (batch sizes, text lengths, the
        // decoder's growing cache): ONNX Runtime would keep a memory plan per shape seen, so peak
        // memory grew with the length of the run (text: +25% from 2,000 to 8,000 events; +7%
        // without plans, and no slower).
        builder = builder.with_memory_pattern(false).map_err(|e| fail(e.into()))?;
        if self.device == Device::CudaIfAvailable {
            // CUDA, and say so plainly when it cannot be had (CPU library, no GPU, no CUDA
            // libraries): the same binary then runs the session on the CPU.
            let cuda = builder
                .clone()
                .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
                .map_err(ort::Error::from)
                .and_then(|b| onnx.commit(b));
            match cuda {
                Ok(session) => {
                    tracing::info!("{model}: running on CUDA");
                    return Ok(session);
                }
                Err(e) => {
                    // ONNX Runtime's message carries a source location and spans lines; keep the reason.
                    let e = e.to_string().replace('\n', " ");
                    let reason = e.rsplit(" : ").next().unwrap_or(&e).trim().to_string();
                    tracing::warn!("{model}: CUDA execution provider unavailable ({reason}); running on CPU")
                }
            }
        }
        onnx.commit(builder).map_err(fail)
    }
}

#[derive(Clone, Copy)]
enum OnnxSource<'a> {
    File(&'a Path),
    Memory(&'a [u8]),
}

impl OnnxSource<'_> {
    fn commit(self, mut builder: ort::session::builder::SessionBuilder) -> ort::Result<ort::session::Session> {
        match self {
            OnnxSource::File(path) => builder.commit_from_file(path),
            OnnxSource::Memory(bytes) => builder.commit_from_memory(bytes),
        }
    }
}

/// ONNX Runtime's shared library: `ORT_DYLIB_PATH`, else `.attune/onnxruntime/libonnxruntime.so`
/// in `ATTUNE_HOME` or in the working folder, the executable's folder, or any folder above them.
pub fn find_onnxruntime() -> Result<PathBuf, InferError> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return Ok(PathBuf::from(p));
    }
    let rel = Path::new("onnxruntime").join("libonnxruntime.so");
    let candidates: Vec<PathBuf> = attune_homes().into_iter().map(|h| h.join(&rel)).collect();
    candidates.iter().find(|p| p.exists()).cloned().ok_or_else(|| InferError::RuntimeMissing {
        looked: candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
    })
}

/// The CUDA build installed by `just setup-gpu` (`ORT_DYLIB_PATH` still wins).
fn find_onnxruntime_gpu() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return Some(PathBuf::from(p));
    }
    let rel = Path::new("onnxruntime-gpu").join("libonnxruntime.so");
    attune_homes().into_iter().map(|h| h.join(&rel)).find(|p| p.exists())
}

/// Load the CUDA and cuDNN libraries that sit beside the CUDA build of ONNX Runtime, globally,
/// so its CUDA provider finds them by name without `LD_LIBRARY_PATH`. Libraries load in
/// whatever order their own dependencies allow: passes repeat while one more loads.
fn preload_cuda_libraries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut pending: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("lib") && name.contains(".so") && !name.starts_with("libonnxruntime") && !p.is_symlink()
        })
        .collect();
    pending.sort();
    loop {
        let before = pending.len();
        pending.retain(|lib| {
            let Ok(c) = std::ffi::CString::new(lib.as_os_str().as_encoded_bytes()) else { return false };
            // SAFETY: dlopen of a library file by path; the handle is kept for the process's life.
            let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
            handle.is_null()
        });
        if pending.is_empty() || pending.len() == before {
            break;
        }
    }
    for lib in &pending {
        tracing::debug!("could not preload {}", lib.display());
    }
}

/// The folders that may hold attune's installed runtime and models, most specific first.
pub fn attune_homes() -> Vec<PathBuf> {
    let mut homes = Vec::new();
    if let Some(h) = std::env::var_os("ATTUNE_HOME") {
        homes.push(PathBuf::from(h));
    }
    let starts =
        [std::env::current_dir().ok(), std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf))];
    for start in starts.into_iter().flatten() {
        for dir in start.ancestors() {
            let h = dir.join(".attune");
            if h.is_dir() && !homes.contains(&h) {
                homes.push(h);
            }
        }
    }
    homes
}

/// An installed model's folder: `<home>/models/<name>/` with `model.toml` and the files it names.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub name: String,
    pub dir: PathBuf,
    /// What the model does (`task`), and the crate that runs it (`crate`).
    pub task: Task,
    pub crate_name: String,
    /// `[runtime].version`, which every model has: the model's id is `name@version` ([`ModelDir::id`]).
    pub version: String,
    /// The manifest's `[runtime]` table: read only through [`ModelDir::config`], into the model
    /// crate's own typed, `deny_unknown_fields` settings.
    runtime: toml::Table,
}

/// The keys of `model.toml` that say which crate runs the model; the rest (sources, licence)
/// are set-up's, and `[runtime]` is the model crate's.
#[derive(serde::Deserialize)]
struct ManifestHead {
    name: String,
    #[serde(rename = "crate")]
    crate_name: String,
    task: Task,
    runtime: Option<toml::Table>,
}

impl ModelDir {
    /// Find model `name` in `models_root` (when given) or in the `.attune/models` folders.
    pub fn locate(name: &str, models_root: Option<&Path>) -> Result<ModelDir, InferError> {
        let roots = model_roots(models_root);
        let dir = roots.iter().map(|r| r.join(name)).find(|d| d.join("model.toml").is_file()).ok_or_else(|| {
            InferError::ModelMissing { name: name.to_string(), dir: roots.first().cloned().unwrap_or_default() }
        })?;
        ModelDir::read(name, dir)
    }

    /// Every model installed in `models_root` (or the `.attune/models` folders) whose manifest
    /// reads; the first of each name.
    pub fn installed(models_root: Option<&Path>) -> Vec<ModelDir> {
        let mut found: Vec<ModelDir> = Vec::new();
        for root in model_roots(models_root) {
            let Ok(entries) = std::fs::read_dir(&root) else { continue };
            let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            dirs.sort();
            for dir in dirs {
                let Some(name) = dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
                if dir.join("model.toml").is_file() && !found.iter().any(|d| d.name == name) {
                    if let Ok(model) = ModelDir::read(&name, dir) {
                        found.push(model);
                    }
                }
            }
        }
        found
    }

    fn read(name: &str, dir: PathBuf) -> Result<ModelDir, InferError> {
        let manifest = dir.join("model.toml");
        let bad = |message: String| InferError::Manifest { path: manifest.clone(), message };
        let text = std::fs::read_to_string(&manifest).map_err(|e| bad(e.to_string()))?;
        let head: ManifestHead = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if head.name != name {
            return Err(bad(format!("names the model `{}`, but its folder is `{name}`", head.name)));
        }
        let runtime = head.runtime.ok_or_else(|| bad("no [runtime] table".into()))?;
        let version = match runtime.get("version") {
            Some(toml::Value::String(v)) if !v.is_empty() => v.clone(),
            _ => return Err(bad("[runtime].version missing".into())),
        };
        Ok(ModelDir { name: name.to_string(), dir, task: head.task, crate_name: head.crate_name, version, runtime })
    }

    /// `name@version`: what profiles record as the model (`model_set`), known before loading.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// The `[runtime]` table as the model crate's settings type (which should deny unknown
    /// fields, so a misspelt or stale key is an error at load, never a setting silently unused).
    pub fn config<T: serde::de::DeserializeOwned>(&self) -> Result<T, InferError> {
        toml::Value::Table(self.runtime.clone()).try_into().map_err(|e: toml::de::Error| InferError::Manifest {
            path: self.dir.join("model.toml"),
            message: format!("[runtime]: {}", e.message()),
        })
    }

    /// A file of the model's folder named in its settings: it must exist, and stay inside the
    /// folder (no absolute path, no `..`).
    pub fn file(&self, relative: &str) -> Result<PathBuf, InferError> {
        let path = Path::new(relative);
        let inside = !relative.is_empty()
            && path.components().all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
        if !inside {
            return Err(self.invalid(format!("`{relative}` is not a file inside the model's folder")));
        }
        let p = self.dir.join(path);
        if p.is_file() {
            Ok(p)
        } else {
            Err(InferError::ModelMissing { name: format!("{} ({})", self.name, p.display()), dir: self.dir.clone() })
        }
    }

    /// An error about this model's manifest.
    pub fn invalid(&self, message: impl Into<String>) -> InferError {
        InferError::Manifest { path: self.dir.join("model.toml"), message: message.into() }
    }
}

fn model_roots(models_root: Option<&Path>) -> Vec<PathBuf> {
    match models_root {
        Some(r) => vec![r.to_path_buf()],
        None => attune_homes().into_iter().map(|h| h.join("models")).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echoes each input's length and remembers the batches it was given.
    struct Lengths(Vec<Vec<usize>>);
    impl Model for Lengths {
        type Input = String;
        type Output = usize;
        fn id(&self) -> &str {
            "lengths"
        }
        fn max_batch(&self) -> usize {
            2
        }
        fn run_batch(&mut self, inputs: &[String]) -> Result<Vec<usize>, InferError> {
            self.0.push(inputs.iter().map(String::len).collect());
            Ok(inputs.iter().map(String::len).collect())
        }
    }

    #[test]
    fn sized_batches_hold_similar_inputs_and_outputs_keep_input_order() {
        let inputs: Vec<String> = ["aaaa", "a", "aaa", "aa", "aaaaa"].iter().map(|s| s.to_string()).collect();
        let mut model = Lengths(Vec::new());
        let out = run_in_batches_by_size(&mut model, &inputs, String::len).unwrap();
        assert_eq!(out, vec![4, 1, 3, 2, 5]);
        assert_eq!(model.0, vec![vec![1, 2], vec![3, 4], vec![5]]);
    }
}
