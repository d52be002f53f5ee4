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

mod budget;
pub mod isolate;
mod queue_bytes;
mod registry;
mod report;
mod sessions;
mod text_path;
mod verdict;

pub use registry::{
    load_image_model, load_text_in_pictures_model, load_text_model, special_category_classifier, speech_sessions,
    ImageClassifier, SpeechToText, TextEmbedder, TextInPictures, DEFAULT_IMAGE_MODEL, DEFAULT_SPEECH_MODEL,
    DEFAULT_TEXT_IN_PICTURES_MODEL, DEFAULT_TEXT_MODELS, ENGLISH_TEXT_MODEL, SPEECH_MODELS, TEXT_IN_PICTURES_MODELS,
    TEXT_MODELS,
};
pub use report::{Failure, Report, Skipped, StageStats, Threads};
pub use sessions::{MakeSession, SpeechSessions};
pub use text_path::{MakeTextPath, TextPath};

use attune_decode::image::RgbImage;
use attune_decode::{decode, DecodeOptions, Decoded};
use attune_event::{Event, EventSource, Origin, Role, Source};
use attune_infer::{SpeechLanguage, SpeechRequest, SpokenText};
use attune_lang::{Language, LanguageDecision, LanguageGate, SupportedText, UnidentifiedReason};
use attune_policy::{Admitted, Exclusion, Policy};
use attune_profile::{
    DeltaTopic, EventRecord, FailedEvent, LedgerOutcome, ProfileDelta, ProfileStore, Provenance, StoreError,
};
use attune_tag::{ImageTagger, Segments, Verdict};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
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
pub struct Pipeline<'a> {
    pub policy: &'a Policy,
    /// Text models and their taggers, in order of preference: each admitted text goes to the
    /// first whose calibration covers its language.
    pub text: Vec<TextPath<'a>>,
    /// Decides which texts (chats, transcripts) may be tagged: those in the policy's supported
    /// languages that a text path covers, identified with confidence. The rest are skipped,
    /// never tagged.
    pub languages: &'a LanguageGate,
    pub store: &'a mut dyn ProfileStore,
    /// `None`: image events fail with an explanation instead of being classified.
    pub images: Option<ImageStage<'a>>,
    /// Reads the text in photos and video frames, which then goes through the text path like
    /// the user's words.
    pub text_in_pictures: PictureReading<'a>,
    /// Speech sessions, made on first use and used side by side (one thread each); when none
    /// can be had, audio events and videos with a soundtrack fail with the reason instead of
    /// being transcribed.
    pub speech: SpeechSessions<'a>,
    pub provenance: Provenance,
    pub config: PipelineConfig,
    /// One per decoder thread; empty: one in-process decoder with `config.decode`.
    pub decoders: Vec<Box<dyn MediaDecoder + 'a>>,
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

/// A transcript not to be tagged: decoded with too little confidence, or nothing but
/// repetition loops.
fn unintelligible(spoken: &SpokenText, min_logprob: f32) -> bool {
    if spoken.text.trim().is_empty() {
        spoken.looped_windows > 0
    } else {
        spoken.avg_logprob < min_logprob
    }
}

/// Whether a transcript decoded as `decoded` (ISO 639-1) reads as `heard`. Malay and Indonesian
/// count as one: the gate tells them apart by chat words, Whisper by sound, and either way the
/// same encoder and lexicons read the text.
fn same_language(decoded: &str, heard: Language) -> bool {
    decoded == heard.code() || matches!((decoded, heard), ("id", Language::Malay) | ("ms", Language::Indonesian))
}

/// `items` cut into `n` consecutive runs whose lengths differ by at most one (`items.chunks`
/// would give 5 runs, not 6, for 20 items in runs of at most 4).
fn even_chunks<T>(items: &[T], n: usize) -> Vec<&[T]> {
    let n = n.clamp(1, items.len().max(1));
    let (base, longer) = (items.len() / n, items.len() % n);
    let mut rest = items;
    (0..n)
        .map(|k| {
            let (chunk, tail) = rest.split_at(base + usize::from(k < longer));
            rest = tail;
            chunk
        })
        .filter(|c| !c.is_empty())
        .collect()
}

/// The batcher's end of the channel: taking a decoded event off it frees its queued bytes.
struct Inbox<'q> {
    messages: Receiver<Message>,
    queue_bytes: &'q queue_bytes::QueueBytes,
}

impl Inbox<'_> {
    /// The next message, waiting at most `timeout` (`None`: until every sender is gone).
    fn recv(&self, timeout: Option<Duration>) -> Result<Message, RecvTimeoutError> {
        let message = match timeout {
            Some(t) => self.messages.recv_timeout(t)?,
            None => self.messages.recv().map_err(|_| RecvTimeoutError::Disconnected)?,
        };
        if let Message::Ready(p) = &message {
            self.queue_bytes.dequeued(p.queued_bytes);
        }
        Ok(message)
    }
}

/// Acknowledges the source in order although events finish out of order: the source hears of
/// record N only once every record up to N is stored or reported.
#[derive(Default)]
struct Watermark {
    next: u64,
    done: BTreeMap<u64, Origin>,
    /// The last record of the contiguous prefix, not yet acknowledged.
    unacknowledged: Option<Origin>,
}

impl Watermark {
    fn done(&mut self, seq: u64, origin: Origin) {
        self.done.insert(seq, origin);
        while let Some(origin) = self.done.remove(&self.next) {
            self.unacknowledged = Some(origin);
            self.next += 1;
        }
    }

    /// The origin to acknowledge, if the contiguous prefix grew since the last call.
    fn take_acknowledgeable(&mut self) -> Option<Origin> {
        self.unacknowledged.take()
    }
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

    /// What the event holds in memory: its decoded media and its words.
    fn bytes(&self) -> usize {
        self.media().map_or(0, Decoded::bytes) + self.event.get().turns.iter().map(|t| t.text.len()).sum::<usize>()
    }
}

/// Whether a run reads the text in pictures.
pub enum PictureReading<'a> {
    Reader(&'a mut dyn TextInPictures),
    /// Asked not to (`--no-text-in-pictures`): a placard or a pharmacy label in a photo goes
    /// unchecked.
    Off,
    /// The model could not be had: photos and videos fail with this reason rather than be
    /// tagged with text in them unchecked.
    Unavailable(String),
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
        source: &mut (dyn EventSource + Send),
        observe: &mut dyn FnMut(&Progress),
    ) -> Result<Report, PipelineError> {
        let started = Instant::now();
        let mut report = Report::new(&self.provenance);
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
            for mut decoder in decoders.drain(..) {
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
                });
            }
            drop((msg_tx, job_rx));
            let inbox = Inbox { messages: msg_rx, queue_bytes };
            let stored = self.batch_and_store(inbox, source, &mut report, &stats, budget, observe);
            queue_bytes.close(); // a decoder waiting to queue its result must not wait forever
            report.interrupted = reader.join().expect("the reader does not panic") == Read::Stopped;
            stored
        });
        self.config.only = only;
        result?;
        report.threads.speech_sessions_made = self.speech.made();
        report.stages.extend(stats());
        report.finish(started.elapsed());
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
        let progress = |report: &Report| {
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
                observe(&progress(report));
            }
        }
        self.finish_batch(&mut batch, report, &mut watermark, &mut failures_kept, source, budget)?;
        observe(&progress(report));
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
        let done = self.flush(batch, report, budget)?;
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
        // Speech becomes text first; transcripts live only here, for the text path.
        let t = Instant::now();
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

        for (p, judged) in work.iter().zip(verdicts) {
            let e = p.event.get();
            let verdict = match judged {
                Judged::Failed => continue, // in the report and the failure list
                Judged::UnsupportedLanguage | Judged::Unintelligible | Judged::UnreadableText => {
                    let outcome = match judged {
                        Judged::Unintelligible => {
                            report.skipped.unintelligible_speech += 1;
                            LedgerOutcome::Unintelligible
                        }
                        Judged::UnreadableText => {
                            report.skipped.unreadable_text += 1;
                            LedgerOutcome::UnreadableText
                        }
                        _ => {
                            report.skipped.unsupported_language += 1;
                            LedgerOutcome::UnsupportedLanguage
                        }
                    };
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
                    report.skipped.sensitive += 1;
                    (LedgerOutcome::Dropped, None)
                }
                EventVerdict::Topics(topics) => {
                    report.processed += 1;
                    let outcome = if topics.is_empty() { LedgerOutcome::NoTopic } else { LedgerOutcome::Tagged };
                    report.count_topics(topics.len());
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
        self.store.record(&records, &self.provenance)?;
        report.stage("store", t.elapsed(), records.len());
        Ok(done)
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

    /// Voice recordings and video soundtracks to transcripts. Recordings go to the model in groups
    /// of similar length (Whisper decodes a group's windows in one batch), and the groups are
    /// spread over the speech sessions, one thread each: Whisper's greedy decoding gains little
    /// from more intra-op threads and much from running recordings side by side. `None` for
    /// items without speech; with the time spent making sessions.
    ///
    /// Each recording's language is the model's to detect, the languages of the user's country
    /// preferred. A transcript the language gate finds in another supported language than it was
    /// decoded as is decoded again as that language, once; if the two still disagree the item is
    /// skipped as in an unsupported language (nonsense in the wrong language is never tagged).
    fn transcribe(
        &mut self,
        work: &[Pending],
        parts: &mut Parts,
        report: &mut Report,
        budget: Option<&budget::CpuBudget>,
    ) -> (Vec<Option<String>>, Duration) {
        let mut out: Vec<Option<String>> = vec![None; work.len()];
        let mut items: Vec<(usize, &[f32])> = work
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p.media()? {
                Decoded::Audio(pcm) => Some((i, &pcm.samples[..])),
                Decoded::Video(video) => video.audio.as_ref().map(|pcm| (i, &pcm.samples[..])),
                _ => None,
            })
            .collect();
        if items.is_empty() {
            return (out, Duration::ZERO);
        }
        // Similar lengths decode together, so a group's rows finish at about the same step.
        items.sort_by_key(|(_, pcm)| std::cmp::Reverse(pcm.len()));
        // The batch holds `model_threads` permits; a session beyond those runs only on a permit
        // the decoders leave free now (when they wait on a full channel, the cores are the
        // models'). Sessions are made as first wanted, so a run makes only as many as its
        // batches keep busy.
        let wanted = self.speech.limit().min(items.len());
        let held = self.config.model_threads.min(wanted);
        let spare = budget.map(|b| b.spare(wanted.saturating_sub(held)));
        let sessions = if budget.is_some() { held + spare.as_ref().map_or(0, |p| p.count()) } else { wanted };
        let loading = Instant::now();
        let speech = self.speech.get(sessions);
        let loading = loading.elapsed();
        let speech = match speech {
            Ok(speech) => speech,
            Err(reason) => {
                for (i, _) in items {
                    // A video's pictures alone are not enough: its speech could be sensitive.
                    parts.fail(i, &work[i], report, reason.clone());
                }
                return (out, loading);
            }
        };
        let sessions = speech.len();
        // Groups of at most the model's batch, and the same number for every session: the batch
        // ends when its last session does.
        let groups = items.len().div_ceil(speech[0].batch().max(1)).next_multiple_of(sessions).min(items.len());
        let chunks = even_chunks(&items, groups);
        tracing::debug!("speech: {} recordings, {sessions} sessions, {} groups", items.len(), chunks.len());
        // The supported languages of each user's country, most likely first.
        let preferred: Vec<Vec<String>> = work
            .iter()
            .map(|p| {
                let country = p.event.get().country.as_ref().map_or("", |c| c.as_str());
                attune_lang::languages_of_country(country)
                    .iter()
                    .filter(|l| self.languages.admitted().contains(l))
                    .map(|l| l.code().to_string())
                    .collect()
            })
            .collect();
        let transcribe = |speech: &mut Box<dyn SpeechToText>, chunk: &[(usize, &[f32])]| {
            let requests: Vec<SpeechRequest> = chunk
                .iter()
                .map(|&(i, pcm)| SpeechRequest {
                    pcm,
                    language: SpeechLanguage::Detect { preferred: preferred[i].clone() },
                })
                .collect();
            chunk.iter().map(|(i, _)| *i).zip(speech.transcribe(&requests)).collect::<Vec<_>>()
        };
        let results: Vec<(usize, Result<SpokenText, attune_infer::InferError>)> = if sessions == 1 {
            let speech = &mut speech[0];
            chunks.iter().flat_map(|chunk| transcribe(speech, chunk)).collect()
        } else {
            let next = std::sync::atomic::AtomicUsize::new(0);
            std::thread::scope(|scope| {
                let threads: Vec<_> = speech
                    .iter_mut()
                    .map(|speech| {
                        let (chunks, next, transcribe) = (&chunks, &next, &transcribe);
                        scope.spawn(move || {
                            let mut done = Vec::new();
                            loop {
                                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                let Some(chunk) = chunks.get(k) else { break };
                                done.extend(transcribe(speech, chunk));
                            }
                            done
                        })
                    })
                    .collect();
                threads.into_iter().flat_map(|t| t.join().expect("a speech thread panicked")).collect()
            })
        };
        // The gate's reading of each transcript; a disagreement with the decoded language asks
        // for a second decode as the language the gate heard.
        let mut again: Vec<(usize, Language)> = Vec::new();
        let pcm_of: std::collections::HashMap<usize, &[f32]> = items.iter().copied().collect();
        let min_logprob = self.config.min_speech_logprob;
        for (i, result) in results {
            match result {
                Ok(spoken) if unintelligible(&spoken, min_logprob) => parts.unintelligible[i] = true,
                Ok(spoken) => {
                    if let (Some(decoded), LanguageDecision::Supported { language, .. }) =
                        (&spoken.language, self.languages.decide(&spoken.text))
                    {
                        if !same_language(decoded, language) {
                            tracing::debug!("speech {i}: decoded as {decoded}, reads as {}", language.code());
                            again.push((i, language));
                            continue;
                        }
                    }
                    out[i] = Some(spoken.text);
                }
                Err(e) => parts.fail(i, &work[i], report, e.to_string()),
            }
        }
        if !again.is_empty() {
            let requests: Vec<SpeechRequest> = again
                .iter()
                .map(|&(i, language)| SpeechRequest {
                    pcm: pcm_of[&i],
                    language: SpeechLanguage::Force(language.code().to_string()),
                })
                .collect();
            report.speech_redecoded += again.len() as u64;
            for (&(i, language), result) in again.iter().zip(speech[0].transcribe(&requests)) {
                match result {
                    Ok(spoken) if unintelligible(&spoken, min_logprob) => parts.unintelligible[i] = true,
                    Ok(spoken) => match self.languages.decide(&spoken.text) {
                        LanguageDecision::Supported { language: heard, .. }
                            if same_language(language.code(), heard) =>
                        {
                            out[i] = Some(spoken.text)
                        }
                        // Still not the language it was decoded as: what it says is not known.
                        _ => parts.language_skipped[i] = true,
                    },
                    Err(e) => parts.fail(i, &work[i], report, e.to_string()),
                }
            }
        }
        (out, loading)
    }

    /// The words of each event (the user's, the assistant's) and its transcript: the language
    /// gate first (text it does not admit makes the event skipped whole, never tagged), then the
    /// lexicon (what it drops is never embedded), then one embedding batch per text path.
    ///
    /// A chat's language is read from all its words; each side is then read by itself, and
    /// takes the chat's language when it is too short to tell alone ("thanks!").
    fn tag_texts(
        &mut self,
        work: &[Pending],
        transcripts: &[Option<String>],
        picture_texts: &[Option<String>],
        parts: &mut Parts,
        report: &mut Report,
    ) {
        // Each event's texts, owned here so the gate's admitted views can borrow them.
        let texts: Vec<EventTexts> =
            (0..work.len()).map(|i| EventTexts::of(&work[i], &transcripts[i], &picture_texts[i])).collect();
        // Per text path: the parts it embeds.
        let mut to_embed: Vec<Vec<(usize, Source, SupportedText<'_>, Segments)>> =
            self.text.iter().map(|_| Vec::new()).collect();
        let gate = self.languages;
        for (i, t) in texts.iter().enumerate() {
            if !parts.still_open(i) {
                continue; // failed, or skipped whole already: nothing of it is tagged
            }
            let mut admitted: Vec<(Source, SupportedText<'_>)> = Vec::new();
            let mut counted = false;
            let mut count = |report: &mut Report, language: Option<Language>| {
                if !std::mem::replace(&mut counted, true) {
                    report.count_language(language);
                }
            };
            if let Some(whole) = &t.words {
                // Words that come with media (a prompt, a caption, a question) are short, like
                // a sign: the gate's best guess. A chat is read with the gate's full confidence.
                let whole_text =
                    if work[i].decoded.is_some() { gate.admit_best_guess(whole) } else { gate.admit(whole) };
                match whole_text {
                    Ok(whole_text) => {
                        count(report, Some(whole_text.language()));
                        match (&t.user, &t.assistant) {
                            (Some(user), Some(assistant)) => {
                                for (source, side) in [(Source::Words, user), (Source::Assistant, assistant)] {
                                    match gate.admit_part(side, &whole_text) {
                                        Ok(side) => admitted.push((source, side)),
                                        Err(_) => parts.language_skipped[i] = true,
                                    }
                                }
                            }
                            (None, Some(_)) => admitted.push((Source::Assistant, whole_text)),
                            _ => admitted.push((Source::Words, whole_text)),
                        }
                    }
                    // Words with (almost) no letters say nothing that could be tagged or be
                    // sensitive when the event has media; alone, they are an event in no language.
                    Err(LanguageDecision::Unidentified { reason: UnidentifiedReason::TooShort })
                        if work[i].decoded.is_some() =>
                    {
                        parts.expected[i] += 1;
                        parts.texts[i].push((Source::Words, Verdict::Topics(Vec::new())));
                    }
                    Err(decision) => {
                        count(report, decision.language());
                        parts.language_skipped[i] = true;
                    }
                }
            }
            // Speech and text in pictures: read by themselves. With (almost) no letters, nothing
            // was said or written that could be tagged or be sensitive; the rest of the event
            // still speaks for it. Anything else the gate does not admit skips the event whole.
            for (source, text) in [(Source::Speech, &t.speech), (Source::TextInPicture, &t.in_pictures)] {
                let Some(text) = text else { continue };
                // A sign or a label is too short for the gate to be sure of: its best guess.
                let admitted_text =
                    if source == Source::TextInPicture { gate.admit_best_guess(text) } else { gate.admit(text) };
                match admitted_text {
                    Ok(text) => {
                        count(report, Some(text.language()));
                        admitted.push((source, text));
                    }
                    Err(LanguageDecision::Unidentified { reason: UnidentifiedReason::TooShort }) => {
                        parts.expected[i] += 1;
                        parts.texts[i].push((source, Verdict::Topics(Vec::new())));
                    }
                    Err(decision) => {
                        count(report, decision.language());
                        parts.language_skipped[i] = true;
                    }
                }
            }
            if parts.language_skipped[i] {
                continue; // skipped whole: nothing of it is embedded
            }
            for (source, text) in admitted {
                // The gate admits only languages a path covers; a miss here is a skip, never a guess.
                let Some(path) = text_path::route(&self.text, text.language()) else {
                    parts.language_skipped[i] = true;
                    break;
                };
                parts.expected[i] += 1;
                to_embed[path].push((i, source, text, Segments::of(text.text())));
            }
        }
        for (path, items) in to_embed.into_iter().enumerate() {
            let items: Vec<_> = items.into_iter().filter(|(i, ..)| !parts.language_skipped[*i]).collect();
            if !items.is_empty() {
                self.tag_on_path(path, items, work, parts, report);
            }
        }
    }

    /// The lexicon, then one embedding batch, on one text path (made now if it is the first
    /// time it is needed).
    fn tag_on_path(
        &mut self,
        path: usize,
        items: Vec<(usize, Source, SupportedText<'_>, Segments)>,
        work: &[Pending],
        parts: &mut Parts,
        report: &mut Report,
    ) {
        let (got, loading) = self.text[path].get();
        report.model_load_s += loading.as_secs_f64();
        let (embedder, tagger) = match got {
            Ok(got) => got,
            Err(reason) => {
                for (i, ..) in items {
                    parts.fail(i, &work[i], report, format!("text model unavailable: {reason}"));
                }
                return;
            }
        };
        let mut to_embed = Vec::with_capacity(items.len());
        for (i, source, text, segs) in items {
            match tagger.lexicon_hit(text.text()) {
                Some(category) => parts.texts[i]
                    .push((source, Verdict::Sensitive { category, detector: attune_tag::Detector::Lexicon })),
                None => to_embed.push((i, source, text, segs)),
            }
        }
        if to_embed.is_empty() {
            return;
        }
        let flat: Vec<String> = to_embed.iter().flat_map(|(.., s)| s.texts.iter().cloned()).collect();
        match tagger.encode(embedder, &flat) {
            Ok(encoded) => {
                let mut at = 0;
                for (i, source, text, segs) in &to_embed {
                    let n = segs.texts.len();
                    parts.texts[*i].push((*source, tagger.tag(text, segs, encoded.slice(at..at + n))));
                    at += n;
                }
            }
            Err(batch_error) => {
                // Find the bad items: one model call each, so one bad input costs one event.
                tracing::warn!("text batch of {} failed ({batch_error}); retrying one by one", to_embed.len());
                for (i, source, text, segs) in &to_embed {
                    match tagger.encode(embedder, &segs.texts) {
                        Ok(encoded) => parts.texts[*i].push((*source, tagger.tag(text, segs, encoded.as_ref()))),
                        Err(e) => parts.fail(*i, &work[*i], report, e.to_string()),
                    }
                }
            }
        }
    }
}

/// What reading a batch's pictures found, applied to the batch once done.
struct PictureReadings {
    /// The text in each item's photo or video frames (each frame's lines, a line seen in
    /// several frames once).
    texts: Vec<Option<String>>,
    /// Items with a picture holding text that could not all be read: skipped as
    /// `unreadable_text`, since text of unknown content (a placard in a script the model does
    /// not know) cannot be vouched for.
    unreadable: Vec<bool>,
    failures: Vec<(usize, String)>,
    /// Pictures read, and the time it took.
    read: usize,
    busy: Duration,
}

/// Read the text in the pictures of the items still `open`.
fn read_pictures(reading: &mut PictureReading<'_>, work: &[Pending], open: &[bool]) -> PictureReadings {
    let t = Instant::now();
    let mut out = PictureReadings {
        texts: vec![None; work.len()],
        unreadable: vec![false; work.len()],
        failures: Vec::new(),
        read: 0,
        busy: Duration::ZERO,
    };
    let with_pictures = work
        .iter()
        .enumerate()
        .filter(|(i, p)| open[*i] && matches!(p.media(), Some(Decoded::Image(_) | Decoded::Video(_))));
    let reader = match reading {
        PictureReading::Reader(reader) => &mut **reader,
        PictureReading::Off => return out,
        PictureReading::Unavailable(reason) => {
            out.failures =
                with_pictures.map(|(i, _)| (i, format!("no text-in-pictures model in this run: {reason}"))).collect();
            return out;
        }
    };
    for (i, p) in with_pictures {
        let pictures: Vec<&RgbImage> = match p.media() {
            Some(Decoded::Image(img)) => vec![img],
            Some(Decoded::Video(video)) => video.frames.iter().map(|f| &f.image).collect(),
            _ => continue,
        };
        let mut lines: Vec<String> = Vec::new();
        for picture in pictures {
            out.read += 1;
            match reader.read(picture) {
                // Once a line could not be read, the item is skipped: no need to read on.
                Ok(text) if text.unread > 0 => {
                    out.unreadable[i] = true;
                    break;
                }
                Ok(text) => {
                    for line in text.lines {
                        if !lines.contains(&line.text) {
                            lines.push(line.text);
                        }
                    }
                }
                Err(e) => {
                    out.failures.push((i, format!("reading the text in its pictures: {e}")));
                    break;
                }
            }
        }
        if !lines.is_empty() {
            out.texts[i] = Some(lines.join("\n"));
        }
    }
    out.busy = t.elapsed();
    out
}

/// Photos and video frames: classified in batches of the model's size, then tagged through
/// the class table.
fn tag_images(images: &mut Option<ImageStage<'_>>, work: &[Pending], parts: &mut Parts, report: &mut Report) {
    let items: Vec<(usize, &RgbImage)> = work
        .iter()
        .enumerate()
        .flat_map(|(i, p)| -> Vec<(usize, &RgbImage)> {
            match p.media() {
                Some(Decoded::Image(img)) => vec![(i, img)],
                Some(Decoded::Video(video)) => video.frames.iter().map(|f| (i, &f.image)).collect(),
                _ => Vec::new(),
            }
        })
        .filter(|(i, _)| parts.still_open(*i))
        .collect();
    if items.is_empty() {
        return;
    }
    let Some(stage) = images.as_mut() else {
        for (i, _) in items {
            parts.fail(i, &work[i], report, "no image model is loaded in this run".into());
        }
        return;
    };
    for (i, _) in &items {
        parts.expected[*i] += 1;
    }
    for chunk in items.chunks(stage.classifier.max_batch().max(1)) {
        let images: Vec<&RgbImage> = chunk.iter().map(|(_, img)| *img).collect();
        match stage.classifier.classify(&images) {
            Ok(probabilities) if probabilities.len() == chunk.len() => {
                for ((i, _), p) in chunk.iter().zip(probabilities) {
                    parts.pictures[*i].push(stage.tagger.tag(&p));
                }
            }
            result => {
                let why = result.err().map_or_else(|| "wrong number of outputs".to_string(), |e| e.to_string());
                tracing::warn!("image batch of {} failed ({why}); retrying one by one", chunk.len());
                for (i, img) in chunk {
                    match stage.classifier.classify(&[*img]) {
                        Ok(mut p) if p.len() == 1 => parts.pictures[*i].push(stage.tagger.tag(&p.remove(0))),
                        Ok(_) => parts.fail(*i, &work[*i], report, "image model gave no output".into()),
                        Err(e) => parts.fail(*i, &work[*i], report, e.to_string()),
                    }
                }
            }
        }
    }
}

/// What the models said about each item of a batch, until its verdict is assembled.
struct Parts {
    failed: Vec<bool>,
    /// Some text of the item (words or speech) is in a language the gate did not admit: the
    /// item is skipped whole (its other parts cannot vouch for what that text says).
    language_skipped: Vec<bool>,
    /// The speech was not understood well enough to be tagged: skipped whole, as above.
    unintelligible: Vec<bool>,
    /// A picture holds text that could not be read: skipped whole, as above.
    unreadable: Vec<bool>,
    /// The verdicts on the item's texts: the user's words, the assistant's, the transcript.
    texts: Vec<Vec<(Source, Verdict)>>,
    /// A photo's verdict, or one per sampled video frame.
    pictures: Vec<Vec<Verdict>>,
    /// How many verdicts the item was sent for; one missing fails it (never a verdict from
    /// part of what it holds).
    expected: Vec<usize>,
}

impl Parts {
    fn new(n: usize) -> Parts {
        Parts {
            failed: vec![false; n],
            language_skipped: vec![false; n],
            unintelligible: vec![false; n],
            unreadable: vec![false; n],
            texts: vec![Vec::new(); n],
            pictures: vec![Vec::new(); n],
            expected: vec![0; n],
        }
    }

    /// Neither failed nor skipped yet: worth the next model's time.
    fn still_open(&self, i: usize) -> bool {
        !self.failed[i] && !self.language_skipped[i] && !self.unintelligible[i] && !self.unreadable[i]
    }

    /// Record the item's first failure; later ones add nothing (one event, one failure).
    fn fail(&mut self, i: usize, p: &Pending, report: &mut Report, message: String) {
        if !std::mem::replace(&mut self.failed[i], true) {
            report.fail_pending(p, message);
        }
    }

    /// One verdict per item.
    fn verdicts(mut self, work: &[Pending], report: &mut Report) -> Vec<Judged> {
        (0..work.len())
            .map(|i| {
                if self.failed[i] {
                    return Judged::Failed;
                }
                if self.language_skipped[i] {
                    return Judged::UnsupportedLanguage;
                }
                if self.unintelligible[i] {
                    return Judged::Unintelligible;
                }
                if self.unreadable[i] {
                    return Judged::UnreadableText;
                }
                let mut all = std::mem::take(&mut self.texts[i]);
                let given = all.len() + self.pictures[i].len();
                all.extend(std::mem::take(&mut self.pictures[i]).into_iter().map(|v| (Source::Picture, v)));
                if given < self.expected[i] || all.is_empty() {
                    self.fail(i, &work[i], report, "no model gave a verdict".into());
                    return Judged::Failed;
                }
                Judged::Verdict(verdict::assemble(&all))
            })
            .collect()
    }
}

/// The texts of one event, as the language gate reads them.
struct EventTexts {
    /// All of its words, each turn on its own line: what the chat's language is read from.
    words: Option<String>,
    /// The user's turns (a message, prompt, caption, question) and the assistant's; both
    /// `None` when the event has no words, and `user` alone when it has no assistant turn.
    user: Option<String>,
    assistant: Option<String>,
    speech: Option<String>,
    /// The text read in its photo or video frames.
    in_pictures: Option<String>,
}

impl EventTexts {
    fn of(p: &Pending, transcript: &Option<String>, in_pictures: &Option<String>) -> EventTexts {
        let e = p.event.get();
        let (user, assistant) = (e.words_of(Role::User), e.words_of(Role::Assistant));
        let words = e.words();
        EventTexts { words, user, assistant, speech: transcript.clone(), in_pictures: in_pictures.clone() }
    }
}

/// What became of one item of a batch.
enum Judged {
    /// Failed somewhere (already in the report).
    Failed,
    /// Its text or speech is not in a supported language: skipped, never tagged.
    UnsupportedLanguage,
    Unintelligible,
    /// Text in its pictures could not be read: skipped, never tagged.
    UnreadableText,
    Verdict(EventVerdict),
}

/// How the reader ended.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    /// The source ended, failed, or a later stage stopped.
    Ended,
    /// Asked to stop (`PipelineConfig::stop`) before the source ended.
    Stopped,
}

/// The first stage: read records, apply the selection and the policy, send words alone straight
/// to the batcher and events with media to the decoders. Stops at the end of the source, when a later stage stops,
/// or when `stop` is set — then between two records, so every record read is accounted for.
#[allow(clippy::too_many_arguments)]
fn read_and_gate(
    source: &Mutex<&mut (dyn EventSource + Send)>,
    policy: &Policy,
    only: &Option<HashSet<String>>,
    jobs: Sender<DecodeJob>,
    messages: Sender<Message>,
    stats: &Mutex<StageStats>,
    stop: Option<&AtomicBool>,
) -> Read {
    let selected = |id: Option<&str>| match (only, id) {
        (None, _) => true,
        (Some(only), Some(id)) => only.contains(id),
        (Some(_), None) => false,
    };
    for seq in 0u64.. {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Read::Stopped;
        }
        let t = Instant::now();
        // The guard is dropped at the end of this statement: the batcher acknowledges meanwhile.
        let record = source.lock().expect("not poisoned").next_record();
        let record = match record {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(e) => {
                let _ = messages.send(Message::SourceFailed(e));
                break;
            }
        };
        let message = match record {
            Ok((origin, event)) if selected(Some(&event.event_id)) => match policy.admit(event) {
                Err(reason) => Message::Skipped(seq, origin, SkipAs::Policy(reason)),
                Ok(event) if event.get().media.is_some() => {
                    stats.lock().expect("not poisoned").add(t.elapsed(), 1);
                    if jobs.send(DecodeJob { seq, origin, event }).is_err() {
                        break;
                    }
                    continue;
                }
                // Words alone: nothing to decode.
                Ok(event) => Message::Ready(Box::new(Pending { seq, origin, event, decoded: None, queued_bytes: 0 })),
            },
            Err(failure) if selected(failure.event_id.as_deref()) => {
                let report_failure = Failure {
                    event_id: failure.report_id(),
                    line: Some(failure.origin.line),
                    message: failure.error.to_string(),
                    user_id: None,
                };
                Message::Failed(seq, failure.origin, report_failure)
            }
            Ok((origin, _)) => Message::Skipped(seq, origin, SkipAs::NotSelected),
            Err(failure) => Message::Skipped(seq, failure.origin, SkipAs::NotSelected),
        };
        stats.lock().expect("not poisoned").add(t.elapsed(), 1);
        if messages.send(message).is_err() {
            break;
        }
    }
    Read::Ended
}

/// Re-exported so callers name skip reasons without depending on the policy crate.
pub type SkipReason = Exclusion;

#[cfg(test)]
mod tests {
    use super::{even_chunks, same_language, unintelligible, DEFAULT_MIN_SPEECH_LOGPROB};
    use attune_infer::SpokenText;
    use attune_lang::Language;

    #[test]
    fn unsure_or_looping_speech_is_unintelligible_and_silence_is_not() {
        let spoken = |text: &str, avg_logprob: f32, looped_windows: usize| SpokenText {
            text: text.into(),
            avg_logprob,
            looped_windows,
            ..Default::default()
        };
        let floor = DEFAULT_MIN_SPEECH_LOGPROB;
        assert!(!unintelligible(&spoken("what tent should I buy", -0.3, 0), floor));
        assert!(unintelligible(&spoken("kết hạng mạnh tử kiếm", -0.77, 0), floor));
        // Nothing but loops: something was said and not understood.
        assert!(unintelligible(&spoken("", 0.0, 1), floor));
        // Silence: nothing was said; a video's pictures still speak for it.
        assert!(!unintelligible(&spoken("", 0.0, 0), floor));
        assert!(!unintelligible(&spoken("kết hạng", -0.77, 0), -1.0), "the floor is the caller's");
    }

    #[test]
    fn malay_and_indonesian_count_as_one_language_for_speech() {
        assert!(same_language("id", Language::Malay) && same_language("ms", Language::Indonesian));
        assert!(same_language("es", Language::Spanish));
        assert!(!same_language("th", Language::Indonesian) && !same_language("en", Language::Hindi));
    }

    #[test]
    fn even_chunks_keep_order_and_differ_by_at_most_one() {
        let items: Vec<u32> = (0..20).collect();
        let lengths = |n| even_chunks(&items, n).iter().map(|c| c.len()).collect::<Vec<_>>();
        assert_eq!(lengths(6), [4, 4, 3, 3, 3, 3]);
        assert_eq!(lengths(2), [10, 10]);
        assert_eq!(lengths(1), [20]);
        assert_eq!(lengths(40), vec![1; 20], "never an empty chunk");
        assert_eq!(lengths(0), [20]);
        assert_eq!(even_chunks(&items, 6).concat(), items);
        assert!(even_chunks::<u32>(&[], 3).is_empty());
    }
}
