//! The commands on an existing store: `export` (JSON Lines, Parquet, OpenRTB), `explain`,
//! `forget`, `unforget`. None of them may create a store.

use super::*;

/// The store of `export` and `explain`, which must exist: a mistyped path is an error, not a
/// new empty store.
pub(crate) fn open_existing_store(address: &StoreAddress) -> Result<Box<dyn ProfileStore>> {
    Ok(address.open(OpenMode::MustExist, false).map_err(not_started)?.store)
}

/// `user.id` in OpenRTB exports.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum UserIdMode {
    /// HMAC-SHA256 of the internal id (hex)
    Hashed,
    /// The internal id as stored
    Internal,
    /// No user.id
    None,
}

pub(crate) struct OpenRtbArgs {
    pub(crate) provider: String,
    pub(crate) user_id: UserIdMode,
    pub(crate) key: Option<String>,
}

/// Which profiles `export` writes: all, or those changed since an instant, or some users'.
pub(crate) struct Selection {
    pub(crate) since: Option<DateTime<Utc>>,
    pub(crate) users: Vec<String>,
}

pub(crate) fn export(
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

pub(crate) type ExportOut = std::io::BufWriter<Box<dyn Write + Send>>;

/// What `export` writes profiles into: JSON Lines (either format) or a Parquet file.
pub(crate) struct ExportSink {
    pub(crate) writer: ExportWriter,
    pub(crate) profiles: u64,
    /// The reader of standard output went away (`attune export | head`).
    pub(crate) broken_pipe: bool,
}

pub(crate) enum ExportWriter {
    Lines {
        out: ExportOut,
        openrtb: Option<OpenRtbOptions>,
    },
    #[cfg(feature = "parquet")]
    Parquet(Box<attune_profile::ParquetProfileWriter<ExportOut>>),
}

impl ExportSink {
    pub(crate) fn new(format: Format, options: OpenRtbOptions, out: ExportOut) -> Result<ExportSink> {
        let writer = match format {
            Format::Profile => ExportWriter::Lines { out, openrtb: None },
            Format::Openrtb => ExportWriter::Lines { out, openrtb: Some(options) },
            #[cfg(feature = "parquet")]
            Format::Parquet => ExportWriter::Parquet(Box::new(attune_profile::ParquetProfileWriter::new(out)?)),
        };
        Ok(ExportSink { writer, profiles: 0, broken_pipe: false })
    }

    pub(crate) fn write(&mut self, profile: attune_profile::Profile) -> Result<(), StoreError> {
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
    pub(crate) fn finish(self) -> Result<u64, StoreError> {
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

    pub(crate) fn io_error(&mut self, e: std::io::Error) -> StoreError {
        self.broken_pipe = e.kind() == std::io::ErrorKind::BrokenPipe;
        StoreError::Stopped(e.to_string())
    }
}

pub(crate) fn explain(store_path: &StoreAddress, user: &str, scoring: Scoring, json: bool) -> Result<()> {
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
pub(crate) fn lock_existing_store(address: &StoreAddress) -> Result<OpenStore> {
    address.open(OpenMode::MustExist, true).map_err(not_started)
}

pub(crate) fn forget(store_path: &StoreAddress, user: &str) -> Result<()> {
    let OpenStore { mut store, lock: _lock } = lock_existing_store(store_path)?;
    let f = store.forget(user)?;
    let before = if f.already_forgotten { " (already forgotten)" } else { "" };
    eprintln!(
        "forgot {user}{before}: {} evidence rows and {} ledger entries erased; their events are skipped until `attune unforget`",
        f.evidence_rows, f.ledger_rows
    );
    Ok(())
}

pub(crate) fn unforget(store_path: &StoreAddress, user: &str) -> Result<()> {
    let OpenStore { mut store, lock: _lock } = lock_existing_store(store_path)?;
    if store.unforget(user)? {
        eprintln!("unforgot {user}: later runs process their events again");
    } else {
        eprintln!("{user} was not forgotten: nothing to do");
    }
    Ok(())
}
