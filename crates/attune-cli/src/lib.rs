//! `attune`: turns interaction events into interest profiles, inside the privacy policy.

mod embed;
mod eval;
mod report_html;

use anyhow::{bail, Context, Result};
use attune_infer::{Device, Runtime};
use attune_pipeline::isolate::{WorkerConfig, WorkerDecoder};
use attune_pipeline::TextPath;
use attune_pipeline::{
    load_image_model, load_text_in_pictures_model, load_text_model, special_category_classifier, speech_sessions,
    ImageClassifier, ImageStage, InProcessDecoder, MediaDecoder, PictureReading, Pipeline, PipelineConfig,
    SpeechSessions, Task, TextEmbedder, TextInPictures, DEFAULT_IMAGE_MODEL, DEFAULT_SPEECH_MODEL,
    DEFAULT_TEXT_IN_PICTURES_MODEL, DEFAULT_TEXT_MODELS, MODELS,
};
use attune_policy::Policy;
use attune_profile::{
    openrtb_user, OpenMode, OpenRtbOptions, OpenRtbUserId, OpenStore, ProfileStore, Provenance, Scoring, StoreAddress,
    StoreError, StoreLock,
};
use attune_tag::{Calibration, ImageTagConfig, ImageTagger, TagConfig, TextTagger};
use attune_taxonomy::Taxonomy;
use chrono::{DateTime, Utc};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// How `attune` ends, for a scheduler to act on (README, "Exit codes"; `attune --help`).
mod exit {
    /// Done: every event accounted for (processed or skipped), none failed.
    pub const OK: u8 = 0;
    /// Stopped by an error after it started (the store failed, the manifest became unreadable);
    /// what was committed stays, and a rerun continues.
    pub const ERROR: u8 = 1;
    /// Could not start, nothing done: bad arguments, a missing manifest, policy, store or
    /// required model, a store in use by another run, a report path that cannot be written.
    pub const COULD_NOT_START: u8 = 2;
    /// The run finished, but some events failed (listed in the report; kept for `--retry-failed`).
    pub const SOME_FAILED: u8 = 3;
    /// The run finished, but every event failed (e.g. a manifest of broken lines).
    pub const ALL_FAILED: u8 = 4;
    /// Stopped by SIGINT / SIGTERM (128 + the signal's number, as shells report it): the run
    /// read no further event, finished those it had read, and wrote its report
    /// (`"interrupted": true`); a rerun goes on where it stopped.
    pub const INTERRUPTED_BY_SIGINT: u8 = 130;
    pub const INTERRUPTED_BY_SIGTERM: u8 = 143;
}

const EXIT_CODES_HELP: &str = "Exit codes:
  0    done: every event processed or skipped, none failed
  1    stopped by an error once started (store, manifest read); what was committed stays
  2    could not start, nothing done: bad arguments; manifest, policy, store or a required
       model missing; store in use by another run; report path not writable
  3    run finished, some events failed (see the report; --retry-failed)
  4    run finished, every event failed
  130  stopped by SIGINT, 143 by SIGTERM: no further event read, those read finished and
       stored, report written (\"interrupted\": true); a rerun goes on where it stopped.
       A second signal ends it at once (committed batches stay).";

/// An error before a command did anything (bad arguments, something missing, a store in use):
/// exit code 2, so a scheduler knows not to look for partial work.
#[derive(Debug)]
struct CouldNotStart(anyhow::Error);

impl std::fmt::Display for CouldNotStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for CouldNotStart {}

fn not_started(e: impl Into<anyhow::Error>) -> anyhow::Error {
    CouldNotStart(e.into()).into()
}

/// The models a run may not go without (`--require-models`).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModelKind {
    Text,
    Image,
    Speech,
    All,
}

#[derive(Default)]
struct RequiredModels {
    image: bool,
    speech: bool,
}

impl From<&[ModelKind]> for RequiredModels {
    fn from(kinds: &[ModelKind]) -> RequiredModels {
        let any = |k: ModelKind| kinds.iter().any(|&x| x == k || x == ModelKind::All);
        RequiredModels { image: any(ModelKind::Image), speech: any(ModelKind::Speech) }
    }
}

#[derive(Parser)]
#[command(
    name = "attune",
    version,
    about = "Interest profiles from interactions, inside hard privacy limits",
    after_help = EXIT_CODES_HELP
)]
struct Cli {
    /// Settings from a TOML file, named as the long flags (`batch-size = 32`, `text-model =
    /// ["multilingual-e5-small"]`, `store = "profiles.sqlite"`). A flag beats its ATTUNE_*
    /// variable, which beats the file, which beats the default; an unknown name is an error.
    #[arg(long, global = true, env = "ATTUNE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ModelArgs {
    /// Folder of installed models (default: .attune/models found from here or the binary).
    #[arg(long, env = "ATTUNE_MODELS")]
    models: Option<PathBuf>,
    /// CPU threads (default: the cores present): for `run`, one budget that decoders and model
    /// calls share; for `eval`, ONNX Runtime's.
    #[arg(long, env = "ATTUNE_THREADS")]
    threads: Option<usize>,
    /// Use CUDA where ONNX Runtime's CUDA provider loads, CPU otherwise.
    #[arg(long, env = "ATTUNE_GPU")]
    gpu: bool,
    /// Texts per model call.
    #[arg(long, env = "ATTUNE_MODEL_BATCH", default_value_t = 32)]
    model_batch: usize,
    /// Images per model call.
    #[arg(long, env = "ATTUNE_IMAGE_BATCH", default_value_t = 16)]
    image_batch: usize,
    /// The text models, in order of preference (comma-separated): `run` sends each text to the
    /// first whose calibration covers its language, loading the later ones only when a text
    /// first needs them (default: minilm-l6-v2 for English, multilingual-e5-small with its
    /// special-category classifier for the other 11 languages; `multilingual-e5-small` alone
    /// takes all 12); `eval` and `embed` use the first.
    #[arg(long, env = "ATTUNE_TEXT_MODEL", value_delimiter = ',', default_values_t = DEFAULT_TEXT_MODELS.map(String::from))]
    text_model: Vec<String>,
    /// The image classifier (`attune models` lists what is installed).
    #[arg(long, env = "ATTUNE_IMAGE_MODEL", default_value = DEFAULT_IMAGE_MODEL)]
    image_model: String,
    /// The speech model: whisper-base (multilingual, every supported language) or
    /// whisper-tiny-en (English only, about three times faster; other languages come out as
    /// English-sounding text, which the language gate then mostly skips).
    #[arg(long, env = "ATTUNE_SPEECH_MODEL", default_value = DEFAULT_SPEECH_MODEL)]
    speech_model: String,
    /// The model that reads text in photos and video frames (PP-OCRv4: Latin letters and Chinese
    /// characters; README, "Text in pictures").
    #[arg(long, env = "ATTUNE_TEXT_IN_PICTURES_MODEL", default_value = DEFAULT_TEXT_IN_PICTURES_MODEL)]
    text_in_pictures_model: String,
}

#[derive(Subcommand)]
enum Command {
    /// Process a manifest (JSON Lines) into the profile store.
    Run(RunArgs),
    /// (Internal) A decoder process: reads requests on stdin, writes decoded media on stdout.
    /// `attune run` starts these itself.
    #[command(hide = true)]
    DecodeWorker(WorkerArgs),
    /// Print every profile as JSON Lines on stdout.
    Export {
        /// The profile store: a SQLite file, or `postgresql://…` (only `run` creates one).
        #[arg(long, env = "ATTUNE_STORE", default_value = "attune.sqlite")]
        store: StoreAddress,
        /// profile: the shared profile format (JSON Lines); parquet: the same as a Parquet file;
        /// openrtb: OpenRTB `user.data` segments (JSON Lines).
        #[arg(long, env = "ATTUNE_FORMAT", value_enum, default_value_t = Format::Profile)]
        format: Format,
        #[command(flatten)]
        scoring: ScoringArgs,
        /// OpenRTB `data.name`: the data provider (the spec's examples use the provider's domain).
        #[arg(long, env = "ATTUNE_OPENRTB_PROVIDER", default_value = "attune")]
        openrtb_provider: String,
        /// OpenRTB `user.id`: a keyed hash of the internal id (default), the internal id, or none.
        #[arg(long, env = "ATTUNE_OPENRTB_USER_ID", value_enum, default_value_t = UserIdMode::Hashed)]
        openrtb_user_id: UserIdMode,
        /// The key of `--openrtb-user-id hashed`, in hex (so several stores hash a user alike);
        /// default: the store's own random key.
        #[arg(long, env = "ATTUNE_USER_ID_KEY")]
        user_id_key: Option<String>,
        /// Incremental: only the profiles a run gave new evidence after this instant (RFC 3339;
        /// when the evidence was written, not when it was captured), e.g. the previous export's
        /// start.
        #[arg(long)]
        since: Option<DateTime<Utc>>,
        /// Only this user's profile (repeatable).
        #[arg(long = "user", value_name = "USER_ID")]
        users: Vec<String>,
        /// Write to this file instead of standard output. It appears whole or not at all: it is
        /// written beside its final name and renamed when the export has finished.
        #[arg(long, short = 'o', env = "ATTUNE_OUTPUT", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Show each of a user's topics with the events and products behind it.
    Explain {
        user: String,
        /// The profile store: a SQLite file, or `postgresql://…` (only `run` creates one).
        #[arg(long, env = "ATTUNE_STORE", default_value = "attune.sqlite")]
        store: StoreAddress,
        #[command(flatten)]
        scoring: ScoringArgs,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Erase a user's profile and evidence, and skip their events in every later run until
    /// `attune unforget` (the store keeps a keyed hash of the id, not the id).
    Forget {
        user: String,
        /// The profile store: a SQLite file, or `postgresql://…` (only `run` creates one).
        #[arg(long, env = "ATTUNE_STORE", default_value = "attune.sqlite")]
        store: StoreAddress,
    },
    /// A run's JSON report (`run --report`) as one self-contained HTML page with charts.
    Report {
        /// The JSON report.
        report: PathBuf,
        /// Where to write the page.
        #[arg(long)]
        html: PathBuf,
    },
    /// Let later runs process a forgotten user's events again (nothing erased comes back).
    Unforget {
        user: String,
        /// The profile store: a SQLite file, or `postgresql://…` (only `run` creates one).
        #[arg(long, env = "ATTUNE_STORE", default_value = "attune.sqlite")]
        store: StoreAddress,
    },
    /// Measure the text tagger on labelled sets (lines of {"text", "expect", "topics", "lang",
    /// "kind"}): overall and per language.
    Eval {
        #[arg(required = true)]
        labelled: Vec<PathBuf>,
        /// Sweep a threshold over the same embeddings, e.g. `topic_threshold=0.80:0.88:0.01`
        /// (repeatable: every combination); one line of figures per setting.
        #[arg(long)]
        sweep: Vec<String>,
        /// Print the items it got wrong.
        #[arg(long)]
        show_errors: bool,
        /// Print the metrics as JSON.
        #[arg(long)]
        json: bool,
        /// Leave the lexicon out, to measure the embedding detectors alone.
        #[arg(long)]
        no_lexicon: bool,
        /// Print every item's decision margin: how far its verdict was from going the other way
        /// (cosine or probability; the lexicon's verdicts have none). Scores move by ~1e-5 from
        /// one CPU to another, so a margin below 0.01 is a verdict that may not travel.
        #[arg(long)]
        margins: bool,
        /// The policy whose language gate the items go through first, as in a run (default:
        /// the default policy's 12 supported languages).
        #[arg(long, env = "ATTUNE_POLICY")]
        policy: Option<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        tag: TagArgs,
    },
    /// The text model's vectors for each line of a JSON Lines file (lines of {"text"}), each
    /// text's windows and clauses as the tagger embeds them, as JSON Lines on stdout: for
    /// training scripts (scripts/train_probe.py).
    Embed {
        input: PathBuf,
        /// Only the segments' texts ({"line", "segment", "text"}), no model: what a training
        /// script that runs the encoder itself needs (scripts/finetune_sensitivity.py).
        #[arg(long)]
        segments_only: bool,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// List the installed models: name, task, the crate that runs it (and whether this build
    /// has it), and the id profiles record.
    Models {
        /// Folder of installed models (default: .attune/models found from here or the binary).
        #[arg(long, env = "ATTUNE_MODELS")]
        models: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
#[command(after_help = EXIT_CODES_HELP)]
struct RunArgs {
    /// The manifest: JSON Lines of events, plain, gzip or Zstandard, or `-` for standard input.
    manifest: PathBuf,
    /// The profile store: a SQLite file, created when missing, or a PostgreSQL database
    /// (`postgresql://user@host:port/db`, its schema `attune` created when missing) that many
    /// workers share.
    #[arg(long, env = "ATTUNE_STORE", default_value = "attune.sqlite")]
    store: StoreAddress,
    /// Write the run's report (JSON) here.
    #[arg(long, env = "ATTUNE_REPORT")]
    report: Option<PathBuf>,
    /// Write the report as one self-contained HTML page with charts here (no network needed to
    /// view it; `attune report` makes one from a JSON report).
    #[arg(long, env = "ATTUNE_REPORT_HTML")]
    report_html: Option<PathBuf>,
    /// When standard error is not a terminal (a scheduler's log), write a progress line at most
    /// this often, in seconds (0: after every batch). On a terminal a progress bar shows the same
    /// with an ETA.
    #[arg(long, env = "ATTUNE_PROGRESS_EVERY", default_value_t = 30.0, value_name = "SECONDS")]
    progress_every: f64,
    /// A TOML policy file (defaults: EU/EEA, UK and KR excluded; start 2025-12-16).
    #[arg(long, env = "ATTUNE_POLICY")]
    policy: Option<PathBuf>,
    /// Events per store transaction.
    #[arg(long, env = "ATTUNE_BATCH_SIZE", default_value_t = 64)]
    batch_size: usize,
    /// Process only the events of this manifest that failed in earlier runs (the store keeps
    /// their ids); everything else is left alone.
    #[arg(long, env = "ATTUNE_RETRY_FAILED")]
    retry_failed: bool,
    /// Refuse to start (exit 2) when one of these models is missing, instead of failing each of
    /// its events: text, image, speech or all, comma-separated. Text is always required.
    #[arg(long, env = "ATTUNE_REQUIRE_MODELS", value_enum, value_delimiter = ',')]
    require_models: Vec<ModelKind>,
    /// Do not read the text in photos and video frames (faster; a placard, a sign or a pharmacy
    /// label in a picture then goes unchecked for special categories).
    #[arg(long, env = "ATTUNE_NO_TEXT_IN_PICTURES")]
    no_text_in_pictures: bool,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    video: VideoArgs,
    #[command(flatten)]
    decode: DecodeArgs,
    /// Only read, gate and decode, store nothing: the decoding stages' speed alone (benchmarks).
    #[arg(long, hide = true)]
    decode_only: bool,
    /// Speech transcribed with a lower mean token log-probability is skipped as
    /// `unintelligible_speech` instead of tagged: misheard speech loses the words that make a
    /// conversation sensitive. Lower it (-1.0 is faster-whisper's failed-decode mark) for more
    /// topics from poorly heard speech, at that risk.
    #[arg(long, env = "ATTUNE_MIN_SPEECH_LOGPROB", default_value_t = attune_pipeline::DEFAULT_MIN_SPEECH_LOGPROB, allow_negative_numbers = true)]
    min_speech_logprob: f32,
}

/// How media are decoded: in worker processes (the default) or in this one.
#[derive(clap::Args, Clone)]
struct DecodeArgs {
    /// Decoder threads, each with its own worker process (default: `--threads` when the manifest
    /// has photos or videos, else 1). Decoders and model calls share the `--threads` budget.
    #[arg(long, env = "ATTUNE_DECODERS")]
    decoders: Option<usize>,
    /// Decode in this process: faster to start, but a decoder crash ends the run.
    #[arg(long, env = "ATTUNE_IN_PROCESS_DECODING")]
    in_process_decoding: bool,
    /// Seconds one media event may take to decode before its worker is stopped.
    #[arg(long, env = "ATTUNE_DECODE_TIMEOUT", default_value_t = 300)]
    decode_timeout: u64,
    /// Memory (address space) limit of each decoder process, in MiB.
    #[arg(long, env = "ATTUNE_DECODE_MEMORY_MB", default_value_t = 4096)]
    decode_memory_mb: u64,
    /// The `attune` binary that decoder processes run (default: this one). Set where attune is
    /// embedded in another program (the Python package), whose own executable is not attune.
    #[arg(long, env = "ATTUNE_DECODER_PROGRAM", hide = true)]
    decoder_program: Option<PathBuf>,
}

#[derive(clap::Args)]
struct WorkerArgs {
    #[arg(long, default_value_t = 4096)]
    memory_mb: u64,
}

/// How videos are sampled.
#[derive(clap::Args, Clone, Copy)]
struct VideoArgs {
    /// auto: keyframes only where they come at least every 1.5 intervals, else every frame
    /// decoded; keyframes; every-frame.
    #[arg(long, env = "ATTUNE_VIDEO_SAMPLING", default_value = "auto")]
    video_sampling: attune_decode::video::Sampling,
    /// Seconds between the frames sampled from a video.
    #[arg(long, env = "ATTUNE_VIDEO_INTERVAL", default_value_t = 1.0)]
    video_interval: f64,
    /// Frames per video at most (longer videos are sampled more sparsely).
    #[arg(long, env = "ATTUNE_VIDEO_MAX_FRAMES", default_value_t = 32)]
    video_max_frames: usize,
}

/// Tagger thresholds, to calibrate with `attune eval` (defaults are the shipped calibration).
#[derive(clap::Args, Clone, Copy)]
struct TagArgs {
    #[arg(long)]
    topic_threshold: Option<f32>,
    #[arg(long)]
    topic_margin: Option<f32>,
    #[arg(long)]
    category_threshold: Option<f32>,
    #[arg(long)]
    probe_threshold: Option<f32>,
    #[arg(long)]
    sensitive_node_threshold: Option<f32>,
    #[arg(long)]
    sensitive_node_margin: Option<f32>,
    /// How much labelled example chats pull each node's vector (0: descriptions only).
    #[arg(long)]
    node_examples: Option<f32>,
    /// One threshold for the special-category classifier in every language.
    #[arg(long)]
    classifier_threshold: Option<f32>,
}

impl TagArgs {
    /// The calibration's thresholds, with the ones given on the command line instead.
    fn apply(self, d: TagConfig) -> TagConfig {
        TagConfig {
            topic_threshold: self.topic_threshold.unwrap_or(d.topic_threshold),
            topic_margin: self.topic_margin.unwrap_or(d.topic_margin),
            category_threshold: self.category_threshold.unwrap_or(d.category_threshold),
            probe_threshold: self.probe_threshold.unwrap_or(d.probe_threshold),
            sensitive_node_threshold: self.sensitive_node_threshold.unwrap_or(d.sensitive_node_threshold),
            sensitive_node_margin: self.sensitive_node_margin.unwrap_or(d.sensitive_node_margin),
            node_examples: self.node_examples.unwrap_or(d.node_examples),
            classifier_threshold: self.classifier_threshold.or(d.classifier_threshold),
            ..d
        }
    }
}

#[derive(clap::Args, Clone, Copy)]
struct ScoringArgs {
    /// Profiles as of this instant (RFC 3339; default: now): evidence captured after it is left
    /// out, and scores are decayed to it.
    #[arg(long, env = "ATTUNE_AS_OF")]
    as_of: Option<DateTime<Utc>>,
    /// Evidence loses half its weight in this many days.
    #[arg(long, env = "ATTUNE_HALF_LIFE_DAYS", default_value_t = Scoring::DEFAULT_HALF_LIFE_DAYS)]
    half_life_days: f64,
    /// Leave out topics scoring below this (0 to 1). The default leaves out only topics that
    /// decayed to 0.0000; a profile left with no topic is not exported.
    #[arg(long, env = "ATTUNE_MIN_SCORE", default_value_t = Scoring::DEFAULT_MIN_SCORE)]
    min_score: f64,
    /// At most this many topics per profile, the strongest.
    #[arg(long, env = "ATTUNE_TOP_K")]
    top_k: Option<usize>,
}

impl ScoringArgs {
    fn scoring(self) -> Result<Scoring> {
        if !(self.half_life_days > 0.0 && self.half_life_days.is_finite()) {
            bail!("--half-life-days must be a positive number");
        }
        if !(0.0..=1.0).contains(&self.min_score) {
            bail!("--min-score must be between 0 and 1");
        }
        if self.top_k == Some(0) {
            bail!("--top-k must be at least 1");
        }
        Ok(Scoring {
            half_life_days: self.half_life_days,
            as_of: self.as_of.unwrap_or_else(Utc::now),
            min_score: self.min_score,
            top_k: self.top_k,
        })
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// attune.profile.v1 (schemas/attune.profile.v1.json)
    Profile,
    /// OpenRTB 2.6 user object with user.data (segtax 4)
    Openrtb,
    /// attune.profile.v1 as Parquet: a row per user, `topics` a list of structs (README, *Export*)
    #[cfg(feature = "parquet")]
    Parquet,
}

/// `--config FILE` (or `ATTUNE_CONFIG`): each setting of the TOML file becomes its flag's
/// ATTUNE_* variable, where that variable is not set already, before the arguments are parsed;
/// so clap applies flag > variable > file > default, and `--help` documents one set of names.
fn apply_config_file() -> Result<()> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let from_flag = args.iter().enumerate().find_map(|(i, a)| {
        let a = a.to_str()?;
        match a.strip_prefix("--config") {
            Some("") => args.get(i + 1).map(PathBuf::from),
            Some(rest) => rest.strip_prefix('=').map(PathBuf::from),
            None => None,
        }
    });
    let Some(path) = from_flag.or_else(|| std::env::var_os("ATTUNE_CONFIG").map(PathBuf::from)) else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading the config file {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("the config file {} is not valid TOML", path.display()))?;
    // Every variable some flag of some command reads.
    fn variables(command: &clap::Command, out: &mut std::collections::HashSet<String>) {
        out.extend(command.get_arguments().filter_map(|a| a.get_env()?.to_str().map(String::from)));
        command.get_subcommands().for_each(|c| variables(c, out));
    }
    let mut known = std::collections::HashSet::new();
    variables(&Cli::command(), &mut known);
    let mut settings = Vec::new();
    for (key, value) in &table {
        let variable = format!("ATTUNE_{}", key.to_uppercase().replace('-', "_"));
        if !known.contains(&variable) || variable == "ATTUNE_CONFIG" {
            bail!(
                "unknown setting `{key}` in {} (settings are named as the long flags, e.g. `batch-size`)",
                path.display()
            );
        }
        let scalar = |v: &toml::Value| match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            other => Err(anyhow::anyhow!("setting `{key}` in {}: {other} is not a value", path.display())),
        };
        let value = match value {
            toml::Value::Array(items) => items.iter().map(scalar).collect::<Result<Vec<_>>>()?.join(","),
            v => scalar(v)?,
        };
        settings.push((variable, value));
    }
    for (variable, value) in settings {
        if std::env::var_os(&variable).is_none() {
            // SAFETY (edition 2021: safe): before any thread is started.
            std::env::set_var(variable, value);
        }
    }
    Ok(())
}

/// `attune` with the process's arguments: what the binary runs.
pub fn main() -> ExitCode {
    // Like other command-line tools, end quietly when the reader of stdout goes away
    // (`attune export | head`) instead of failing on every write after it.
    // SAFETY: setting a signal's disposition to the default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    init_logging();
    if let Err(e) = apply_config_file() {
        eprintln!("attune: {}", one_line(&e));
        return ExitCode::from(exit::COULD_NOT_START);
    }
    // Usage errors end here with clap's message and exit code 2 (could not start).
    let done = |r: Result<()>| r.map(|()| exit::OK);
    let result = match Cli::parse().command {
        Command::Run(args) => run(&args),
        Command::DecodeWorker(args) => done(decode_worker(&args)),
        Command::Export {
            store,
            format,
            scoring,
            openrtb_provider,
            openrtb_user_id,
            user_id_key,
            since,
            users,
            output,
        } => {
            let openrtb = OpenRtbArgs { provider: openrtb_provider, user_id: openrtb_user_id, key: user_id_key };
            let selection = Selection { since, users };
            done(
                scoring
                    .scoring()
                    .map_err(not_started)
                    .and_then(|s| export(&store, format, s, &openrtb, &selection, output.as_deref())),
            )
        }
        Command::Explain { user, store, scoring, json } => {
            done(scoring.scoring().map_err(not_started).and_then(|s| explain(&store, &user, s, json)))
        }
        Command::Forget { user, store } => done(forget(&store, &user)),
        Command::Report { report, html } => done(html_report(&report, &html)),
        Command::Models { models } => done(list_models(models.as_deref())),
        Command::Unforget { user, store } => done(unforget(&store, &user)),
        Command::Eval { labelled, sweep, show_errors, json, no_lexicon, margins, policy, model, tag } => {
            done(sweep.iter().map(|s| eval::parse_sweep(s)).collect::<Result<Vec<_>>>().map_err(not_started).and_then(
                |sweeps| {
                    let policy = match policy.as_deref() {
                        Some(p) => Policy::from_file(p)?,
                        None => Policy::default(),
                    };
                    let (mut embedder, tagger) = load_models(&runtime(&model)?, &model, Some(tag))?;
                    let gate = language_gate(&policy, tagger.languages())?;
                    let show = eval::Show { errors: show_errors, margins, json };
                    eval::run(&labelled, embedder.as_mut(), &tagger, &gate, show, no_lexicon, &sweeps)
                },
            ))
        }
        Command::Embed { input, segments_only: true, .. } => done(embed::segments(&input)),
        Command::Embed { input, model, .. } => done(runtime(&model).and_then(|r| {
            let mut embedder = load_text_model(&model.text_model[0], &r, model.models.as_deref(), model.model_batch)?;
            embed::run(&input, embedder.as_mut())
        })),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One line, the causes joined (not anyhow's "Caused by:" block or a backtrace).
            eprintln!("attune: {}", one_line(&e));
            ExitCode::from(if e.is::<CouldNotStart>() { exit::COULD_NOT_START } else { exit::ERROR })
        }
    }
}

/// An error and its causes on one line, for a log a scheduler keeps.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn runtime(args: &ModelArgs) -> Result<Runtime> {
    runtime_with(args, args.threads.unwrap_or_else(cores))
}

fn runtime_with(args: &ModelArgs, threads: usize) -> Result<Runtime> {
    let device = if args.gpu { Device::CudaIfAvailable } else { Device::Cpu };
    Ok(Runtime::new(threads.max(1), device)?)
}

/// Whether the first lines of a manifest hold photos or videos (decoding-heavy), to divide the
/// thread budget before the run. Unreadable lines count as nothing here; the run reports them.
fn has_pictures(manifest: &Path) -> bool {
    // Standard input can be read once only: no peeking (the split for text and voice is kept).
    if manifest == Path::new("-") {
        return false;
    }
    let Ok(reader) = attune_event::open_manifest_reader(manifest) else { return false };
    std::io::BufRead::split(reader, b'\n').take(4096).map_while(Result::ok).any(|line| {
        serde_json::from_slice::<serde_json::Value>(&line)
            .is_ok_and(|v| matches!(v["kind"].as_str(), Some("image" | "video")))
    })
}

/// Divide the thread budget. ONNX Runtime's pool is sized once, before the run; decoder threads
/// and model calls then share `total` CPU permits (a decoder takes one while it decodes, a model
/// call as many as ONNX Runtime has threads), so together they never run more than `total`
/// threads, and whichever has work uses the cores the other leaves idle. Photos and videos are
/// decode-heavy: every thread may decode, and the models get half. Text needs no decoder and
/// voice decodes at ~600× real time: one decoder, and every thread for the models.
fn thread_split(total: usize, decoders: Option<usize>, pictures: bool) -> (usize, usize) {
    let total = total.max(1);
    let model_threads = if pictures { (total / 2).max(1) } else { total };
    let decoders = decoders.unwrap_or(if pictures { total } else { 1 }).max(1);
    (decoders, model_threads)
}

/// `attune decode-worker`: set the memory limit, then decode requests until stdin closes.
fn decode_worker(args: &WorkerArgs) -> Result<()> {
    // Ctrl-C reaches the whole process group: the run finishes the events it has read, so its
    // decoders must not die under it. They end when the run closes their stdin (or dies).
    // SAFETY: setting signal dispositions before any thread starts.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
    let bytes = args.memory_mb.saturating_mul(1 << 20);
    let limit = libc::rlimit { rlim_cur: bytes as libc::rlim_t, rlim_max: bytes as libc::rlim_t };
    // SAFETY: setrlimit with a valid struct; it only affects this process.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } != 0 {
        bail!("cannot set the decoder's memory limit: {}", std::io::Error::last_os_error());
    }
    let stdin = std::io::stdin().lock();
    let stdout = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    attune_pipeline::isolate::serve(stdin, stdout)?;
    Ok(())
}

/// Decoder options for the image model's input size and the video flags.
fn decode_options(image_short_side: u32, video: &VideoArgs, threads: usize) -> attune_decode::DecodeOptions {
    let defaults = attune_decode::DecodeOptions::default();
    attune_decode::DecodeOptions {
        image_short_side,
        video: attune_decode::video::VideoOptions {
            sampling: video.video_sampling,
            interval_s: video.video_interval.max(0.01),
            frame_short_side: image_short_side,
            threads,
            limits: attune_decode::video::VideoLimits {
                max_frames: video.video_max_frames.max(1),
                ..defaults.video.limits
            },
            ..defaults.video
        },
        ..defaults
    }
}

/// The first text model and a tagger built with it and its calibration (thresholds from `tag`
/// instead, where given: `eval`). A run needs a validated calibration.
fn load_models(
    runtime: &Runtime,
    args: &ModelArgs,
    tag: Option<TagArgs>,
) -> Result<(Box<dyn TextEmbedder>, TextTagger)> {
    load_text_path(&args.text_model[0], runtime, args.models.as_deref(), args.model_batch, tag)
}

/// The run's text paths: the first text model loaded now, each later one made when a text in a
/// language only it covers first needs it. A later model that is not installed or not validated
/// is left out with a warning: its languages are then skipped, never tagged by another model.
fn text_paths(runtime: &Runtime, args: &ModelArgs) -> Result<(Vec<TextPath<'static>>, Vec<String>)> {
    let (embedder, tagger) = load_models(runtime, args, None)?;
    let mut model_set = vec![embedder.id().to_string(), tagger.version().to_string()];
    if let Some(id) = tagger.classifier_id() {
        model_set.push(id.to_string());
    }
    let mut covered: Vec<attune_lang::Language> = tagger.languages().to_vec();
    let mut paths = vec![TextPath::ready(embedder, tagger)];
    for name in args.text_model.iter().skip(1) {
        let (languages, validated) = Calibration::declared(name)?;
        let languages: Vec<_> = languages.into_iter().filter(|l| !covered.contains(l)).collect();
        let installed = MODELS.check(name, Task::TextEmbedding, args.models.as_deref());
        match (&installed, validated, languages.is_empty()) {
            // Installed, but not a text model this build runs: a mistake in the arguments.
            (Err(e @ attune_infer::InferError::Manifest { .. }), _, _) => {
                return Err(not_started(anyhow::anyhow!("--text-model {name}: {e}")))
            }
            (_, _, true) => continue,
            (Err(e), _, _) => {
                tracing::warn!("text model {name} not installed ({e}): its languages will be skipped");
                continue;
            }
            (_, false, _) => {
                tracing::warn!("text model {name}'s calibration is not validated: its languages will be skipped");
                continue;
            }
            _ => {}
        }
        covered.extend(&languages);
        model_set.push(format!("{name}(on first use)"));
        let (name, runtime, root, batch) = (name.clone(), runtime.clone(), args.models.clone(), args.model_batch);
        paths.push(TextPath::later(
            languages,
            Box::new(move || {
                load_text_path(&name, &runtime, root.as_deref(), batch, None).map_err(|e| format!("{name}: {e:#}"))
            }),
        ));
    }
    Ok((paths, model_set))
}

/// Text model `name` and its tagger (see [`load_models`]).
fn load_text_path(
    name: &str,
    runtime: &Runtime,
    models_root: Option<&Path>,
    model_batch: usize,
    tag: Option<TagArgs>,
) -> Result<(Box<dyn TextEmbedder>, TextTagger)> {
    let mut embedder = load_text_model(name, runtime, models_root, model_batch)?;
    let mut calibration = Calibration::for_model(embedder.id(), embedder.dimensions())?;
    if tag.is_none() && !calibration.validated {
        anyhow::bail!(
            "the tagger's calibration for {} is not validated for runs (its sensitive-item figures do not hold yet); `attune eval` measures it",
            embedder.id()
        );
    }
    if let Some(tag) = tag {
        let config = tag.apply(calibration.config.clone());
        calibration = calibration.with_config(config);
    }
    let wants_classifier = calibration.classifier.clone();
    let cache = cache_dir().map(|d| d.join("tagger"));
    let mut tagger = TextTagger::with_reference_cache(embedder.as_mut(), calibration, cache.as_deref())
        .context("building the tagger")?;
    match special_category_classifier(embedder.id(), runtime) {
        Some(classifier) => {
            let classifier = classifier.map_err(anyhow::Error::msg).context("the special-category classifier")?;
            tagger = tagger.with_classifier(classifier, embedder.as_ref())?;
        }
        None if wants_classifier.is_some() => anyhow::bail!(
            "the calibration of {} was measured with the classifier {}, which this build does not have",
            embedder.id(),
            wants_classifier.unwrap_or_default()
        ),
        None => {}
    }
    Ok((embedder, tagger))
}

/// The run's language gate: the policy's supported languages that the text model's calibration
/// holds for; the others are skipped (said once, here).
fn language_gate(policy: &Policy, languages: &[attune_lang::Language]) -> Result<attune_lang::LanguageGate> {
    let gate = policy.language_gate_within(languages).with_context(|| {
        format!("none of the policy's supported languages is one the text model is calibrated for ({:?})", languages)
    })?;
    let left_out: Vec<&str> =
        policy.supported_languages().iter().filter(|l| !gate.admitted().contains(l)).map(|l| l.code()).collect();
    if !left_out.is_empty() {
        tracing::info!(
            "text in {} will be skipped: the text model's calibration does not cover it (--text-model)",
            left_out.join(", ")
        );
    }
    Ok(gate)
}

/// Where attune keeps what it can compute again (the tagger's reference embeddings):
/// `$ATTUNE_CACHE`, else `$XDG_CACHE_HOME/attune`, else `~/.cache/attune`; `ATTUNE_CACHE=` (empty)
/// keeps nothing.
fn cache_dir() -> Option<PathBuf> {
    let nonempty = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from);
    match std::env::var_os("ATTUNE_CACHE") {
        Some(v) if v.is_empty() => None,
        Some(v) => Some(PathBuf::from(v)),
        None => {
            nonempty("XDG_CACHE_HOME").or_else(|| nonempty("HOME").map(|h| h.join(".cache"))).map(|c| c.join("attune"))
        }
    }
}

/// `attune models`: one line per installed model.
fn list_models(models_root: Option<&Path>) -> Result<()> {
    let installed = attune_infer::ModelDir::installed(models_root);
    if installed.is_empty() {
        bail!("no model is installed (run `just setup`, or give --models DIR)");
    }
    println!("{:<36} {:<22} {:<28} id", "model", "task", "crate");
    for dir in installed {
        let registered = MODELS.crates().iter().any(|c| c.name == dir.crate_name);
        let crate_name =
            if registered { dir.crate_name.clone() } else { format!("{} (not in this build)", dir.crate_name) };
        println!("{:<36} {:<22} {:<28} {}", dir.name, dir.task.as_str(), crate_name, dir.id());
    }
    Ok(())
}

/// An installed model that cannot serve where it was named (another task, a crate this build
/// lacks, a manifest that does not read): a mistake to stop at, unlike a model not installed.
fn misconfigured(e: &attune_infer::InferError) -> bool {
    matches!(e, attune_infer::InferError::Manifest { .. })
}

/// The image model and its class table.
fn load_image_models(runtime: &Runtime, args: &ModelArgs) -> Result<(Box<dyn ImageClassifier>, ImageTagger)> {
    let classifier = load_image_model(&args.image_model, runtime, args.models.as_deref(), args.image_batch)?;
    Ok((classifier, ImageTagger::new(ImageTagConfig::default())?))
}

/// The store of `export` and `explain`, which must exist: a mistyped path is an error, not a
/// new empty store.
fn open_existing_store(address: &StoreAddress) -> Result<Box<dyn ProfileStore>> {
    Ok(address.open(OpenMode::MustExist, false).map_err(not_started)?.store)
}

/// Everything a run needs, made before it starts: an error while making it means the run could
/// not start (exit 2), and nothing was processed.
struct PreparedRun {
    policy: Policy,
    languages: attune_lang::LanguageGate,
    text: Vec<TextPath<'static>>,
    images: Option<(Box<dyn ImageClassifier>, ImageTagger)>,
    /// `Ok(None)`: not read (`--no-text-in-pictures`); `Err`: why the model could not be had.
    text_in_pictures: std::result::Result<Option<Box<dyn TextInPictures>>, String>,
    speech: SpeechSessions<'static>,
    store: Box<dyn ProfileStore>,
    /// A SQLite store's one writer until the run ends.
    _lock: Option<StoreLock>,
    provenance: Provenance,
    config: PipelineConfig,
    decoders: Vec<Box<dyn MediaDecoder>>,
    /// Kept alive for the models made from it.
    _runtime: Runtime,
}

impl PreparedRun {
    /// A pipeline over these parts. The text paths, speech sessions and decoders are moved into
    /// it; a caller that runs again takes them back from the pipeline afterwards.
    fn pipeline(&mut self) -> Pipeline<'_, 'static> {
        Pipeline {
            policy: &self.policy,
            text: std::mem::take(&mut self.text),
            languages: &self.languages,
            store: self.store.as_mut(),
            images: self
                .images
                .as_mut()
                .map(|(classifier, tagger)| ImageStage { classifier: classifier.as_mut(), tagger }),
            text_in_pictures: match &mut self.text_in_pictures {
                Ok(Some(reader)) => PictureReading::Reader(reader.as_mut()),
                Ok(None) => PictureReading::Off,
                Err(reason) => PictureReading::Unavailable(reason.clone()),
            },
            speech: std::mem::replace(&mut self.speech, SpeechSessions::unavailable("in use by a pipeline")),
            provenance: self.provenance.clone(),
            config: self.config.clone(),
            decoders: std::mem::take(&mut self.decoders),
        }
    }
}

fn run(args: &RunArgs) -> Result<u8> {
    // Before the models load, so a signal while they do is not the default (an exit without a
    // report) either.
    let stop = StopSignals::register().map_err(not_started)?;
    let source = attune_event::ManifestSource::open(&args.manifest).map_err(not_started)?;
    for report in args.report.iter().chain(&args.report_html) {
        check_report_path(report).map_err(not_started)?;
    }
    let prepared = prepare_run(args, has_pictures(&args.manifest)).map_err(not_started)?;
    execute_run(args, source, prepared, &stop)
}

/// SIGTERM (what schedulers send) and SIGINT: the first asks the run to stop reading and finish
/// what it has read; a second, while it does, ends the process at once — each batch commits
/// atomically, so what was committed stays.
struct StopSignals {
    requested: Arc<AtomicBool>,
    /// The number of the signal that asked.
    signal: Arc<AtomicUsize>,
}

impl StopSignals {
    fn register() -> Result<StopSignals> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let requested = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicUsize::new(0));
        for number in [SIGTERM, SIGINT] {
            // Registered first, so it sees the flag as the previous signal left it.
            signal_hook::flag::register_conditional_shutdown(number, 128 + number, Arc::clone(&requested))?;
            signal_hook::flag::register_usize(number, Arc::clone(&signal), number as usize)?;
            signal_hook::flag::register(number, Arc::clone(&requested))?;
        }
        Ok(StopSignals { requested, signal })
    }

    /// The signal's name and the exit code for it, once one has arrived.
    fn received(&self) -> Option<(&'static str, u8)> {
        match self.signal.load(Ordering::SeqCst) as i32 {
            signal_hook::consts::SIGINT => Some(("SIGINT", exit::INTERRUPTED_BY_SIGINT)),
            signal_hook::consts::SIGTERM => Some(("SIGTERM", exit::INTERRUPTED_BY_SIGTERM)),
            _ => None,
        }
    }
}

/// `attune report REPORT.json --html FILE`.
fn html_report(report: &Path, html: &Path) -> Result<()> {
    let text = std::fs::read_to_string(report)
        .with_context(|| format!("reading the report {}", report.display()))
        .map_err(not_started)?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a JSON report", report.display()))
        .map_err(not_started)?;
    std::fs::write(html, report_html::render(&value)).with_context(|| format!("writing {}", html.display()))
}

/// Find out before the run, not after all its work, whether its report can be written: open it
/// for appending (which changes nothing), and take away a file that was not there before.
fn check_report_path(path: &Path) -> Result<()> {
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("the report {} cannot be written", path.display()))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Load everything a run needs; `pictures`: the input holds photos or videos (the thread
/// budget's split).
fn prepare_run(args: &RunArgs, pictures: bool) -> Result<PreparedRun> {
    let (model, video) = (&args.model, &args.video);
    let policy = match args.policy.as_deref() {
        Some(p) => Policy::from_file(p)?,
        None => Policy::default(),
    };
    let required = RequiredModels::from(&args.require_models[..]);
    let total_threads = model.threads.unwrap_or_else(cores);
    let (decoder_threads, model_threads) = thread_split(total_threads, args.decode.decoders, pictures);
    tracing::info!("{decoder_threads} decoder threads, {model_threads} ONNX Runtime threads");
    let runtime = runtime_with(model, model_threads)?;
    let (text, text_model_set) = text_paths(&runtime, model)?;
    let covered: Vec<attune_lang::Language> = text.iter().flat_map(|p| p.languages().to_vec()).collect();
    let languages = language_gate(&policy, &covered)?;
    // Text is the one model every run needs; without the image or speech model, a run still
    // processes everything else and fails those events with the reason — unless the caller
    // said it needs them (`--require-models`), when it does not start.
    let images = match load_image_models(&runtime, model) {
        Ok(images) => Some(images),
        Err(e) if required.image => return Err(e.context("the image model is required (--require-models)")),
        Err(e) if e.downcast_ref().is_some_and(misconfigured) => return Err(e.context("--image-model")),
        Err(e) => {
            tracing::warn!("image model unavailable, image events will fail: {e:#}");
            None
        }
    };
    let text_in_pictures = if args.no_text_in_pictures {
        Ok(None)
    } else {
        match load_text_in_pictures_model(&model.text_in_pictures_model, &runtime, model.models.as_deref()) {
            Ok(reader) => Ok(Some(reader)),
            Err(e) if required.image => {
                return Err(anyhow::Error::from(e)
                    .context("the text-in-pictures model is required with the image model (--require-models)"))
            }
            Err(e) if misconfigured(&e) => return Err(anyhow::Error::from(e).context("--text-in-pictures-model")),
            Err(e) => {
                tracing::warn!("text-in-pictures model unavailable, image and video events will fail: {e:#}");
                Err(e.to_string())
            }
        }
    };
    // Up to one speech session per thread of the budget, each on one thread: recordings are
    // transcribed side by side (Whisper's decoder gains little from intra-op threads). A batch
    // runs as many as it holds CPU permits: `model_threads`, and more while the decoders leave
    // cores idle. Each is loaded when a batch first needs it (~250 MB each), so a run without
    // recordings loads none.
    let speech_runtime = runtime_with(model, 1)?;
    // Whisper decodes only as the languages the gate admits: nothing else could be tagged.
    let codes: Vec<&str> = languages.admitted().iter().map(|l| l.code()).collect();
    let speech = match speech_sessions(
        &model.speech_model,
        &speech_runtime,
        model.models.as_deref(),
        total_threads.max(1),
        &codes,
    ) {
        Ok(speech) => speech,
        Err(e) if required.speech => {
            return Err(anyhow::Error::from(e).context("the speech model is required (--require-models)"))
        }
        Err(e) if misconfigured(&e) => return Err(anyhow::Error::from(e).context("--speech-model")),
        Err(e) => {
            tracing::warn!("speech model unavailable, audio events will fail: {e:#}");
            SpeechSessions::unavailable(format!("no speech model in this run: {e}"))
        }
    };
    // After the models (a run that cannot load them leaves nothing beside the store), before the
    // store is opened: a second run on the same store stops here instead of doing the work twice.
    let OpenStore { store, lock } = args
        .store
        .open(OpenMode::CreateIfMissing, true)
        .with_context(|| format!("opening the profile store {}", args.store.shown()))?;
    // Forgotten users are turned away at the gate, before anything of theirs is decoded.
    let forgotten = store.forgotten_users()?;
    if !forgotten.is_empty() {
        tracing::info!("{} forgotten users' events will be skipped", forgotten.len());
    }
    let policy = policy.with_forgotten_users(Arc::new(move |user: &str| forgotten.contains(user)));
    let only = if args.retry_failed {
        let ids: std::collections::HashSet<String> = store.failed_events()?.into_iter().collect();
        eprintln!("retrying {} events that failed before", ids.len());
        Some(ids)
    } else {
        None
    };
    let mut model_set = text_model_set;
    if let Some((classifier, table)) = &images {
        model_set.extend([classifier.id().to_string(), table.version()]);
    }
    if let Ok(Some(reader)) = &text_in_pictures {
        model_set.push(reader.id().to_string());
    }
    if let Some(id) = speech.id() {
        model_set.push(id.to_string());
    }
    let provenance = Provenance { taxonomy: Taxonomy::get().version().to_string(), model_set: model_set.join("+") };
    let image_short_side = images.as_ref().map_or(256, |(c, _)| c.min_short_side());
    let decode = decode_options(image_short_side, video, 1);
    let decoders: Vec<Box<dyn MediaDecoder>> = (0..decoder_threads)
        .map(|_| -> Result<Box<dyn MediaDecoder>> {
            if args.decode.in_process_decoding {
                return Ok(Box::new(InProcessDecoder(decode)));
            }
            Ok(Box::new(WorkerDecoder::new(WorkerConfig {
                program: match &args.decode.decoder_program {
                    Some(program) => program.clone(),
                    None => std::env::current_exe().context("finding the attune binary for decoder processes")?,
                },
                args: vec![
                    "decode-worker".to_string(),
                    "--memory-mb".to_string(),
                    args.decode.decode_memory_mb.to_string(),
                ],
                timeout: std::time::Duration::from_secs(args.decode.decode_timeout.max(1)),
                options: decode,
            })))
        })
        .collect::<Result<_>>()?;
    let config = PipelineConfig {
        batch_size: args.batch_size.max(1),
        decode,
        only,
        decode_only: args.decode_only,
        min_speech_logprob: args.min_speech_logprob,
        cpu_budget: total_threads,
        model_threads,
        ..Default::default()
    };
    Ok(PreparedRun {
        policy,
        languages,
        text,
        images,
        text_in_pictures,
        speech,
        store,
        _lock: lock,
        provenance,
        config,
        decoders,
        _runtime: runtime,
    })
}

/// "120 of 283 events (42%), 35.2 events/s, about 5 s left", or without a total "120 events,
/// 35.2 events/s".
fn progress_line(events: u64, total: Option<u64>, elapsed: std::time::Duration) -> String {
    let rate = events as f64 / elapsed.as_secs_f64().max(1e-3);
    match total {
        Some(total) if total > 0 => {
            let left = total.saturating_sub(events);
            let eta = if rate > 0.0 { format!("about {:.0} s left", left as f64 / rate) } else { "ETA unknown".into() };
            format!(
                "{events} of {total} events ({:.0}%), {rate:.1} events/s, {eta}",
                100.0 * events as f64 / total as f64
            )
        }
        _ => format!("{events} events, {rate:.1} events/s"),
    }
}

/// Run the pipeline over the manifest, write the report; the exit code the report calls for.
fn execute_run(
    args: &RunArgs,
    mut source: attune_event::ManifestSource,
    mut prepared: PreparedRun,
    stop: &StopSignals,
) -> Result<u8> {
    prepared.config.stop = Some(Arc::clone(&stop.requested));
    let decoder_threads = prepared.decoders.len();
    // The total, for an ETA: the manifest's records, when it is a plain file.
    let total = attune_event::count_records(&args.manifest);
    let terminal = std::io::stderr().is_terminal();
    let bar = match (terminal, total) {
        (false, _) => ProgressBar::hidden(),
        (true, Some(total)) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} events ({per_sec}, {elapsed} elapsed, ETA {eta}) {msg}")
                .expect("static template"),
        ),
        (true, None) => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {elapsed} {pos} events ({per_sec}) {msg}")
                .expect("static template"),
        ),
    };
    let started = std::time::Instant::now();
    let mut last_line: Option<std::time::Instant> = None;
    let every = std::time::Duration::from_secs_f64(args.progress_every.max(0.0));
    let mut pipeline = prepared.pipeline();
    let report = pipeline.run(&mut source, &mut |p| {
        bar.set_position(p.events);
        let stages: Vec<String> =
            p.stages.iter().filter(|(_, s)| s.items > 0).map(|(n, s)| format!("{n} {:.0}/s", s.per_s())).collect();
        let counts = format!("processed {} skipped {} failed {}", p.processed, p.skipped, p.failed);
        bar.set_message(format!("{counts} | {}", stages.join(", ")));
        if !terminal && last_line.is_none_or(|t| t.elapsed() >= every) {
            last_line = Some(std::time::Instant::now());
            eprintln!("progress: {} ({counts})", progress_line(p.events, total, started.elapsed()));
        }
    })?;
    bar.finish_and_clear();
    let mut report = report;
    let interrupted = if report.interrupted { stop.received() } else { None };
    report.signal = interrupted.map(|(name, _)| name.to_string());
    if let Some(path) = &args.report {
        // From the struct, not through serde_json::Value, which would sort the keys.
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing the report {}", path.display()))?;
    }
    if let Some(path) = &args.report_html {
        let page = report_html::render(&serde_json::to_value(&report)?);
        std::fs::write(path, page).with_context(|| format!("writing the report {}", path.display()))?;
    }
    eprintln!("{}", report.summary());
    eprintln!("stages (busy time per stage; decode is summed over {decoder_threads} decoder threads):");
    for line in report.stage_lines() {
        eprintln!("{line}");
    }
    match interrupted {
        Some((_, code)) => Ok(code),
        None => Ok(run_exit_code(&report)),
    }
}

/// What a finished run's report means to a scheduler (see [`exit`]).
fn run_exit_code(report: &attune_pipeline::Report) -> u8 {
    let failed = report.failed.len() as u64;
    if failed > 0 && failed == report.events {
        eprintln!("every event failed");
        exit::ALL_FAILED
    } else if failed > 0 {
        exit::SOME_FAILED
    } else {
        exit::OK
    }
}

/// `user.id` in OpenRTB exports.
#[derive(Clone, Copy, clap::ValueEnum)]
enum UserIdMode {
    /// HMAC-SHA256 of the internal id (hex)
    Hashed,
    /// The internal id as stored
    Internal,
    /// No user.id
    None,
}

struct OpenRtbArgs {
    provider: String,
    user_id: UserIdMode,
    key: Option<String>,
}

/// Which profiles `export` writes: all, or those changed since an instant, or some users'.
struct Selection {
    since: Option<DateTime<Utc>>,
    users: Vec<String>,
}

fn export(
    store_path: &StoreAddress,
    format: Format,
    scoring: Scoring,
    openrtb: &OpenRtbArgs,
    selection: &Selection,
    output: Option<&Path>,
) -> Result<()> {
    let store = open_existing_store(store_path)?;
    let user_id = match openrtb.user_id {
        UserIdMode::Internal => OpenRtbUserId::Internal,
        UserIdMode::None => OpenRtbUserId::None,
        UserIdMode::Hashed => match &openrtb.key {
            Some(hex) => OpenRtbUserId::hashed_with_hex_key(hex)
                .map_err(|e| not_started(anyhow::anyhow!("--user-id-key: {e}")))?,
            None => OpenRtbUserId::Hashed { key: store.own_key().to_vec() },
        },
    };
    let options = OpenRtbOptions { provider: openrtb.provider.clone(), user_id };
    #[cfg(feature = "parquet")]
    if matches!(format, Format::Parquet) && output.is_none() && std::io::stdout().is_terminal() {
        return Err(not_started(anyhow::anyhow!(
            "--format parquet writes a binary file: give --output FILE or redirect standard output"
        )));
    }
    // A file is written beside its final name and renamed at the end, so a reader never sees
    // half an export, and a failed export leaves the previous file as it was.
    let partial = match output {
        Some(path) => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let partial = tempfile::Builder::new()
                .prefix(".attune-export-")
                .tempfile_in(dir)
                .with_context(|| format!("--output {}: cannot write in {}", path.display(), dir.display()))
                .map_err(not_started)?;
            Some((path, partial))
        }
        None => None,
    };
    let sink: Box<dyn Write + Send> = match &partial {
        Some((_, file)) => Box::new(file.as_file().try_clone().context("--output")?),
        None => Box::new(std::io::stdout()),
    };
    let mut sink = ExportSink::new(format, options, std::io::BufWriter::with_capacity(1 << 16, sink))?;
    let result = if selection.since.is_none() && selection.users.is_empty() {
        store.for_each_profile(&scoring, &mut |profile| sink.write(profile))
    } else {
        // The users asked for, or all that changed since; both: those of them that changed.
        let mut users: Vec<String> = match selection.since {
            Some(since) => store.users_changed_since(since)?,
            None => selection.users.clone(),
        };
        if selection.since.is_some() && !selection.users.is_empty() {
            users.retain(|u| selection.users.contains(u));
        }
        users.sort();
        users.dedup();
        users.iter().try_for_each(|user| match store.profile(user, &scoring)? {
            Some(profile) => sink.write(profile),
            None => Ok(()),
        })
    };
    let broken_pipe = sink.broken_pipe;
    match result.and_then(|()| sink.finish()) {
        Ok(profiles) => {
            if let Some((path, partial)) = partial {
                partial.as_file().sync_all().with_context(|| format!("--output {}", path.display()))?;
                partial.persist(path).with_context(|| format!("--output {}", path.display()))?;
                eprintln!("exported {profiles} profiles to {}", path.display());
            }
            Ok(())
        }
        // `attune export | head` is a normal way to look at a store.
        Err(_) if broken_pipe => Ok(()),
        Err(e) => Err(e).context("exporting profiles"),
    }
}

type ExportOut = std::io::BufWriter<Box<dyn Write + Send>>;

/// What `export` writes profiles into: JSON Lines (either format) or a Parquet file.
struct ExportSink {
    writer: ExportWriter,
    profiles: u64,
    /// The reader of standard output went away (`attune export | head`).
    broken_pipe: bool,
}

enum ExportWriter {
    Lines {
        out: ExportOut,
        openrtb: Option<OpenRtbOptions>,
    },
    #[cfg(feature = "parquet")]
    Parquet(Box<attune_profile::ParquetProfileWriter<ExportOut>>),
}

impl ExportSink {
    fn new(format: Format, options: OpenRtbOptions, out: ExportOut) -> Result<ExportSink> {
        let writer = match format {
            Format::Profile => ExportWriter::Lines { out, openrtb: None },
            Format::Openrtb => ExportWriter::Lines { out, openrtb: Some(options) },
            #[cfg(feature = "parquet")]
            Format::Parquet => ExportWriter::Parquet(Box::new(attune_profile::ParquetProfileWriter::new(out)?)),
        };
        Ok(ExportSink { writer, profiles: 0, broken_pipe: false })
    }

    fn write(&mut self, profile: attune_profile::Profile) -> Result<(), StoreError> {
        self.profiles += 1;
        match &mut self.writer {
            ExportWriter::Lines { out, openrtb } => {
                let line = match openrtb {
                    None => serde_json::to_string(&profile),
                    Some(options) => serde_json::to_string(&openrtb_user(&profile, options)),
                }
                .map_err(|e| StoreError::Stopped(e.to_string()))?;
                writeln!(out, "{line}").map_err(|e| self.io_error(e))
            }
            #[cfg(feature = "parquet")]
            ExportWriter::Parquet(writer) => writer.write(profile),
        }
    }

    /// Flushes everything; the number of profiles written.
    fn finish(self) -> Result<u64, StoreError> {
        let out = match self.writer {
            ExportWriter::Lines { out, .. } => out,
            #[cfg(feature = "parquet")]
            ExportWriter::Parquet(writer) => writer.finish()?.1,
        };
        match out.into_inner() {
            Ok(_) => Ok(self.profiles),
            // The reader of standard output has what it wanted (`attune export | head`).
            Err(e) if e.error().kind() == std::io::ErrorKind::BrokenPipe => Ok(self.profiles),
            Err(e) => Err(StoreError::Stopped(e.into_error().to_string())),
        }
    }

    fn io_error(&mut self, e: std::io::Error) -> StoreError {
        self.broken_pipe = e.kind() == std::io::ErrorKind::BrokenPipe;
        StoreError::Stopped(e.to_string())
    }
}

fn explain(store_path: &StoreAddress, user: &str, scoring: Scoring, json: bool) -> Result<()> {
    let store = open_existing_store(store_path)?;
    let Some(profile) = store.profile(user, &scoring)? else {
        bail!("no profile for user {user}");
    };
    let evidence = store.explain(user)?;
    let mut out = std::io::stdout().lock();
    if json {
        let topics: Vec<serde_json::Value> = profile
            .topics
            .iter()
            .map(|topic| {
                let node = topic.id.node();
                let events: Vec<serde_json::Value> = evidence
                    .iter()
                    .filter(|e| e.topic_id == node.id.to_string())
                    .flat_map(|e| e.events.iter())
                    .filter(|e| e.captured_at <= scoring.as_of)
                    .map(|e| {
                        serde_json::json!({
                            "event_id": e.event_id,
                            "product": e.product.as_str(),
                            "captured_at": e.captured_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                            "match": e.score,
                            "from": e.sources.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                serde_json::json!({"id": node.id.to_string(), "name": topic.name, "score": topic.score,
                    "path": node.path, "events": events})
            })
            .collect();
        let doc = serde_json::json!({"user_id": user, "taxonomy": profile.taxonomy, "model_set": profile.model_set,
            "scored_at": scoring.as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "topics": topics});
        writeln!(out, "{doc}")?;
        return Ok(());
    }
    writeln!(out, "{user}  (taxonomy {}, models {})", profile.taxonomy, profile.model_set)?;
    for topic in &profile.topics {
        let node = topic.id.node();
        writeln!(out, "\n{} {}  score {:.4}  ({})", node.id, topic.name, topic.score, node.path.join(" > "))?;
        if let Some(ev) = evidence.iter().find(|e| e.topic_id == node.id.to_string()) {
            for item in ev.events.iter().filter(|e| e.captured_at <= scoring.as_of) {
                let from: Vec<&str> = item.sources.iter().map(|s| s.as_str()).collect();
                writeln!(
                    out,
                    "  {}  {:<9}  {}  match {:.3}  from {}",
                    item.captured_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    item.product.as_str(),
                    item.event_id,
                    item.score,
                    if from.is_empty() { "(not recorded)".to_string() } else { from.join("+") }
                )?;
            }
        }
    }
    Ok(())
}

/// The store of `forget` and `unforget`, which must exist, held against a run: a run that
/// loaded the forgotten users before `forget` wrote could otherwise bring the user back.
fn lock_existing_store(address: &StoreAddress) -> Result<OpenStore> {
    address.open(OpenMode::MustExist, true).map_err(not_started)
}

fn forget(store_path: &StoreAddress, user: &str) -> Result<()> {
    let OpenStore { mut store, lock: _lock } = lock_existing_store(store_path)?;
    let f = store.forget(user)?;
    let before = if f.already_forgotten { " (already forgotten)" } else { "" };
    eprintln!(
        "forgot {user}{before}: {} evidence rows and {} ledger entries erased; their events are skipped until `attune unforget`",
        f.evidence_rows, f.ledger_rows
    );
    Ok(())
}

fn unforget(store_path: &StoreAddress, user: &str) -> Result<()> {
    let OpenStore { mut store, lock: _lock } = lock_existing_store(store_path)?;
    if store.unforget(user)? {
        eprintln!("unforgot {user}: later runs process their events again");
    } else {
        eprintln!("{user} was not forgotten: nothing to do");
    }
    Ok(())
}

/// Logs on stderr: the filter from `ATTUNE_LOG`, else `RUST_LOG`, else warnings (ONNX Runtime's
/// own only when errors); JSON lines with `ATTUNE_LOG_FORMAT=json` (for log shippers); colour
/// only on a terminal.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ATTUNE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| "warn,ort=error".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("ATTUNE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// `attune run` inside another program (the Python package `attune`, for Ray Data actors): the
/// options are `attune run`'s flags, the models load once, and batches of JSON Lines records go
/// through the whole pipeline one after another — gate, decode (in worker processes, as in a
/// run), models, tagging and one store transaction per pipeline batch. What comes back is each
/// batch's report: ids, counts and failure reasons, never content.
pub struct EmbeddedRun {
    prepared: PreparedRun,
}

impl EmbeddedRun {
    /// Load the models and open the store as `attune run FLAGS…` would (no manifest: the records
    /// come with [`EmbeddedRun::process`]). `--report`, `--report-html` and `--progress-every`
    /// have no use here; the caller keeps the reports. Errors are `attune run`'s start errors.
    pub fn new(flags: &[String]) -> Result<EmbeddedRun> {
        let argv = ["attune", "run", "-"].into_iter().map(String::from).chain(flags.iter().cloned());
        let args = match Cli::try_parse_from(argv)?.command {
            Command::Run(args) => args,
            _ => unreachable!("parsed as `attune run`"),
        };
        if args.report.is_some() || args.report_html.is_some() {
            bail!("--report and --report-html are the caller's to write when embedded");
        }
        // A batch may hold anything: the split for photos and videos (half the threads for the
        // models), which costs text and speech little.
        Ok(EmbeddedRun { prepared: prepare_run(&args, true)? })
    }

    /// The model set and taxonomy the profiles will record.
    pub fn provenance(&self) -> &Provenance {
        &self.prepared.provenance
    }

    /// Run one batch of records (JSON Lines, as in a manifest) through the pipeline; media paths
    /// are resolved, and confined, under `media_root` as a manifest's are under its folder.
    pub fn process(&mut self, records: Vec<u8>, media_root: &Path) -> Result<attune_pipeline::Report> {
        let mut source = attune_event::ManifestSource::from_reader(std::io::Cursor::new(records), media_root.into());
        let mut pipeline = self.prepared.pipeline();
        let report = pipeline.run(&mut source, &mut |_| {});
        // The models, speech sessions and decoder processes stay for the next batch.
        let Pipeline { text, speech, decoders, .. } = pipeline;
        let p = &mut self.prepared;
        (p.text, p.speech, p.decoders) = (text, speech, decoders);
        Ok(report?)
    }
}
