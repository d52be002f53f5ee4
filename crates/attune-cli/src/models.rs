//! Finding, loading and listing the models of a run: the ONNX Runtime instance, the text paths
//! (each text model with its tagger and calibration), the image model, `attune models`.

use super::*;

pub(crate) fn runtime(args: &ModelArgs) -> Result<Runtime> {
    runtime_with(args, args.threads.unwrap_or_else(cores))
}

pub(crate) fn runtime_with(args: &ModelArgs, threads: usize) -> Result<Runtime> {
    let device = if args.gpu { Device::CudaIfAvailable } else { Device::Cpu };
    Ok(Runtime::new(threads.max(1), device)?)
}

/// How a tagger's settings may differ from its calibration's.
#[derive(Clone, Copy)]
pub(crate) enum TaggerSettings {
    /// `attune eval`: any setting, on any calibration, validated or not (that is how one is measured).
    Measured(TagArgs),
    /// `attune run`: a validated calibration, its bars only tightened ([`Tightening`]).
    Run(Tightening),
}

/// The first text model and a tagger built with it and its calibration, with `settings`.
pub(crate) fn load_models(
    runtime: &Runtime,
    args: &ModelArgs,
    settings: TaggerSettings,
) -> Result<(Box<dyn TextEmbedder>, TextTagger)> {
    load_text_path(&args.text_model[0], runtime, args.models.as_deref(), args.model_batch, settings)
}

/// The run's text paths: the first text model loaded now, each later one made when a text in a
/// language only it covers first needs it. A later model that is not installed or not validated
/// is left out with a warning: its languages are then skipped, never tagged by another model.
/// A later model's calibration is tightened alike when it is first used; a setting looser than
/// its calibration then fails the texts that need it, with the reason.
pub(crate) fn text_paths(
    runtime: &Runtime,
    args: &ModelArgs,
    tightening: Tightening,
) -> Result<(Vec<TextPath<'static>>, Vec<String>)> {
    let (embedder, tagger) = load_models(runtime, args, TaggerSettings::Run(tightening))?;
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
                load_text_path(&name, &runtime, root.as_deref(), batch, TaggerSettings::Run(tightening))
                    .map_err(|e| format!("{name}: {e:#}"))
            }),
        ));
    }
    Ok((paths, model_set))
}

/// Text model `name` and its tagger (see [`load_models`]).
pub(crate) fn load_text_path(
    name: &str,
    runtime: &Runtime,
    models_root: Option<&Path>,
    model_batch: usize,
    settings: TaggerSettings,
) -> Result<(Box<dyn TextEmbedder>, TextTagger)> {
    let mut embedder = load_text_model(name, runtime, models_root, model_batch)?;
    let mut calibration = Calibration::for_model(embedder.id(), embedder.dimensions())?;
    match settings {
        TaggerSettings::Run(_) if !calibration.validated => anyhow::bail!(
            "the tagger's calibration for {} is not validated for runs (its sensitive-item figures do not hold yet); `attune eval` measures it",
            embedder.id()
        ),
        TaggerSettings::Run(_) => {}
        TaggerSettings::Measured(tag) => {
            let config = tag.apply(calibration.config.clone());
            calibration = calibration.with_config(config);
        }
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
    if let TaggerSettings::Run(tightening) = settings {
        // Refused settings are the caller's mistake: the run does not start.
        tagger = tagger.tightened(&tightening).map_err(|e| match e {
            attune_tag::TagError::Looser { setting, given, calibrated } => not_started(anyhow::anyhow!(
                "{} {given} would keep out less than the calibration of {} ({calibrated}): a run may only tighten its calibration's bars; `attune eval` measures a looser one",
                crate::flag(setting),
                embedder.id()
            )),
            e => not_started(anyhow::Error::from(e)),
        })?;
    }
    Ok((embedder, tagger))
}

/// The run's language gate: the policy's supported languages that the text model's calibration
/// holds for; the others are skipped (said once, here).
pub(crate) fn language_gate(policy: &Policy, languages: &[attune_lang::Language]) -> Result<attune_lang::LanguageGate> {
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
pub(crate) fn cache_dir() -> Option<PathBuf> {
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
pub(crate) fn list_models(models_root: Option<&Path>) -> Result<()> {
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
pub(crate) fn misconfigured(e: &attune_infer::InferError) -> bool {
    matches!(e, attune_infer::InferError::Manifest { .. })
}

/// The image model and its class table.
pub(crate) fn load_image_models(
    runtime: &Runtime,
    args: &ModelArgs,
) -> Result<(Box<dyn ImageClassifier>, ImageTagger)> {
    let classifier = load_image_model(&args.image_model, runtime, args.models.as_deref(), args.image_batch)?;
    Ok((classifier, ImageTagger::new(ImageTagConfig::default())?))
}
