//! The batch pipeline: event source → policy gate → decode → embed → tag → profile store,
//! and the report of what happened to every event.
//!
//! Every record ends in exactly one bucket of the [`Report`]: processed, skipped for a reason,
//! or failed with a message. `events = processed + Σ skipped + failed`.

mod registry;
mod report;

pub use registry::{
    load_image_model, load_speech_model, load_text_model, ImageClassifier, SpeechToText, TextEmbedder,
    DEFAULT_IMAGE_MODEL, DEFAULT_SPEECH_MODEL, DEFAULT_TEXT_MODEL,
};
pub use report::{Failure, Report, Skipped};

use attune_decode::image::RgbImage;
use attune_decode::{decode, DecodeOptions, Decoded};
use attune_event::{Event, EventSource, Origin};
use attune_infer::run_in_batches;
use attune_policy::{Admitted, Exclusion, Policy};
use attune_profile::{EventRecord, FailedEvent, LedgerOutcome, ProfileDelta, ProfileStore, Provenance, StoreError};
use attune_tag::{ImageTagger, Segments, TextTagger, Verdict};
use std::collections::HashSet;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("event source: {0}")]
    Source(#[from] attune_event::EventError),
    #[error("profile store: {0}")]
    Store(#[from] StoreError),
}

/// How the pipeline batches work.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Admitted events gathered before a model call and a store transaction.
    pub batch_size: usize,
    /// A batch is also flushed once its decoded media reach this many bytes, so a run of long
    /// recordings cannot pile up in memory (64 two-hour recordings would be 29 GB of PCM).
    pub max_batch_bytes: usize,
    pub decode: DecodeOptions,
    /// Process only these event ids (a retry of earlier failures); the rest are counted as
    /// `not_selected`.
    pub only: Option<HashSet<String>>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig { batch_size: 64, max_batch_bytes: 256 << 20, decode: DecodeOptions::default(), only: None }
    }
}

/// Where the pipeline is, for progress bars; handed to the observer after every batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub events: u64,
    pub processed: u64,
    pub skipped: u64,
    pub failed: u64,
}

/// The stages a batch goes through, wired to one model, one tagger and one store.
pub struct Pipeline<'a> {
    pub policy: &'a Policy,
    pub embedder: &'a mut dyn TextEmbedder,
    pub tagger: &'a TextTagger,
    pub store: &'a mut dyn ProfileStore,
    /// `None`: image events fail with an explanation instead of being classified.
    pub images: Option<ImageStage<'a>>,
    /// `None`: audio events fail with an explanation instead of being transcribed.
    pub speech: Option<&'a mut dyn SpeechToText>,
    pub provenance: Provenance,
    pub config: PipelineConfig,
}

/// An admitted, decoded event waiting for its model.
pub(crate) struct Pending {
    origin: Origin,
    event: Admitted<Event>,
    decoded: Admitted<Decoded>,
}

/// The image model and its class table, when the run has one.
pub struct ImageStage<'a> {
    pub classifier: &'a mut dyn ImageClassifier,
    pub tagger: &'a ImageTagger,
}

impl Pipeline<'_> {
    /// Run every record of `source` through the stages. Only a failing source or store stops
    /// the run; everything else is a per-event outcome in the report.
    pub fn run(
        &mut self,
        source: &mut dyn EventSource,
        observe: &mut dyn FnMut(&Progress),
    ) -> Result<Report, PipelineError> {
        let started = Instant::now();
        let mut report = Report::new(&self.provenance);
        let mut batch: Vec<Pending> = Vec::with_capacity(self.config.batch_size);
        let mut batch_bytes = 0usize;
        let mut failures_kept = 0usize;
        while let Some(record) = source.next_record()? {
            report.events += 1;
            let selected = |id: Option<&str>| match (&self.config.only, id) {
                (None, _) => true,
                (Some(only), Some(id)) => only.contains(id),
                (Some(_), None) => false,
            };
            let (origin, event) = match record {
                Ok(ok) if selected(Some(&ok.1.event_id)) => ok,
                Err(failure) if selected(failure.event_id.as_deref()) => {
                    report.fail(failure.report_id(), Some(failure.origin.line), failure.error.to_string());
                    continue;
                }
                _ => {
                    report.skipped.not_selected += 1;
                    continue;
                }
            };
            let admitted = match self.policy.admit(event) {
                Ok(a) => a,
                Err(reason) => {
                    report.skip(reason);
                    continue;
                }
            };
            match decode(&admitted, &self.config.decode) {
                Ok(decoded) => {
                    batch_bytes += decoded.get().bytes();
                    batch.push(Pending { origin, event: admitted, decoded });
                }
                Err(e) => report.fail_event(admitted.get(), origin.line, e.to_string()),
            }
            if batch.len() >= self.config.batch_size || batch_bytes >= self.config.max_batch_bytes {
                self.flush(&mut batch, &mut report, source)?;
                self.keep_failures(&report, &mut failures_kept)?;
                batch_bytes = 0;
                observe(&report.progress());
            }
        }
        self.flush(&mut batch, &mut report, source)?;
        self.keep_failures(&report, &mut failures_kept)?;
        observe(&report.progress());
        report.finish(started.elapsed());
        Ok(report)
    }

    /// Deduplicate, embed, tag and store one batch, in one store transaction.
    fn flush(
        &mut self,
        batch: &mut Vec<Pending>,
        report: &mut Report,
        source: &mut dyn EventSource,
    ) -> Result<(), PipelineError> {
        if batch.is_empty() {
            return Ok(());
        }
        let last_origin = batch.last().map(|p| p.origin.clone()).expect("non-empty");
        // Duplicates: already in the store's ledger, or earlier in this batch.
        let ids: Vec<&str> = batch.iter().map(|p| p.event.get().event_id.as_str()).collect();
        let mut seen: HashSet<String> = self.store.recorded(&ids)?.into_iter().collect();
        let mut work = Vec::with_capacity(batch.len());
        for p in batch.drain(..) {
            if !seen.insert(p.event.get().event_id.clone()) {
                report.skipped.duplicate += 1;
                continue;
            }
            work.push(p);
        }

        let mut records = Vec::with_capacity(work.len());
        // Each item's verdicts from each source; an item that fails anywhere is dropped from
        // the batch with its failure recorded, never half-tagged.
        let mut parts = Parts::new(work.len());
        // Speech becomes text first; transcripts live only here, for the text path.
        let transcripts = self.transcribe(&work, &mut parts, report);
        self.tag_texts(&work, &transcripts, &mut parts, report);
        self.tag_images(&work, &mut parts, report);
        let verdicts = parts.verdicts(&work, report);

        for (p, verdict) in work.iter().zip(verdicts) {
            let Some(verdict) = verdict else { continue }; // failed above
            let e = p.event.get();
            let (outcome, delta) = match verdict {
                Verdict::Sensitive { .. } => {
                    report.skipped.sensitive += 1;
                    (LedgerOutcome::Dropped, None)
                }
                Verdict::Topics(topics) => {
                    report.processed += 1;
                    let outcome = if topics.is_empty() { LedgerOutcome::NoTopic } else { LedgerOutcome::Tagged };
                    report.count_topics(topics.len());
                    let delta = ProfileDelta {
                        event_id: e.event_id.clone(),
                        user_id: e.user_id.clone(),
                        product: e.product,
                        captured_at: e.captured_at,
                        topics: topics.into_iter().map(|t| (t.topic, t.score)).collect(),
                    };
                    (outcome, Some(delta))
                }
            };
            records.push(EventRecord { event_id: e.event_id.clone(), user_id: e.user_id.clone(), outcome, delta });
        }
        self.store.record(&records, &self.provenance)?;
        source.acknowledge(&last_origin)?;
        Ok(())
    }
}

impl Pipeline<'_> {
    /// Hand the failures since the last call to the store, so `--retry-failed` can find them.
    /// Lines without a readable event id (`line:N`) cannot be retried and are not kept.
    fn keep_failures(&mut self, report: &Report, kept: &mut usize) -> Result<(), PipelineError> {
        let new: Vec<FailedEvent> = report.failed[*kept..]
            .iter()
            .filter(|f| !f.event_id.starts_with("line:"))
            .map(|f| FailedEvent {
                event_id: f.event_id.clone(),
                user_id: f.user_id.clone(),
                message: f.message.clone(),
            })
            .collect();
        *kept = report.failed.len();
        if !new.is_empty() {
            self.store.record_failures(&new)?;
        }
        Ok(())
    }

    /// Voice recordings and video soundtracks to transcripts, one recording at a time (each is
    /// batched over its 30 s windows inside the model). `None` for items without speech.
    fn transcribe(&mut self, work: &[Pending], parts: &mut Parts, report: &mut Report) -> Vec<Option<String>> {
        let mut out = vec![None; work.len()];
        for (i, p) in work.iter().enumerate() {
            let pcm = match p.decoded.get() {
                Decoded::Audio(pcm) => pcm,
                Decoded::Video(video) => match &video.audio {
                    Some(pcm) => pcm,
                    None => continue,
                },
                _ => continue,
            };
            let Some(speech) = self.speech.as_deref_mut() else {
                // A video's pictures alone are not enough: its speech could be sensitive.
                parts.fail(i, p, report, "no speech model is loaded in this run".into());
                continue;
            };
            match speech.transcribe(&pcm.samples) {
                Ok(text) => out[i] = Some(text),
                Err(e) => parts.fail(i, p, report, e.to_string()),
            }
        }
        out
    }

    /// Texts and transcripts: the lexicon first (what it drops is never embedded), then one
    /// embedding batch.
    fn tag_texts(&mut self, work: &[Pending], transcripts: &[Option<String>], parts: &mut Parts, report: &mut Report) {
        let mut to_embed: Vec<(usize, &str, Segments)> = Vec::new();
        for (i, p) in work.iter().enumerate() {
            let text = match (p.decoded.get(), &transcripts[i]) {
                (Decoded::Text(text), _) => text.as_str(),
                (Decoded::Audio(_) | Decoded::Video(_), Some(transcript)) => transcript.as_str(),
                _ => continue,
            };
            match self.tagger.lexicon_hit(text) {
                Some(category) => {
                    parts.text[i] = Some(Verdict::Sensitive { category, detector: attune_tag::Detector::Lexicon })
                }
                None => to_embed.push((i, text, Segments::of(text))),
            }
        }
        if to_embed.is_empty() {
            return;
        }
        let flat: Vec<String> = to_embed.iter().flat_map(|(_, _, s)| s.texts.iter().cloned()).collect();
        match run_in_batches(self.embedder, &flat) {
            Ok(vectors) => {
                let mut at = 0;
                for (i, text, segs) in &to_embed {
                    let n = segs.texts.len();
                    parts.text[*i] = Some(self.tagger.tag(text, segs, &vectors[at..at + n]));
                    at += n;
                }
            }
            Err(batch_error) => {
                // Find the bad items: one model call each, so one bad input costs one event.
                tracing::warn!("text batch of {} failed ({batch_error}); retrying one by one", to_embed.len());
                for (i, text, segs) in &to_embed {
                    match run_in_batches(self.embedder, &segs.texts) {
                        Ok(vectors) => parts.text[*i] = Some(self.tagger.tag(text, segs, &vectors)),
                        Err(e) => parts.fail(*i, &work[*i], report, e.to_string()),
                    }
                }
            }
        }
    }

    /// Photos and video frames: classified in batches of the model's size, then tagged through
    /// the class table.
    fn tag_images(&mut self, work: &[Pending], parts: &mut Parts, report: &mut Report) {
        let items: Vec<(usize, &RgbImage)> = work
            .iter()
            .enumerate()
            .flat_map(|(i, p)| -> Vec<(usize, &RgbImage)> {
                match p.decoded.get() {
                    Decoded::Image(img) => vec![(i, img)],
                    Decoded::Video(video) => video.frames.iter().map(|f| (i, &f.image)).collect(),
                    _ => Vec::new(),
                }
            })
            .filter(|(i, _)| !parts.failed[*i])
            .collect();
        if items.is_empty() {
            return;
        }
        let Some(stage) = self.images.as_mut() else {
            for (i, _) in items {
                parts.fail(i, &work[i], report, "no image model is loaded in this run".into());
            }
            return;
        };
        for chunk in items.chunks(stage.classifier.max_batch().max(1)) {
            let images: Vec<&RgbImage> = chunk.iter().map(|(_, img)| *img).collect();
            match stage.classifier.classify(&images) {
                Ok(probabilities) if probabilities.len() == chunk.len() => {
                    for ((i, _), p) in chunk.iter().zip(probabilities) {
                        parts.frames[*i].push(stage.tagger.tag(&p));
                    }
                }
                result => {
                    let why = result.err().map_or_else(|| "wrong number of outputs".to_string(), |e| e.to_string());
                    tracing::warn!("image batch of {} failed ({why}); retrying one by one", chunk.len());
                    for (i, img) in chunk {
                        match stage.classifier.classify(&[*img]) {
                            Ok(mut p) if p.len() == 1 => parts.frames[*i].push(stage.tagger.tag(&p.remove(0))),
                            Ok(_) => parts.fail(*i, &work[*i], report, "image model gave no output".into()),
                            Err(e) => parts.fail(*i, &work[*i], report, e.to_string()),
                        }
                    }
                }
            }
        }
    }
}

/// What the models said about each item of a batch, until its verdict is assembled.
struct Parts {
    failed: Vec<bool>,
    /// The text's verdict, or the transcript's.
    text: Vec<Option<Verdict>>,
    /// A photo's verdict, or one per sampled video frame.
    frames: Vec<Vec<Verdict>>,
}

impl Parts {
    fn new(n: usize) -> Parts {
        Parts { failed: vec![false; n], text: vec![None; n], frames: vec![Vec::new(); n] }
    }

    /// Record the item's first failure; later ones add nothing (one event, one failure).
    fn fail(&mut self, i: usize, p: &Pending, report: &mut Report, message: String) {
        if !std::mem::replace(&mut self.failed[i], true) {
            report.fail_pending(p, message);
        }
    }

    /// One verdict per item; `None` for the failed ones (already in the report).
    fn verdicts(mut self, work: &[Pending], report: &mut Report) -> Vec<Option<Verdict>> {
        (0..work.len())
            .map(|i| {
                if self.failed[i] {
                    return None;
                }
                let verdict = match work[i].decoded.get() {
                    Decoded::Text(_) | Decoded::Audio(_) => self.text[i].take(),
                    Decoded::Image(_) => self.frames[i].pop(),
                    // Frames and speech are one piece of evidence: any sensitive part drops it all.
                    Decoded::Video(_) => Some(Verdict::combine([&self.frames[i][..], self.text[i].as_slice()])),
                };
                if verdict.is_none() {
                    self.fail(i, &work[i], report, "no model gave a verdict".into());
                }
                verdict
            })
            .collect()
    }
}

/// Re-exported so callers name skip reasons without depending on the policy crate.
pub type SkipReason = Exclusion;
