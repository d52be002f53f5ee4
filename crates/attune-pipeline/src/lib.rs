//! The batch pipeline: event source → policy gate → decode → embed → tag → profile store,
//! and the report of what happened to every event.
//!
//! Every record ends in exactly one bucket of the [`Report`]: processed, skipped for a reason,
//! or failed with a message. `events = processed + Σ skipped + failed`.
//!
//! Stages run at once, joined by bounded channels so a slow stage holds the others back
//! instead of filling memory:
//!
//! ```text
//! reader + policy gate ──media──▶ decoder threads (in process, or one worker process each)
//!        │ words alone                     │
//!        └────────────▶ batcher + models + store writer (the calling thread) ◀┘
//! ```
//!
//! The batcher flushes on size, on bytes of decoded media, or when the oldest waiting item has
//! waited `max_wait`; one thread writes to the store, so its transactions never contend.

mod batcher;
mod budget;
pub mod isolate;
mod parts;
mod pictures;
mod queue_bytes;
mod reader;
mod registry;
mod report;
mod sessions;
mod speech;
mod text;
mod text_path;
mod typed_languages;
mod verdict;
mod voice_activity;

pub use attune_infer::{ImageClassifier, RgbFrame, SpeechToText, Task, TextEmbedder, TextInPictures};
pub use pictures::{ImageStage, PictureReading};
pub use registry::{
    load_image_model, load_text_in_pictures_model, load_text_model, special_category_classifier, speech_sessions,
    DEFAULT_IMAGE_MODEL, DEFAULT_SPEECH_MODEL, DEFAULT_TEXT_IN_PICTURES_MODEL, DEFAULT_TEXT_MODELS,
    DEFAULT_VOICE_ACTIVITY_MODEL, ENGLISH_TEXT_MODEL, MODELS, MODEL_CRATES, MULTILINGUAL_TEXT_MODEL,
};
pub use report::{Failure, Report, Skipped, StageStats, Threads, TimelinePoint, MAX_TIMELINE_POINTS};
pub use sessions::{MakeSession, SpeechSessions};
pub use text_path::{MakeTextPath, TextPath};

use attune_decode::{decode, DecodeOptions, Decoded};
use attune_event::{Event, EventSource, Origin};
use attune_lang::LanguageGate;
use attune_policy::{Admitted, Exclusion, Policy};
use attune_profile::{
    DeltaTopic, EventRecord, FailedEvent, LedgerOutcome, ProfileDelta, ProfileStore, Provenance, StoreError,
};
use batcher::{Inbox, Watermark};
use crossbeam_channel::{bounded, RecvTimeoutError};
use parts::{Judged, Parts};
use pictures::{read_pictures, tag_images};
use reader::{read_and_gate, Read};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use verdict::EventVerdict;

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
    /// Decoded media waiting for the batcher, at most (one larger item waits alone): decoders
    /// that outrun the models stop here instead of filling memory.
    pub max_queued_bytes: usize,
    /// The batcher waits at most this long for a batch to fill before running the models.
    pub max_wait: Duration,
    /// Options of the in-process decoder used when [`Pipeline::decoders`] is empty.
    pub decode: DecodeOptions,
    /// Process only these event ids (a retry of earlier failures); the rest are counted as
    /// `not_selected`.
    pub only: Option<HashSet<String>>,
    /// Threads the decoders and the models may keep busy together (`--threads`); `0`: no limit.
    /// A decoder takes one while it decodes, the models `model_threads` while they run.
    pub cpu_budget: usize,
    /// ONNX Runtime's intra-op threads: what a model call occupies.
    pub model_threads: usize,
    /// Read, gate and decode, then drop: what the decoding stages do alone (benchmarks).
    /// Nothing reaches a model or the store.
    pub decode_only: bool,
    /// A transcript whose tokens the speech model chose with a lower mean log-probability than
    /// this is not tagged: the item is skipped as `unintelligible_speech` (see
    /// [`DEFAULT_MIN_SPEECH_LOGPROB`]).
    pub min_speech_logprob: f32,
    /// Set (by a signal handler) to stop the run early: no further record is read, what was
    /// read is finished and stored as usual, and the report says `interrupted`.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            batch_size: 64,
            max_batch_bytes: 256 << 20,
            // A batch's worth for the models to start on: ~7 decoded 10 s 1080p videos, ~33
            // recordings of 30 s, ~80 photos.
            max_queued_bytes: 64 << 20,
            max_wait: Duration::from_millis(200),
            decode: DecodeOptions::default(),
            only: None,
            cpu_budget: 0,
            model_threads: 1,
            decode_only: false,
            min_speech_logprob: DEFAULT_MIN_SPEECH_LOGPROB,
            stop: None,
        }
    }
}

/// The least mean log-probability of a transcript that is tagged. Whisper base on espeak-ng
/// speech (`fixtures/audio/languages`) gives -0.1 to -0.45 in English and -0.4 to -1.7 in the
/// other languages; what it gets wrong there loses the words that made a conversation sensitive
/// ("kết nạp Đảng", joining the Party, heard as "kết hạng" at -0.77; Arabic at -1.1 to -1.3) and
/// would then be tagged with the topics of what it misheard. faster-whisper treats -1.0 as a
/// failed decode; a leak being the one failure attune cannot afford, it stops at -0.7, trading
/// the topics of poorly heard speech for never tagging what it did not understand.
pub const DEFAULT_MIN_SPEECH_LOGPROB: f32 = -0.7;

/// Where the pipeline is, for progress bars; handed to the observer after every batch.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub events: u64,
    pub processed: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Busy time and items of each stage so far.
    pub stages: BTreeMap<&'static str, StageStats>,
}

/// Decodes admitted events into model inputs; one per decoder thread.
pub trait MediaDecoder: Send {
    /// The decoded payload, or why it could not be decoded (this event's failure).
    fn decode(&mut self, event: &Admitted<Event>) -> Result<Admitted<Decoded>, String>;
}

/// Decodes in the calling thread: fast, but a decoder crash takes the process down (see
/// [`isolate::WorkerDecoder`]).
pub struct InProcessDecoder(pub DecodeOptions);

impl MediaDecoder for InProcessDecoder {
    fn decode(&mut self, event: &Admitted<Event>) -> Result<Admitted<Decoded>, String> {
        decode(event, &self.0).map_err(|e| e.to_string())
    }
}

/// The stages a batch goes through, wired to the models, the taggers and one store.
/// `'a`: what the pipeline borrows for a run; `'m`: what it owns (text paths, speech sessions,
/// decoders), which a caller may take back after [`Pipeline::run`] for the next run.
pub struct Pipeline<'a, 'm> {
    pub(crate) policy: &'a Policy,
    /// Text models and their taggers, in order of preference: each admitted text goes to the
    /// first whose calibration covers its language.
    pub(crate) text: Vec<TextPath<'m>>,
    /// Decides which texts (chats, transcripts) may be tagged: those in the policy's supported
    /// languages that a text path covers, identified with confidence. The rest are skipped,
    /// never tagged.
    pub(crate) languages: &'a LanguageGate,
    pub(crate) store: &'a mut dyn ProfileStore,
    /// `None`: image events fail with an explanation instead of being classified.
    pub(crate) images: Option<ImageStage<'a>>,
    /// Reads the text in photos and video frames, which then goes through the text path like
    /// the user's words.
    pub(crate) text_in_pictures: PictureReading<'a>,
    /// Speech sessions, made on first use and used side by side (one thread each); when none
    /// can be had, audio events and videos with a soundtrack fail with the reason instead of
    /// being transcribed.
    pub(crate) speech: SpeechSessions<'m>,
    pub(crate) provenance: Provenance,
    /// The tagger's bars the caller gave in place of its calibration's, for every report.
    pub(crate) tagger_settings: BTreeMap<String, String>,
    pub(crate) config: PipelineConfig,
    /// One per decoder thread; empty: one in-process decoder with `config.decode`.
    pub(crate) decoders: Vec<Box<dyn MediaDecoder + 'm>>,
    /// The languages each user chats in, this run: preferred when their recordings' language
    /// is detected.
    pub(crate) typed_languages: typed_languages::TypedLanguages,
}

/// Builds a [`Pipeline`]: what every run needs up front, the rest as the run has it. Left out,
/// a part fails closed: no image model fails image events, no text-in-pictures model fails
/// events with pictures (their text could be sensitive), no speech model fails recordings, and
/// media are decoded in this process with `config.decode`.
pub struct PipelineBuilder<'a, 'm> {
    pipeline: Pipeline<'a, 'm>,
}

impl<'a, 'm> Pipeline<'a, 'm> {
    pub fn builder(
        policy: &'a Policy,
        languages: &'a LanguageGate,
        store: &'a mut dyn ProfileStore,
        provenance: Provenance,
    ) -> PipelineBuilder<'a, 'm> {
        PipelineBuilder {
            pipeline: Pipeline {
                policy,
                text: Vec::new(),
                languages,
                store,
                images: None,
                text_in_pictures: PictureReading::Unavailable("no text-in-pictures model in this pipeline".into()),
                speech: SpeechSessions::unavailable("no speech model in this pipeline"),
                provenance,
                tagger_settings: BTreeMap::new(),
                config: PipelineConfig::default(),
                decoders: Vec::new(),
                typed_languages: Default::default(),
            },
        }
    }

    /// What a caller that runs again keeps for the next run: the text paths (with the models
    /// they loaded), the speech sessions and the decoders (with their processes).
    pub fn into_reusable_parts(self) -> ReusableParts<'m> {
        ReusableParts { text: self.text, speech: self.speech, decoders: self.decoders }
    }
}

/// The parts of a [`Pipeline`] worth keeping between runs ([`Pipeline::into_reusable_parts`]).
pub struct ReusableParts<'m> {
    pub text: Vec<TextPath<'m>>,
    pub speech: SpeechSessions<'m>,
    pub decoders: Vec<Box<dyn MediaDecoder + 'm>>,
}

impl<'a, 'm> PipelineBuilder<'a, 'm> {
    /// The text paths, in order of preference: each admitted text goes to the first whose
    /// calibration covers its language.
    pub fn text_paths(mut self, paths: Vec<TextPath<'m>>) -> Self {
        self.pipeline.text = paths;
        self
    }

    pub fn images(mut self, images: Option<ImageStage<'a>>) -> Self {
        self.pipeline.images = images;
        self
    }

    pub fn text_in_pictures(mut self, reading: PictureReading<'a>) -> Self {
        self.pipeline.text_in_pictures = reading;
        self
    }

    pub fn speech(mut self, speech: SpeechSessions<'m>) -> Self {
        self.pipeline.speech = speech;
        self
    }

    pub fn config(mut self, config: PipelineConfig) -> Self {
        self.pipeline.config = config;
        self
    }

    /// The tagger's bars, by name, the text paths were given in place of their calibration's
    /// (each stricter: `attune_tag::Tightening`); every report of this pipeline names them.
    pub fn tagger_settings(mut self, settings: BTreeMap<String, String>) -> Self {
        self.pipeline.tagger_settings = settings;
        self
    }

    /// One per decoder thread (e.g. [`isolate::WorkerDecoder`]s); none: one in-process decoder.
    pub fn decoders(mut self, decoders: Vec<Box<dyn MediaDecoder + 'm>>) -> Self {
        self.pipeline.decoders = decoders;
        self
    }

    pub fn build(self) -> Pipeline<'a, 'm> {
        self.pipeline
    }
}

/// The report's failures since `kept` (which moves past them) that a store can keep: lines
/// without a readable event id (`line:N`) cannot be retried and are not kept.
fn new_failures(report: &Report, kept: &mut usize) -> Vec<FailedEvent> {
    let new = report.failed[*kept..]
        .iter()
        .filter(|f| !f.event_id.starts_with("line:"))
        .map(|f| FailedEvent { event_id: f.event_id.clone(), user_id: f.user_id.clone(), message: f.message.clone() })
        .collect();
    *kept = report.failed.len();
    new
}

/// How a recorded event counts in the report: skipped with its ledger outcome, or processed
/// (its product and the top-level branches of its topics).
enum Counted {
    Skipped(LedgerOutcome),
    Processed(&'static str, Vec<&'static str>),
}

/// What the reader and the decoders tell the batcher; exactly one per record.
enum Message {
    /// Boxed: a decoded event is ten times the size of the other messages.
    Ready(Box<Pending>),
    Skipped(u64, Origin, SkipAs),
    Failed(u64, Origin, Failure),
    SourceFailed(attune_event::EventError),
}

enum SkipAs {
    Policy(Exclusion),
    NotSelected,
}

/// An admitted media event on its way to a decoder.
struct DecodeJob {
    seq: u64,
    origin: Origin,
    event: Admitted<Event>,
}

/// An admitted event, its media decoded, waiting for its models.
pub(crate) struct Pending {
    seq: u64,
    origin: Origin,
    event: Admitted<Event>,
    /// `None` for words alone.
    decoded: Option<Admitted<Decoded>>,
    /// Bytes counted against `max_queued_bytes` until the batcher takes it (decoded media; 0
    /// for words alone, which the reader sends).
    queued_bytes: usize,
}

impl Pending {
    fn media(&self) -> Option<&Decoded> {
        self.decoded.as_ref().map(Admitted::get)
    }

    /// Its recording or soundtrack, if it has one.
    fn speech(&self) -> Option<&[f32]> {
        match self.media()? {
            Decoded::Audio(pcm) => Some(&pcm.samples),
            Decoded::Video(video) => video.audio.as_ref().map(|pcm| &pcm.samples[..]),
            _ => None,
        }
    }

    fn has_speech(&self) -> bool {
        self.speech().is_some()
    }

    /// What the event holds in memory: its decoded media and its words.
    fn bytes(&self) -> usize {
        self.media().map_or(0, Decoded::bytes) + self.event.get().turns.iter().map(|t| t.text.len()).sum::<usize>()
    }
}

impl Pipeline<'_, '_> {
    /// Run every record of `source` through the stages. Only a failing source or store stops
    /// the run; everything else is a per-event outcome in the report.
    pub fn run(
        &mut self,
        source: &mut (dyn EventSource + Send),
        observe: &mut dyn FnMut(&Progress),
    ) -> Result<Report, PipelineError> {
        let mut report = Report::new(&self.provenance);
        report.tagger_settings = self.tagger_settings.clone();
        self.typed_languages.clear();
        let mut decoders = std::mem::take(&mut self.decoders);
        if decoders.is_empty() {
            decoders.push(Box::new(InProcessDecoder(self.config.decode)));
        }
        report.threads = report::Threads {
            budget: self.config.cpu_budget,
            decoders: decoders.len(),
            model_threads: self.config.model_threads,
            speech_sessions: self.speech.limit(),
            speech_sessions_made: 0,
        };
        let source = Mutex::new(source);
        let batch_size = self.config.batch_size.max(1);
        // Bounded everywhere: a few jobs per decoder, two batches of results.
        let (job_tx, job_rx) = bounded::<DecodeJob>(decoders.len() * 2);
        let (msg_tx, msg_rx) = bounded::<Message>(batch_size * 2);
        // The selection moves to the reader for the run (the batcher needs `self` mutably).
        let only = self.config.only.take();
        let policy = self.policy;
        let decode_stats = Mutex::new(StageStats::default());
        let budget = (self.config.cpu_budget > 0).then(|| budget::CpuBudget::new(self.config.cpu_budget));
        let budget = budget.as_ref();
        let gate_stats = Mutex::new(StageStats::default());
        let queue_bytes = queue_bytes::QueueBytes::new(self.config.max_queued_bytes);
        // The stages the batcher does not time itself: read+gate and decode, from their threads.
        let stats = || {
            BTreeMap::from([
                ("read+gate", *gate_stats.lock().expect("not poisoned")),
                ("decode", *decode_stats.lock().expect("not poisoned")),
            ])
        };
        let result = std::thread::scope(|scope| {
            let (source, gate_stats, decode_stats, queue_bytes) = (&source, &gate_stats, &decode_stats, &queue_bytes);
            let reader_tx = msg_tx.clone();
            let only = &only;
            let stop = self.config.stop.clone();
            let reader = scope
                .spawn(move || read_and_gate(source, policy, only, job_tx, reader_tx, gate_stats, stop.as_deref()));
            let decoder_threads: Vec<_> = decoders
                .drain(..)
                .map(|mut decoder| {
                    let (jobs, results) = (job_rx.clone(), msg_tx.clone());
                    scope.spawn(move || {
                        for job in jobs {
                            let permit = budget.map(|b| b.for_decoder());
                            let t = Instant::now();
                            let outcome = decoder.decode(&job.event);
                            drop(permit);
                            decode_stats.lock().expect("not poisoned").add(t.elapsed(), 1);
                            let message = match outcome {
                                Ok(decoded) => {
                                    let queued_bytes = decoded.get().bytes();
                                    if !queue_bytes.enqueue(queued_bytes) {
                                        break; // the batcher stopped
                                    }
                                    let (seq, origin, event) = (job.seq, job.origin, job.event);
                                    Message::Ready(Box::new(Pending {
                                        seq,
                                        origin,
                                        event,
                                        decoded: Some(decoded),
                                        queued_bytes,
                                    }))
                                }
                                Err(why) => {
                                    let e = job.event.get();
                                    let failure = Failure {
                                        event_id: e.event_id.clone(),
                                        line: Some(job.origin.line),
                                        message: why,
                                        user_id: Some(e.user_id.clone()),
                                    };
                                    Message::Failed(job.seq, job.origin, failure)
                                }
                            };
                            if results.send(message).is_err() {
                                break; // the batcher stopped (store error): stop too
                            }
                        }
                        decoder
                    })
                })
                .collect();
            drop((msg_tx, job_rx));
            let inbox = Inbox { messages: msg_rx, queue_bytes };
            let stored = self.batch_and_store(inbox, source, &mut report, &stats, budget, observe);
            queue_bytes.close(); // a decoder waiting to queue its result must not wait forever
            report.interrupted = reader.join().expect("the reader does not panic") == Read::Stopped;
            // Kept for the next run on this pipeline (an embedded worker runs batch after batch;
            // its decoder processes stay up between them).
            self.decoders =
                decoder_threads.into_iter().map(|t| t.join().expect("a decoder thread does not panic")).collect();
            stored
        });
        self.config.only = only;
        result?;
        report.threads.speech_sessions_made = self.speech.made();
        report.stages.extend(stats());
        report.finish();
        Ok(report)
    }

    /// The batcher: gathers decoded events into batches, runs the models, writes the store and
    /// acknowledges the source. Returns when every sender is gone (or the store fails; dropping
    /// the receiver then stops the other stages).
    fn batch_and_store(
        &mut self,
        inbox: Inbox<'_>,
        source: &Mutex<&mut (dyn EventSource + Send)>,
        report: &mut Report,
        stats: &dyn Fn() -> BTreeMap<&'static str, StageStats>,
        budget: Option<&budget::CpuBudget>,
        observe: &mut dyn FnMut(&Progress),
    ) -> Result<(), PipelineError> {
        let mut batch: Vec<Pending> = Vec::with_capacity(self.config.batch_size);
        let mut batch_bytes = 0usize;
        let mut oldest: Option<Instant> = None;
        let mut failures_kept = 0usize;
        let mut watermark = Watermark::default();
        let progress = |report: &mut Report| {
            report.mark_time();
            let mut p = report.progress();
            p.stages.extend(stats());
            p
        };
        loop {
            let message = match oldest {
                Some(t) => inbox.recv(Some(self.config.max_wait.saturating_sub(t.elapsed()))),
                None => inbox.recv(None),
            };
            let full = match message {
                Ok(Message::Ready(p)) => {
                    report.events += 1;
                    batch_bytes += p.bytes();
                    oldest.get_or_insert_with(Instant::now);
                    batch.push(*p);
                    batch.len() >= self.config.batch_size || batch_bytes >= self.config.max_batch_bytes
                }
                Ok(Message::Skipped(seq, origin, why)) => {
                    report.events += 1;
                    match why {
                        SkipAs::Policy(reason) => report.skip(reason),
                        SkipAs::NotSelected => report.skipped.not_selected += 1,
                    }
                    watermark.done(seq, origin);
                    false
                }
                Ok(Message::Failed(seq, origin, failure)) => {
                    report.events += 1;
                    report.failed.push(failure);
                    watermark.done(seq, origin);
                    false
                }
                Ok(Message::SourceFailed(e)) => return Err(e.into()),
                Err(RecvTimeoutError::Timeout) => true,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if full {
                self.finish_batch(&mut batch, report, &mut watermark, &mut failures_kept, source, budget)?;
                batch_bytes = 0;
                oldest = None;
                observe(&progress(&mut *report));
            }
        }
        self.finish_batch(&mut batch, report, &mut watermark, &mut failures_kept, source, budget)?;
        observe(&progress(&mut *report));
        Ok(())
    }

    /// Run the models over a batch and store it (holding the CPU permits the models need), keep
    /// the failures for `--retry-failed`, and acknowledge what is now accounted for.
    fn finish_batch(
        &mut self,
        batch: &mut Vec<Pending>,
        report: &mut Report,
        watermark: &mut Watermark,
        failures_kept: &mut usize,
        source: &Mutex<&mut (dyn EventSource + Send)>,
        budget: Option<&budget::CpuBudget>,
    ) -> Result<(), PipelineError> {
        let permits = budget.map(|b| b.for_models(self.config.model_threads));
        let done = self.flush(batch, report, failures_kept, budget)?;
        drop(permits);
        for (seq, origin) in done {
            watermark.done(seq, origin);
        }
        self.keep_failures(report, failures_kept)?;
        if let Some(origin) = watermark.take_acknowledgeable() {
            source.lock().expect("not poisoned").acknowledge(&origin)?;
        }
        Ok(())
    }

    /// Deduplicate, embed, tag and store one batch, in one store transaction.
    /// Returns the records it accounted for (stored, skipped or failed), for acknowledgement.
    fn flush(
        &mut self,
        batch: &mut Vec<Pending>,
        report: &mut Report,
        failures_kept: &mut usize,
        budget: Option<&budget::CpuBudget>,
    ) -> Result<Vec<(u64, Origin)>, PipelineError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let done: Vec<(u64, Origin)> = batch.iter().map(|p| (p.seq, p.origin.clone())).collect();
        if self.config.decode_only {
            report.processed += batch.len() as u64;
            batch.clear();
            return Ok(done);
        }
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
        // Speech becomes text first; transcripts live only here, for the text path. The batch's
        // chats of users with a recording in it are read first: their language is the best clue
        // to what the recording is spoken in.
        let t = Instant::now();
        self.typed_languages.read_ahead(&work, self.languages);
        let (transcripts, loading) = self.transcribe(&work, &mut parts, report, budget);
        report.model_load_s += loading.as_secs_f64();
        report.stage("speech", t.elapsed().saturating_sub(loading), transcripts.iter().flatten().count());
        // Pictures are read for text beside the image model, on a permit the decoders leave free
        // (else one after the other): on a batch of photos the two are the batcher's work.
        let open: Vec<bool> = (0..work.len()).map(|i| parts.still_open(i)).collect();
        let spare = budget.map(|b| b.spare(1));
        let side_by_side = spare.as_ref().is_none_or(|p| p.count() > 0);
        let (readings, images_busy) = {
            let (reading, images) = (&mut self.text_in_pictures, &mut self.images);
            let mut tag = |parts: &mut Parts, report: &mut Report| {
                let t = Instant::now();
                tag_images(images, &work, parts, report);
                t.elapsed()
            };
            if side_by_side {
                std::thread::scope(|scope| {
                    let reader = scope.spawn(|| read_pictures(reading, &work, &open));
                    let busy = tag(&mut parts, report);
                    (reader.join().expect("the picture reader does not panic"), busy)
                })
            } else {
                let readings = read_pictures(reading, &work, &open);
                (readings, tag(&mut parts, report))
            }
        };
        drop(spare);
        report.stage("images", images_busy, parts.pictures.iter().map(Vec::len).sum());
        report.stage("text in pictures", readings.busy, readings.read);
        for (i, why) in readings.failures {
            parts.fail(i, &work[i], report, why);
        }
        for (i, unreadable) in readings.unreadable.into_iter().enumerate() {
            parts.unreadable[i] |= unreadable;
        }
        let t = Instant::now();
        self.tag_texts(&work, &transcripts, &readings.texts, &mut parts, report);
        report.stage("text", t.elapsed(), parts.texts.iter().map(Vec::len).sum());
        let verdicts = parts.verdicts(&work, report);

        // How each record counts in the report, once the store has taken it.
        let mut counted: Vec<Counted> = Vec::with_capacity(work.len());
        for (p, judged) in work.iter().zip(verdicts) {
            let e = p.event.get();
            let verdict = match judged {
                Judged::Failed => continue, // in the report and the failure list
                Judged::UnsupportedLanguage | Judged::Unintelligible | Judged::UnreadableText => {
                    let outcome = match judged {
                        Judged::Unintelligible => LedgerOutcome::Unintelligible,
                        Judged::UnreadableText => LedgerOutcome::UnreadableText,
                        _ => LedgerOutcome::UnsupportedLanguage,
                    };
                    counted.push(Counted::Skipped(outcome));
                    records.push(EventRecord {
                        event_id: e.event_id.clone(),
                        user_id: e.user_id.clone(),
                        outcome,
                        delta: None,
                    });
                    continue;
                }
                Judged::Verdict(verdict) => verdict,
            };
            let (outcome, delta) = match verdict {
                EventVerdict::Sensitive => {
                    counted.push(Counted::Skipped(LedgerOutcome::Dropped));
                    (LedgerOutcome::Dropped, None)
                }
                EventVerdict::Topics(topics) => {
                    let outcome = if topics.is_empty() { LedgerOutcome::NoTopic } else { LedgerOutcome::Tagged };
                    let branches =
                        topics.iter().map(|t| t.topic.node().path.first().map_or("", String::as_str)).collect();
                    counted.push(Counted::Processed(e.product.as_str(), branches));
                    let delta = ProfileDelta {
                        event_id: e.event_id.clone(),
                        user_id: e.user_id.clone(),
                        product: e.product,
                        captured_at: e.captured_at,
                        topics: topics
                            .into_iter()
                            .map(|t| DeltaTopic { topic: t.topic, score: t.score, sources: t.sources })
                            .collect(),
                    };
                    (outcome, Some(delta))
                }
            };
            records.push(EventRecord { event_id: e.event_id.clone(), user_id: e.user_id.clone(), outcome, delta });
        }
        let t = Instant::now();
        isolate::crash_before_commit();
        // The failures so far go in the batch's transaction: a worker that dies after it loses
        // neither the batch nor the record of what failed (for `--retry-failed`).
        let failures = new_failures(report, failures_kept);
        let recorded = self.store.record(&records, &failures, &self.provenance)?;
        report.stage("store", t.elapsed(), records.len());
        // Counted once committed: an event another writer recorded between our ledger check and
        // this commit (workers sharing a store, a batch delivered again) was not applied here,
        // and is a duplicate in this report as it would be in a later run's.
        let already: HashSet<&str> = recorded.already.iter().map(String::as_str).collect();
        for (record, counted) in records.iter().zip(counted) {
            match counted {
                _ if already.contains(record.event_id.as_str()) => report.skipped.duplicate += 1,
                Counted::Skipped(LedgerOutcome::Unintelligible) => report.skipped.unintelligible_speech += 1,
                Counted::Skipped(LedgerOutcome::UnreadableText) => report.skipped.unreadable_text += 1,
                Counted::Skipped(LedgerOutcome::Dropped) => report.skipped.sensitive += 1,
                Counted::Skipped(_) => report.skipped.unsupported_language += 1,
                Counted::Processed(product, branches) => report.count_processed(product, branches),
            }
        }
        Ok(done)
    }
}

impl Pipeline<'_, '_> {
    /// Hand the store the failures no batch transaction took (those after the last batch, or of
    /// a flush with nothing to store), so `--retry-failed` can find them.
    fn keep_failures(&mut self, report: &Report, kept: &mut usize) -> Result<(), PipelineError> {
        let new = new_failures(report, kept);
        if !new.is_empty() {
            self.store.record_failures(&new)?;
        }
        Ok(())
    }
}
