//! `attune run`: the plan made from the arguments before anything is read (threads, decoders,
//! models, store, provenance: [`RunPlan`]), the run itself with its progress and report, the
//! stop signals, and the decoder processes' own command.

use super::*;

/// Whether the first lines of a manifest hold photos or videos (decoding-heavy), to divide the
/// thread budget before the run. Unreadable lines count as nothing here; the run reports them.
pub(crate) fn has_pictures(manifest: &Path) -> bool {
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
pub(crate) fn thread_split(total: usize, decoders: Option<usize>, pictures: bool) -> (usize, usize) {
    let total = total.max(1);
    let model_threads = if pictures { (total / 2).max(1) } else { total };
    let decoders = decoders.unwrap_or(if pictures { total } else { 1 }).max(1);
    (decoders, model_threads)
}

/// `attune decode-worker`: set the memory limit, then decode requests until stdin closes.
pub(crate) fn decode_worker(args: &WorkerArgs) -> Result<()> {
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
pub(crate) fn decode_options(image_short_side: u32, video: &VideoArgs, threads: usize) -> attune_decode::DecodeOptions {
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

/// Everything a run needs, made before it starts: an error while making it means the run could
/// not start (exit 2), and nothing was processed.
pub(crate) struct RunPlan {
    pub(crate) policy: Policy,
    pub(crate) languages: attune_lang::LanguageGate,
    pub(crate) text: Vec<TextPath<'static>>,
    pub(crate) images: Option<(Box<dyn ImageClassifier>, ImageTagger)>,
    /// `Ok(None)`: not read (`--no-text-in-pictures`); `Err`: why the model could not be had.
    pub(crate) text_in_pictures: std::result::Result<Option<Box<dyn TextInPictures>>, String>,
    pub(crate) speech: SpeechSessions<'static>,
    pub(crate) store: Box<dyn ProfileStore>,
    /// A SQLite store's one writer until the run ends.
    pub(crate) _lock: Option<StoreLock>,
    pub(crate) provenance: Provenance,
    /// The tagger's bars given in place of its calibration's (each stricter), for the reports.
    pub(crate) tagger_settings: std::collections::BTreeMap<String, String>,
    pub(crate) config: PipelineConfig,
    pub(crate) decoders: Vec<Box<dyn MediaDecoder>>,
    /// Kept alive for the models made from it.
    pub(crate) _runtime: Runtime,
}

impl RunPlan {
    /// A pipeline over these parts. The text paths, speech sessions and decoders are moved into
    /// it; a caller that runs again takes them back from the pipeline afterwards.
    pub(crate) fn pipeline(&mut self) -> Pipeline<'_, 'static> {
        Pipeline::builder(&self.policy, &self.languages, self.store.as_mut(), self.provenance.clone())
            .text_paths(std::mem::take(&mut self.text))
            .images(
                self.images.as_mut().map(|(classifier, tagger)| ImageStage { classifier: classifier.as_mut(), tagger }),
            )
            .text_in_pictures(match &mut self.text_in_pictures {
                Ok(Some(reader)) => PictureReading::Reader(reader.as_mut()),
                Ok(None) => PictureReading::Off,
                Err(reason) => PictureReading::Unavailable(reason.clone()),
            })
            .speech(std::mem::replace(&mut self.speech, SpeechSessions::unavailable("in use by a pipeline")))
            .config(self.config.clone())
            .tagger_settings(self.tagger_settings.clone())
            .decoders(std::mem::take(&mut self.decoders))
            .build()
    }
}

pub(crate) fn run(args: &RunArgs) -> Result<u8> {
    // Before the models load, so a signal while they do is not the default (an exit without a
    // report) either.
    let stop = StopSignals::register().map_err(not_started)?;
    let source = attune_event::ManifestSource::open(&args.manifest).map_err(not_started)?;
    for report in args.report.iter().chain(&args.report_html) {
        check_report_path(report).map_err(not_started)?;
    }
    let prepared = plan_run(args, has_pictures(&args.manifest)).map_err(not_started)?;
    execute_run(args, source, prepared, &stop)
}

/// SIGTERM (what schedulers send) and SIGINT: the first asks the run to stop reading and finish
/// what it has read; a second, while it does, ends the process at once — each batch commits
/// atomically, so what was committed stays.
pub(crate) struct StopSignals {
    pub(crate) requested: Arc<AtomicBool>,
    /// The number of the signal that asked.
    pub(crate) signal: Arc<AtomicUsize>,
}

impl StopSignals {
    pub(crate) fn register() -> Result<StopSignals> {
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
    pub(crate) fn received(&self) -> Option<(&'static str, u8)> {
        match self.signal.load(Ordering::SeqCst) as i32 {
            signal_hook::consts::SIGINT => Some(("SIGINT", exit::INTERRUPTED_BY_SIGINT)),
            signal_hook::consts::SIGTERM => Some(("SIGTERM", exit::INTERRUPTED_BY_SIGTERM)),
            _ => None,
        }
    }
}

/// Find out before the run, not after all its work, whether its report can be written: open it
/// for appending (which changes nothing), and take away a file that was not there before.
pub(crate) fn check_report_path(path: &Path) -> Result<()> {
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
pub(crate) fn plan_run(args: &RunArgs, pictures: bool) -> Result<RunPlan> {
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
    let tightening = args.bars.tightening();
    let (text, text_model_set) = text_paths(&runtime, model, tightening)?;
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
        // One intra-op thread: pictures are read beside the image model on the one permit the
        // decoders leave free (`Pipeline::run`'s batches). On two threads the glance's sessions
        // competed with the image model and the decoders for both cores: 192 photos ran at 0.69×
        // the speed without text in pictures, on one thread at 0.84× (docs/benchmarks.md).
        let one_thread = runtime_with(model, 1)?;
        match load_text_in_pictures_model(&model.text_in_pictures_model, &one_thread, model.models.as_deref()) {
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
        Some(model.voice_activity_model.as_str()).filter(|m| *m != "none"),
    ) {
        Ok(speech) => speech,
        Err(e) if required.speech => {
            return Err(anyhow::Error::from(e).context("the speech model is required (--require-models)"))
        }
        Err(e) if misconfigured(&e) => {
            return Err(anyhow::Error::from(e).context("--speech-model or --voice-activity-model"))
        }
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
    Ok(RunPlan {
        policy,
        languages,
        text,
        images,
        text_in_pictures,
        speech,
        store,
        _lock: lock,
        provenance,
        tagger_settings: tightening.given().into_iter().map(|(n, v)| (n.to_string(), v)).collect(),
        config,
        decoders,
        _runtime: runtime,
    })
}

/// "120 of 283 events (42%), 35.2 events/s, about 5 s left", or without a total "120 events,
/// 35.2 events/s".
pub(crate) fn progress_line(events: u64, total: Option<u64>, elapsed: std::time::Duration) -> String {
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
pub(crate) fn execute_run(
    args: &RunArgs,
    mut source: attune_event::ManifestSource,
    mut prepared: RunPlan,
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
    if !report.tagger_settings.is_empty() {
        let given: Vec<String> = report.tagger_settings.iter().map(|(n, v)| format!("{n} {v}")).collect();
        eprintln!("tagger bars tightened from the calibration's: {}", given.join(", "));
    }
    if let Some(shares) = report.sensitive_shares() {
        eprintln!("texts found sensitive, per language: {shares}");
    }
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
pub(crate) fn run_exit_code(report: &attune_pipeline::Report) -> u8 {
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
