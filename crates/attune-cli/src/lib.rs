//! `attune`: turns interaction events into interest profiles, inside the privacy policy.

mod embed;
mod eval;
mod models;
mod report_html;
mod run;
mod store_commands;

use models::*;
use run::*;
use store_commands::*;

use anyhow::{bail, Context, Result};
use attune_infer::{Device, Runtime};
use attune_pipeline::isolate::{WorkerConfig, WorkerDecoder};
use attune_pipeline::TextPath;
use attune_pipeline::{
    load_image_model, load_text_in_pictures_model, load_text_model, special_category_classifier, speech_sessions,
    ImageClassifier, ImageStage, InProcessDecoder, MediaDecoder, PictureReading, Pipeline, PipelineConfig,
    SpeechSessions, Task, TextEmbedder, TextInPictures, DEFAULT_IMAGE_MODEL, DEFAULT_SPEECH_MODEL,
    DEFAULT_TEXT_IN_PICTURES_MODEL, DEFAULT_TEXT_MODELS, DEFAULT_VOICE_ACTIVITY_MODEL, MODELS,
};
use attune_policy::Policy;
use attune_profile::{
    openrtb_user, OpenMode, OpenRtbOptions, OpenRtbUserId, OpenStore, ProfileStore, Provenance, Scoring, StoreAddress,
    StoreError, StoreLock,
};
use attune_tag::{Calibration, ImageTagConfig, ImageTagger, TagConfig, TextTagger, Tightening};
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
    /// first needs them (default: multilingual-e5-small with its special-category classifier,
    /// for all 12 languages; `minilm-l6-v2,multilingual-e5-small` sends English to MiniLM, about
    /// twice as fast but leakier); `eval` and `embed` use the first.
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
    /// Where recordings speak, so speech is decoded only there: silero-vad, or `none` for the
    /// speech model's own energy gate (which finds the pauses of quiet recordings, but none in
    /// steady noise: every 30 s of a long recording in a street is then decoded, and Whisper
    /// hears words in the noise).
    #[arg(long, env = "ATTUNE_VOICE_ACTIVITY_MODEL", default_value = DEFAULT_VOICE_ACTIVITY_MODEL)]
    voice_activity_model: String,
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
        /// Print the items it got wrong, each with the segment (window, message or clause) the
        /// special-category classifier found likeliest to be sensitive and its p.
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
    /// Last: its help heading holds for the flags after it.
    #[command(flatten)]
    bars: BarArgs,
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

/// The tagger's bars, on the calibration's scale: `eval` takes any value (that is how one is
/// measured); `run` takes each only in place of the calibration's where it keeps out at least as
/// much (attune_tag::Tightening; anything else is refused and the run does not start). One set
/// of names and variables, so one `--config` file is measured by `eval` and run by `run` alike.
#[derive(clap::Args, Clone, Copy)]
#[command(next_help_heading = "The tagger's bars (for `run`, each only stricter than the calibration's)")]
struct BarArgs {
    /// A topic's similarity bar (`run`: at least the calibration's: fewer, surer topics).
    #[arg(long, env = "ATTUNE_TOPIC_THRESHOLD")]
    topic_threshold: Option<f32>,
    /// How far below the best topic another may score (`run`: at most the calibration's).
    #[arg(long, env = "ATTUNE_TOPIC_MARGIN")]
    topic_margin: Option<f32>,
    /// Topics an item at most (`run`: at most the calibration's).
    #[arg(long, env = "ATTUNE_MAX_TOPICS")]
    max_topics: Option<usize>,
    /// The special-category classifier's bar, one for every language (`run`: at most its own
    /// bar in each language; lower drops more).
    #[arg(long, env = "ATTUNE_CLASSIFIER_THRESHOLD")]
    classifier_threshold: Option<f32>,
    /// The classifier's p(sensitive) that confirms a lexicon match (0: every lexicon match drops
    /// its text unconfirmed; `run`: at most the calibration's).
    #[arg(long, env = "ATTUNE_LEXICON_CONFIRMATION")]
    lexicon_confirmation: Option<f32>,
    /// The sensitive-node detector's similarity bar (`run`: at most the calibration's).
    #[arg(long, env = "ATTUNE_SENSITIVE_NODE_THRESHOLD")]
    sensitive_node_threshold: Option<f32>,
    /// How far below the best allowed node a sensitive node still counts (`run`: at least the
    /// calibration's).
    #[arg(long, env = "ATTUNE_SENSITIVE_NODE_MARGIN")]
    sensitive_node_margin: Option<f32>,
    /// The probe's bar, MiniLM's path (`run`: at most the calibration's).
    #[arg(long, env = "ATTUNE_PROBE_THRESHOLD")]
    probe_threshold: Option<f32>,
    /// The category descriptions' similarity bar (`run`: at most the calibration's).
    #[arg(long, env = "ATTUNE_CATEGORY_THRESHOLD")]
    category_threshold: Option<f32>,
    /// Check clauses on their own in texts of at least this many words (0: every text; `run`:
    /// 0 or at most the calibration's).
    #[arg(long, env = "ATTUNE_CLAUSES_FROM_WORDS")]
    clauses_from_words: Option<usize>,
    /// A clause counts only when its message or window reaches this p(sensitive) (0: every
    /// clause counts; `run`: at most the calibration's).
    #[arg(long, env = "ATTUNE_CLAUSE_GATE")]
    clause_gate: Option<f32>,
}

/// The flag of a tagger setting named as `TagConfig` names it (`classifier_threshold` →
/// `--classifier-threshold`): what `run` refuses and `eval` reports speak of.
pub(crate) fn flag(setting: &str) -> String {
    format!("--{}", setting.replace('_', "-"))
}

impl BarArgs {
    fn tightening(self) -> Tightening {
        Tightening {
            topic_threshold: self.topic_threshold,
            topic_margin: self.topic_margin,
            max_topics: self.max_topics,
            classifier_threshold: self.classifier_threshold,
            lexicon_confirmation: self.lexicon_confirmation,
            sensitive_node_threshold: self.sensitive_node_threshold,
            sensitive_node_margin: self.sensitive_node_margin,
            probe_threshold: self.probe_threshold,
            category_threshold: self.category_threshold,
            clauses_from_words: self.clauses_from_words,
            clause_gate: self.clause_gate,
        }
    }
}

/// `attune eval`'s tagger settings (defaults are the shipped calibration): the bars a run may
/// tighten, and what only a new calibration may change.
#[derive(clap::Args, Clone, Copy)]
#[command(next_help_heading = "Tagger settings only a new calibration changes (`run` does not take them)")]
struct TagArgs {
    /// How much labelled example chats pull each node's vector (0: descriptions only).
    #[arg(long)]
    node_examples: Option<f32>,
    /// How many of a node's nearest example chats score it as a topic beside its vector (0: its vector alone).
    #[arg(long)]
    node_neighbours: Option<usize>,
    /// The node's own vector's share of its topic score beside its nearest example chats.
    #[arg(long)]
    node_vector_share: Option<f32>,
    /// How much the topic head's log-probability of a node adds to its topic score (0: no head).
    #[arg(long)]
    topic_head_weight: Option<f32>,
    /// Every lexicon match waits for the classifier's confirmation, the decisive terms' too
    /// (crates/attune-tag/data/sensitive-lexicon-decisive.tsv): to measure what they add.
    #[arg(long)]
    confirm_every_lexicon_match: bool,
    /// Whether each message of a text of several lines gives topics of its own beside its
    /// window's (`--message-topics false` to measure a session's window alone).
    #[arg(long)]
    message_topics: Option<bool>,
    /// The topic head's "no interest" probability at which a text (or a message) gets no topics
    /// ("thanks", "make it shorter"; 1: only when the head is certain).
    #[arg(long)]
    no_interest_threshold: Option<f32>,
    /// Last: its help heading holds for the flags after it.
    #[command(flatten)]
    bars: BarArgs,
}

impl TagArgs {
    /// The calibration's thresholds, with the ones given on the command line instead.
    fn apply(self, d: TagConfig) -> TagConfig {
        TagConfig {
            topic_threshold: self.bars.topic_threshold.unwrap_or(d.topic_threshold),
            topic_margin: self.bars.topic_margin.unwrap_or(d.topic_margin),
            max_topics: self.bars.max_topics.unwrap_or(d.max_topics),
            category_threshold: self.bars.category_threshold.unwrap_or(d.category_threshold),
            probe_threshold: self.bars.probe_threshold.unwrap_or(d.probe_threshold),
            sensitive_node_threshold: self.bars.sensitive_node_threshold.unwrap_or(d.sensitive_node_threshold),
            sensitive_node_margin: self.bars.sensitive_node_margin.unwrap_or(d.sensitive_node_margin),
            node_examples: self.node_examples.unwrap_or(d.node_examples),
            node_neighbours: self.node_neighbours.unwrap_or(d.node_neighbours),
            node_vector_share: self.node_vector_share.unwrap_or(d.node_vector_share),
            topic_head_weight: self.topic_head_weight.unwrap_or(d.topic_head_weight),
            classifier_threshold: self.bars.classifier_threshold.or(d.classifier_threshold),
            lexicon_confirmation: self.bars.lexicon_confirmation.or(d.lexicon_confirmation),
            clauses_from_words: self.bars.clauses_from_words.unwrap_or(d.clauses_from_words),
            clause_gate: self.bars.clause_gate.or(d.clause_gate),
            confirm_every_lexicon_match: self.confirm_every_lexicon_match || d.confirm_every_lexicon_match,
            message_topics: self.message_topics.unwrap_or(d.message_topics),
            no_interest_threshold: self.no_interest_threshold.or(d.no_interest_threshold),
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
                    let (mut embedder, tagger) = load_models(&runtime(&model)?, &model, TaggerSettings::Measured(tag))?;
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
    prepared: RunPlan,
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
        Ok(EmbeddedRun { prepared: plan_run(&args, true)? })
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
        let parts = pipeline.into_reusable_parts();
        let p = &mut self.prepared;
        (p.text, p.speech, p.decoders) = (parts.text, parts.speech, parts.decoders);
        Ok(report?)
    }
}
