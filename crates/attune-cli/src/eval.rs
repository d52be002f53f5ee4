//! `attune eval`: the tagger's figures on labelled sets, for calibration and the README. Every
//! item is embedded once; the thresholds can then be swept over those embeddings
//! (`--sweep topic_threshold=0.80:0.88:0.01`) at the cost of tagging alone.

use crate::flag;
use anyhow::{bail, Context, Result};
use attune_lang::{LanguageDecision, LanguageGate, SupportedText};
use attune_pipeline::TextEmbedder;
use attune_tag::{Segments, TagConfig, TagError, TextTagger, Tightening, Verdict};
use attune_taxonomy::Taxonomy;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One line of a labelled set. Unknown keys are refused (a `"topic"` for `"topics"` would
/// otherwise make every item of the set a miss without a word).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Labelled {
    text: String,
    /// `ordinary` or a sensitive category name.
    expect: String,
    #[serde(default)]
    topics: Vec<String>,
    /// ISO 639-1; the sets in fixtures/conversations/ without it are English.
    #[serde(default = "english")]
    lang: String,
    /// `hard_negative` for ordinary items that use sensitive words without revealing anything;
    /// `no_interest` for a turn that names nothing to take an interest from ("thanks", "make it
    /// shorter"): ordinary, no topics expected, and none should be given.
    #[serde(default)]
    kind: String,
}

fn english() -> String {
    "en".into()
}

#[derive(Serialize, Default, Clone)]
struct Metrics {
    items: usize,
    ordinary: usize,
    /// Ordinary items with a topic equal to an expected one.
    ordinary_exact_hits: usize,
    /// … or its parent or child in the taxonomy.
    ordinary_hits: usize,
    ordinary_no_topic: usize,
    /// Topics given to ordinary items, and how many of them were expected (or parent/child).
    topics_emitted: usize,
    topics_related: usize,
    /// Expected topics of ordinary items, and how many of them a given topic matched (equal,
    /// parent or child): what share of what an item is about reached its profile. An item about
    /// six things that gets one of them is a hit, and a sixth of it.
    topics_expected: usize,
    topics_expected_found: usize,
    ordinary_wrongly_dropped: usize,
    /// Items the language gate did not admit (skipped, never tagged: no topic, no leak), and
    /// items it admitted as another language than their label's.
    language_skipped: usize,
    language_other: usize,
    /// Hard negatives (ordinary items that use sensitive words), and how many were dropped.
    hard_negatives: usize,
    hard_negatives_dropped: usize,
    /// Turns that name no interest (`kind: no_interest`), counted apart from the ordinary items
    /// (they have no topic to hit): how many were given topics anyway, and how many dropped.
    no_interest: usize,
    no_interest_given_topics: usize,
    no_interest_dropped: usize,
    sensitive: usize,
    /// Sensitive items not dropped.
    sensitive_missed: usize,
    /// Sensitive items that would have put a topic in a profile.
    sensitive_leaked: usize,
    /// Category → (caught, items).
    sensitive_caught_by_category: BTreeMap<String, (usize, usize)>,
    /// Category → items kept out of profiles (caught, or skipped by the language gate).
    sensitive_kept_out_by_category: BTreeMap<String, usize>,
    /// Category → ordinary items dropped as that category, and how many of them hard negatives.
    ordinary_dropped_as_category: BTreeMap<String, (usize, usize)>,
    /// Detector → ordinary items it dropped; sensitive items it caught.
    ordinary_dropped_by_detector: BTreeMap<String, usize>,
    sensitive_caught_by_detector: BTreeMap<String, usize>,
    /// One-sided 95 % Clopper–Pearson lower bound on the share of sensitive items kept out.
    sensitive_kept_out_lower_bound: f64,
    hit_rate: f64,
    topic_precision: f64,
    exact_hit_rate: f64,
    topic_recall: f64,
    wrongly_dropped_rate: f64,
    /// The smallest decision margin of any item ([`attune_tag::Margins::of_verdict`]), and how
    /// many items were decided by less than [`CLOSE_CALL`].
    smallest_margin: f32,
    close_calls: usize,
}

/// What `attune eval` prints besides the summary.
pub struct Show {
    /// The items it got wrong.
    pub errors: bool,
    /// Every item's decision margin.
    pub margins: bool,
    /// The metrics as JSON instead of text.
    pub json: bool,
}

/// Margins under this are counted as close calls in the summary: ~1000× the ~1e-5 by which
/// scores move between CPUs, and still small next to the thresholds' spacing.
const CLOSE_CALL: f32 = 0.01;

fn related(taxonomy: &Taxonomy, a: u32, b: u32) -> bool {
    let parent = |x: u32| taxonomy.node(x).and_then(|n| n.parent);
    a == b || parent(a) == Some(b) || parent(b) == Some(a)
}

/// One threshold swept: `name=start:end:step`.
pub fn parse_sweep(spec: &str) -> Result<(String, Vec<f32>)> {
    let (name, range) = spec.split_once('=').context("--sweep NAME=START:END:STEP")?;
    let parts: Vec<f32> = range.split(':').map(str::parse).collect::<Result<_, _>>().context("--sweep numbers")?;
    let [start, end, step] = parts[..] else { bail!("--sweep {spec}: expected START:END:STEP") };
    if step <= 0.0 || end < start {
        bail!("--sweep {spec}: empty range");
    }
    // Rounded to a millionth: 0.1 + 0.02 in f32 is a hair over the 0.12 a calibration file or a
    // flag reads, and a run would refuse it as looser.
    let values = (0..)
        .map(|k| ((start as f64 + k as f64 * step as f64) * 1e6).round() / 1e6)
        .take_while(|v| *v <= end as f64 + step as f64 / 2.0)
        .map(|v| v as f32)
        .collect();
    Ok((name.to_string(), values))
}

fn set(config: &mut TagConfig, name: &str, value: f32) -> Result<()> {
    match name {
        "topic_threshold" => config.topic_threshold = value,
        "topic_margin" => config.topic_margin = value,
        "category_threshold" => config.category_threshold = value,
        "probe_threshold" => config.probe_threshold = value,
        "sensitive_node_threshold" => config.sensitive_node_threshold = value,
        "sensitive_node_margin" => config.sensitive_node_margin = value,
        "node_vector_share" => config.node_vector_share = value,
        "topic_head_weight" => config.topic_head_weight = value,
        "node_neighbours" => {
            if value < 0.0 || value.fract() != 0.0 {
                bail!("--sweep node_neighbours: {value} is not a count of example chats");
            }
            config.node_neighbours = value as usize
        }
        "classifier_threshold" => config.classifier_threshold = Some(value),
        "lexicon_confirmation" => config.lexicon_confirmation = Some(value),
        "clause_gate" => config.clause_gate = Some(value),
        "no_interest_threshold" => config.no_interest_threshold = Some(value),
        other => bail!("--sweep: no threshold `{other}`"),
    }
    Ok(())
}

/// Every combination of the swept values, applied to `base`.
fn configs(base: &TagConfig, sweeps: &[(String, Vec<f32>)]) -> Result<Vec<(String, TagConfig)>> {
    let mut out = vec![(String::new(), base.clone())];
    for (name, values) in sweeps {
        let mut next = Vec::new();
        for (label, config) in &out {
            for v in values {
                let mut c = config.clone();
                set(&mut c, name, *v)?;
                next.push((format!("{label}{name}={v:.3} "), c));
            }
        }
        out = next;
    }
    Ok(out)
}

/// Whether `attune run` takes `measured` in place of `calibrated` (its calibration's own
/// settings), and what it would say: a run may only tighten its calibration's bars
/// ([`Tightening`]); anything else is a new calibration, measured by `eval` alone.
fn what_run_takes(tagger: &TextTagger, calibrated: &TagConfig, measured: &TagConfig) -> (bool, String) {
    let tightening = match Tightening::between(calibrated, measured) {
        Ok(t) => t,
        Err(names) => {
            let names: Vec<String> = names.iter().map(|n| flag(n)).collect();
            return (false, format!("a new calibration ({}): `attune run` does not take it", names.join(", ")));
        }
    };
    match tagger.with_config(calibrated.clone()).tightened(&tightening) {
        Ok(_) if tightening == Tightening::default() => {
            (true, "the calibration's own, as `attune run` uses them".into())
        }
        Ok(_) => {
            let given: Vec<String> = tightening.given().iter().map(|(n, v)| format!("{} {v}", flag(n))).collect();
            (true, format!("`attune run` takes {}: stricter than the calibration", given.join(" ")))
        }
        Err(TagError::Looser { setting, given, calibrated }) => (
            false,
            format!(
                "`attune run` refuses {} {given}: it keeps out less than the calibration ({calibrated})",
                flag(setting)
            ),
        ),
        Err(e) => (false, format!("`attune run` refuses these: {e}")),
    }
}

pub fn run(
    paths: &[PathBuf],
    embedder: &mut dyn TextEmbedder,
    tagger: &TextTagger,
    gate: &LanguageGate,
    show: Show,
    no_lexicon: bool,
    sweeps: &[(String, Vec<f32>)],
) -> Result<()> {
    let mut items: Vec<Labelled> = Vec::new();
    for path in paths {
        items.extend(read(path)?);
    }
    // What `run` would use, to say whether it takes the settings measured.
    let calibrated = &attune_tag::Calibration::for_model(embedder.id(), embedder.dimensions())?.config;
    // The gate first, as in a run: what it does not admit is never tagged.
    let admitted: Vec<Result<SupportedText<'_>, LanguageDecision>> =
        items.iter().map(|i| gate.admit(&i.text)).collect();
    let started = Instant::now();
    let segments: Vec<Segments> = items.iter().map(|i| tagger.segments(&i.text)).collect();
    let encoded = tagger.encode(embedder, &segments)?;
    let embed_s = started.elapsed().as_secs_f64();
    let sweeping = sweeps.iter().any(|(_, v)| v.len() > 1);
    for (label, config) in configs(tagger.config(), sweeps)? {
        config.check().map_err(|e| anyhow::anyhow!("--sweep {}: {e}", label.trim()))?;
        let (run_takes, run_says) = what_run_takes(tagger, calibrated, &config);
        let tagger = tagger.with_config(config);
        let mut by_lang: BTreeMap<String, Metrics> = BTreeMap::new();
        let mut all = Metrics::default();
        for (k, ((item, s), text)) in items.iter().zip(&segments).zip(&admitted).enumerate() {
            let v = encoded.item(k);
            let text = match text {
                Ok(text) => text,
                Err(decision) => {
                    let wrong = count_skipped(&mut all, item);
                    count_skipped(by_lang.entry(item.lang.clone()).or_default(), item);
                    if let (Some(what), true) = (wrong, show.errors && !sweeping) {
                        println!(
                            "{what}: [{} {}] not admitted: {decision:?}\n    {}",
                            item.lang, item.expect, item.text
                        );
                    }
                    continue;
                }
            };
            if text.language().code() != item.lang {
                all.language_other += 1;
                by_lang.entry(item.lang.clone()).or_default().language_other += 1;
            }
            let verdict = if no_lexicon { tagger.tag_segments(text, s, v) } else { tagger.tag(text, s, v) };
            let mut margins = tagger.margins(text.text(), s, v);
            if no_lexicon {
                margins.lexicon = None;
            }
            let margin = margins.of_verdict(&verdict);
            if show.margins && !sweeping {
                let outcome = match &verdict {
                    Verdict::Sensitive { category, .. } => format!("sensitive {category}"),
                    Verdict::Topics(ts) => format!("topics {:?}", ts.iter().map(|t| t.topic.id()).collect::<Vec<_>>()),
                };
                println!("margin {margin:>8.4}  [{} {}] {outcome}  {}", item.lang, item.expect, item.text);
            }
            let wrong = count(&mut all, item, &verdict, margin);
            count(by_lang.entry(item.lang.clone()).or_default(), item, &verdict, margin);
            if let (Some(what), true) = (wrong, show.errors && !sweeping) {
                println!(
                    "{what}: [{} {}] expected {:?} got {} (margin {margin:.4})\n    {}",
                    item.lang,
                    item.expect,
                    item.topics,
                    describe(&verdict),
                    item.text
                );
                if let Some((segment, a)) = tagger.likeliest_sensitive_segment(text.text(), s, v) {
                    println!(
                        "    likeliest sensitive segment: p {:.4} {} ({} words): {segment}",
                        a.p_sensitive,
                        a.category,
                        segment.split_whitespace().count()
                    );
                }
            }
        }
        // Category → language → kept out, items, and the one-sided 95 % lower bound.
        let kept_out_table: BTreeMap<String, BTreeMap<String, (usize, usize, f64)>> = all
            .sensitive_caught_by_category
            .keys()
            .map(|cat| {
                let row = by_lang
                    .iter()
                    .filter_map(|(lang, m)| {
                        let (_, n) = *m.sensitive_caught_by_category.get(cat)?;
                        let k = m.sensitive_kept_out_by_category.get(cat).copied().unwrap_or(0);
                        Some((lang.clone(), (k, n, clopper_pearson_lower(k, n, 0.05))))
                    })
                    .collect();
                (cat.clone(), row)
            })
            .collect();
        if show.json {
            let out = serde_json::json!({
                "thresholds": label.trim(),
                "run": {"takes": run_takes, "says": run_says},
                "all": finish(all),
                "languages": by_lang.into_iter().map(|(l, m)| (l, finish(m))).collect::<BTreeMap<_, _>>(),
                "kept_out_by_category_and_language": kept_out_table,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            continue;
        }
        if sweeping {
            let mark = if run_takes { "" } else { "(not for run) " };
            println!("{label}{mark}| {}", line(&finish(all)));
            continue;
        }
        println!("{}", line(&finish(all.clone())));
        println!("  settings: {run_says}");
        if by_lang.len() > 1 {
            for (lang, m) in &by_lang {
                println!("  {lang}: {}", line(&finish(m.clone())));
            }
        }
        for (what, counts) in [
            ("ordinary items dropped", &all.ordinary_dropped_by_detector),
            ("sensitive items caught", &all.sensitive_caught_by_detector),
        ] {
            if !counts.is_empty() {
                let by: Vec<String> = counts.iter().map(|(d, n)| format!("{d} {n}")).collect();
                println!("  {what}, by detector: {}", by.join(", "));
            }
        }
        // Kept out of profiles (dropped, or skipped by the language gate) per category, with a
        // one-sided 95 % Clopper–Pearson lower bound on that rate; and the ordinary items the
        // detectors took for that category.
        for (cat, (caught, n)) in &all.sensitive_caught_by_category {
            let kept_out = all.sensitive_kept_out_by_category.get(cat).copied().unwrap_or(0);
            let (dropped, hard) = all.ordinary_dropped_as_category.get(cat).copied().unwrap_or_default();
            println!(
                "  {cat:<18} caught {caught}/{n}, kept out of profiles {kept_out}/{n} (95% lower bound {:.3}); ordinary items dropped as {cat} {dropped} ({hard} hard negatives)",
                clopper_pearson_lower(kept_out, *n, 0.05)
            );
        }
        if by_lang.len() > 1 && !kept_out_table.is_empty() {
            println!("  kept out of profiles, by category and language:");
            println!("    {:<18} {}", "", by_lang.keys().map(|l| format!("{l:>7}")).collect::<Vec<_>>().join(" "));
            for (cat, row) in &kept_out_table {
                let cells: Vec<String> = by_lang
                    .keys()
                    .map(|lang| match row.get(lang) {
                        Some((k, n, _)) => format!("{:>7}", format!("{k}/{n}")),
                        None => format!("{:>7}", "-"),
                    })
                    .collect();
                println!("    {cat:<18} {}", cells.join(" "));
            }
        }
        println!(
            "  decision margins: smallest {:.4}; {} of {} items decided by less than {CLOSE_CALL} (may differ on another CPU)",
            all.smallest_margin, all.close_calls, all.items
        );
    }
    eprintln!(
        "{} items embedded in {embed_s:.1} s ({:.0} items/s)",
        items.len(),
        items.len() as f64 / embed_s.max(1e-9)
    );
    // Items in languages this text model is not calibrated for are skipped by its gate, as in a
    // run; a run would send them to the next text model, eval measures one model only.
    let mut uncovered: BTreeMap<&str, usize> = BTreeMap::new();
    for item in &items {
        if !tagger.languages().iter().any(|l| l.code() == item.lang) {
            *uncovered.entry(item.lang.as_str()).or_default() += 1;
        }
    }
    if !uncovered.is_empty() {
        let list: Vec<String> = uncovered.iter().map(|(l, n)| format!("{l} {n}")).collect();
        eprintln!(
            "note: {} items are in languages {} is not calibrated for ({}) and were skipped; `--text-model multilingual-e5-small` measures every supported language",
            uncovered.values().sum::<usize>(),
            embedder.id(),
            list.join(", ")
        );
    }
    Ok(())
}

/// A labelled set, every line checked: a mislabelled item would be measured wrong, silently.
fn read(path: &Path) -> Result<Vec<Labelled>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut items = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading the labelled set {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let item = serde_json::from_str(&line)
            .map_err(anyhow::Error::from)
            .and_then(|item| check_labelled(item).map_err(anyhow::Error::msg))
            .with_context(|| format!("{} line {}", path.display(), n + 1))?;
        items.push(item);
    }
    Ok(items)
}

/// `item` if its labels are ones `eval` can measure, else what is wrong with them.
fn check_labelled(item: Labelled) -> Result<Labelled, String> {
    if item.expect != "ordinary" && attune_taxonomy::SensitiveCategory::parse(&item.expect).is_none() {
        let categories: Vec<&str> = attune_taxonomy::SensitiveCategory::ALL.iter().map(|c| c.as_str()).collect();
        return Err(format!(
            "expect {:?} is neither `ordinary` nor a special category ({})",
            item.expect,
            categories.join(", ")
        ));
    }
    if item.kind == NO_INTEREST && (item.expect != "ordinary" || !item.topics.is_empty()) {
        return Err(format!(
            "a turn that names no interest is ordinary with no topics, got {} with {:?}",
            item.expect, item.topics
        ));
    }
    if item.expect != "ordinary" && !item.topics.is_empty() {
        return Err(format!("a sensitive item ({}) has no topics to expect, got {:?}", item.expect, item.topics));
    }
    // A sensitive node may be named beside others ("Philosophy" for a Kant essay): it is what
    // the chat is about, though never a topic attune gives.
    for topic in &item.topics {
        match topic.parse::<u32>() {
            Ok(id) if Taxonomy::get().node(id).is_some() => {}
            _ => return Err(format!("topic {topic:?} is not a node of the Interest taxonomy")),
        }
    }
    if !(2..=3).contains(&item.lang.len()) || !item.lang.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(format!("lang {:?} is not an ISO 639 code (`en`, `id`, `tl` …)", item.lang));
    }
    Ok(item)
}

fn describe(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Sensitive { category, detector } => format!("sensitive {category} by {detector:?}"),
        Verdict::Topics(ts) => ts
            .iter()
            .map(|t| format!("{} {} {:.3}", t.topic.id(), t.topic.name(), t.score))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Adds one item the language gate skipped to `m`: an ordinary item missed, a sensitive one
/// kept out of profiles (not leaked, not caught by a detector either).
fn count_skipped(m: &mut Metrics, item: &Labelled) -> Option<&'static str> {
    m.items += 1;
    m.language_skipped += 1;
    if item.kind == NO_INTEREST {
        // Skipped: no topic given, as wanted.
        m.no_interest += 1;
        None
    } else if item.expect == "ordinary" {
        m.ordinary += 1;
        m.topics_expected += expected_topics(item).len();
        m.hard_negatives += usize::from(item.kind == "hard_negative");
        m.ordinary_no_topic += 1;
        Some("SKIPPED (language)")
    } else {
        m.sensitive += 1;
        m.sensitive_caught_by_category.entry(item.expect.clone()).or_default().1 += 1;
        *m.sensitive_kept_out_by_category.entry(item.expect.clone()).or_default() += 1;
        None
    }
}

/// The one-sided lower confidence bound (level 1 − `alpha`) on a binomial proportion after `k`
/// successes in `n` trials (Clopper–Pearson): the `p` at which P(X ≥ k) = `alpha`.
pub fn clopper_pearson_lower(k: usize, n: usize, alpha: f64) -> f64 {
    if n == 0 || k == 0 {
        return 0.0;
    }
    // P(X >= k | n, p), summed in log space (n is at most a few thousand here).
    let ln_choose = |n: usize, i: usize| -> f64 { (1..=i).map(|j| ((n - i + j) as f64).ln() - (j as f64).ln()).sum() };
    let tail = |p: f64| -> f64 {
        (k..=n).map(|i| (ln_choose(n, i) + i as f64 * p.ln() + (n - i) as f64 * (1.0 - p).ln()).exp()).sum()
    };
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if tail(mid) < alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The `kind` of a turn that names no interest.
const NO_INTEREST: &str = "no_interest";

/// The Interest node ids an item is labelled with.
fn expected_topics(item: &Labelled) -> Vec<u32> {
    item.topics.iter().filter_map(|t| t.parse().ok()).collect()
}

/// Adds one item to `m`; what went wrong with it, if anything.
fn count(m: &mut Metrics, item: &Labelled, verdict: &Verdict, margin: f32) -> Option<&'static str> {
    let taxonomy = Taxonomy::get();
    m.items += 1;
    m.smallest_margin = if m.items == 1 { margin } else { m.smallest_margin.min(margin) };
    m.close_calls += usize::from(margin < CLOSE_CALL);
    let expected = expected_topics(item);
    if item.kind == NO_INTEREST {
        m.no_interest += 1;
        match verdict {
            Verdict::Sensitive { .. } => {
                m.no_interest_dropped += 1;
                Some("DROPPED")
            }
            Verdict::Topics(ts) if !ts.is_empty() => {
                m.no_interest_given_topics += 1;
                Some("GIVEN TOPICS")
            }
            Verdict::Topics(_) => None,
        }
    } else if item.expect == "ordinary" {
        m.ordinary += 1;
        m.topics_expected += expected.len();
        let hard = item.kind == "hard_negative";
        m.hard_negatives += usize::from(hard);
        match verdict {
            Verdict::Sensitive { category, detector } => {
                m.ordinary_wrongly_dropped += 1;
                m.hard_negatives_dropped += usize::from(hard);
                let as_category = m.ordinary_dropped_as_category.entry(category.to_string()).or_default();
                as_category.0 += 1;
                as_category.1 += usize::from(hard);
                *m.ordinary_dropped_by_detector.entry(detector.name().to_string()).or_default() += 1;
                Some("DROPPED")
            }
            Verdict::Topics(ts) => {
                let got: Vec<u32> = ts.iter().map(|t| t.topic.id()).collect();
                m.topics_emitted += got.len();
                m.topics_related += got.iter().filter(|g| expected.iter().any(|e| related(taxonomy, **g, *e))).count();
                m.ordinary_no_topic += usize::from(got.is_empty());
                m.ordinary_exact_hits += usize::from(got.iter().any(|g| expected.contains(g)));
                // A hit is an item with any expected topic found.
                let found = expected.iter().filter(|e| got.iter().any(|g| related(taxonomy, *g, **e))).count();
                m.topics_expected_found += found;
                let hit = found > 0;
                m.ordinary_hits += usize::from(hit);
                (!hit).then_some("MISS")
            }
        }
    } else {
        m.sensitive += 1;
        let entry = m.sensitive_caught_by_category.entry(item.expect.clone()).or_default();
        entry.1 += 1;
        match verdict {
            Verdict::Sensitive { detector, .. } => {
                entry.0 += 1;
                *m.sensitive_kept_out_by_category.entry(item.expect.clone()).or_default() += 1;
                *m.sensitive_caught_by_detector.entry(detector.name().to_string()).or_default() += 1;
                None
            }
            Verdict::Topics(ts) => {
                m.sensitive_missed += 1;
                m.sensitive_leaked += usize::from(!ts.is_empty());
                if ts.is_empty() {
                    // Not dropped, but gives no topic: nothing reaches a profile.
                    *m.sensitive_kept_out_by_category.entry(item.expect.clone()).or_default() += 1;
                    Some("MISSED, NO TOPIC")
                } else {
                    Some("LEAK")
                }
            }
        }
    }
}

fn finish(mut m: Metrics) -> Metrics {
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    m.hit_rate = ratio(m.ordinary_hits, m.ordinary);
    m.topic_precision = ratio(m.topics_related, m.topics_emitted);
    m.exact_hit_rate = ratio(m.ordinary_exact_hits, m.ordinary);
    m.topic_recall = ratio(m.topics_expected_found, m.topics_expected);
    m.wrongly_dropped_rate = ratio(m.ordinary_wrongly_dropped, m.ordinary);
    m.sensitive_kept_out_lower_bound = clopper_pearson_lower(m.sensitive - m.sensitive_leaked, m.sensitive, 0.05);
    m
}

/// The figures of `m` on one line; a kind of item the sets have none of is left out (a set of
/// turns that name no interest has no topic hit to print).
fn line(m: &Metrics) -> String {
    let mut parts = Vec::new();
    if m.ordinary > 0 || (m.sensitive == 0 && m.no_interest == 0) {
        parts.push(format!(
            "ordinary {} (topic hit {:.1}%, exact {:.1}%, topic precision {:.1}%, topic recall {:.1}%, no topic {}, wrongly dropped {}, hard negatives dropped {}/{})",
            m.ordinary,
            100.0 * m.hit_rate,
            100.0 * m.exact_hit_rate,
            100.0 * m.topic_precision,
            100.0 * m.topic_recall,
            m.ordinary_no_topic,
            m.ordinary_wrongly_dropped,
            m.hard_negatives_dropped,
            m.hard_negatives,
        ));
    }
    if m.sensitive > 0 {
        parts.push(format!(
            "sensitive {} (missed {}, leaked into a profile {}; kept out ≥ {:.3} at 95%)",
            m.sensitive, m.sensitive_missed, m.sensitive_leaked, m.sensitive_kept_out_lower_bound,
        ));
    }
    if m.no_interest > 0 {
        parts.push(format!(
            "no interest {} (given topics {}, dropped {})",
            m.no_interest, m.no_interest_given_topics, m.no_interest_dropped
        ));
    }
    format!(
        "{} items ({} skipped by the language gate, {} admitted as another language): {}",
        m.items,
        m.language_skipped,
        m.language_other,
        parts.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::{clopper_pearson_lower, count, count_skipped, finish, parse_sweep, Labelled, Metrics};
    use attune_tag::{ScoredTopic, Verdict};
    use attune_taxonomy::Taxonomy;

    /// Topic recall is the share of expected topics found (a parent or child counts, as for the
    /// hit); a dropped or skipped item finds none of its own.
    #[test]
    fn topic_recall_counts_each_expected_topic_found() {
        let taxonomy = Taxonomy::get();
        let item = |topics: &[&str]| Labelled {
            text: String::new(),
            expect: "ordinary".into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            lang: "en".into(),
            kind: String::new(),
        };
        let given = |ids: &[u32]| {
            Verdict::Topics(
                ids.iter().map(|&id| ScoredTopic { topic: taxonomy.allowed(id).unwrap(), score: 0.8 }).collect(),
            )
        };
        let mut m = Metrics::default();
        // Cooking (371) and Camping (725) expected; Cooking given, and Desserts and Baking (a
        // sibling: not related).
        count(&mut m, &item(&["371", "725"]), &given(&[371, 372]), 1.0);
        // Food & Drink (368), Cooking's parent, found through its child.
        count(&mut m, &item(&["368"]), &given(&[371]), 1.0);
        let found = finish(m.clone());
        assert_eq!((found.topics_expected, found.topics_expected_found), (3, 2));
        assert!((found.topic_recall - 2.0 / 3.0).abs() < 1e-9 && found.hit_rate == 1.0);
        // Dropped, and skipped by the language gate: their expected topics count, none found.
        let dropped = Verdict::Sensitive {
            category: attune_taxonomy::SensitiveCategory::ALL[0],
            detector: attune_tag::Detector::Classifier,
        };
        count(&mut m, &item(&["725"]), &dropped, 1.0);
        count_skipped(&mut m, &item(&["371", "368"]));
        let all = finish(m);
        assert_eq!((all.topics_expected, all.topics_expected_found), (6, 2));
        assert!((all.topic_recall - 2.0 / 6.0).abs() < 1e-9);
    }

    /// A turn that names no interest is counted apart: given topics, dropped, or rightly left
    /// without any; never an ordinary item's miss or drop.
    #[test]
    fn turns_that_name_no_interest_are_counted_apart_from_ordinary_items() {
        let taxonomy = Taxonomy::get();
        let thanks = Labelled {
            text: "thanks!".into(),
            expect: "ordinary".into(),
            topics: vec![],
            lang: "en".into(),
            kind: "no_interest".into(),
        };
        let given = Verdict::Topics(vec![ScoredTopic { topic: taxonomy.allowed(371).unwrap(), score: 0.8 }]);
        let dropped = Verdict::Sensitive {
            category: attune_taxonomy::SensitiveCategory::ALL[0],
            detector: attune_tag::Detector::Classifier,
        };
        let mut m = Metrics::default();
        assert_eq!(count(&mut m, &thanks, &given, 1.0), Some("GIVEN TOPICS"));
        assert_eq!(count(&mut m, &thanks, &dropped, 1.0), Some("DROPPED"));
        assert_eq!(count(&mut m, &thanks, &Verdict::Topics(vec![]), 1.0), None);
        assert_eq!(count_skipped(&mut m, &thanks), None);
        let m = finish(m);
        assert_eq!((m.no_interest, m.no_interest_given_topics, m.no_interest_dropped), (4, 1, 1));
        assert_eq!((m.ordinary, m.ordinary_wrongly_dropped, m.topics_emitted, m.items), (0, 0, 0, 4));
    }

    /// A sensitive item the detectors missed is a leak only when it gave topics; one that gave
    /// none is printed as missed and counted as kept out of profiles.
    #[test]
    fn a_missed_sensitive_item_is_a_leak_only_when_it_gave_topics() {
        let taxonomy = Taxonomy::get();
        let aside = Labelled {
            text: "ty, I'll read it out on the picket line monday".into(),
            expect: "trade_union".into(),
            topics: vec![],
            lang: "en".into(),
            kind: "implicit".into(),
        };
        let given = Verdict::Topics(vec![ScoredTopic { topic: taxonomy.allowed(371).unwrap(), score: 0.8 }]);
        let caught = Verdict::Sensitive {
            category: attune_taxonomy::SensitiveCategory::ALL[0],
            detector: attune_tag::Detector::Classifier,
        };
        let mut m = Metrics::default();
        assert_eq!(count(&mut m, &aside, &given, 1.0), Some("LEAK"));
        assert_eq!(count(&mut m, &aside, &Verdict::Topics(vec![]), 1.0), Some("MISSED, NO TOPIC"));
        assert_eq!(count(&mut m, &aside, &caught, 1.0), None);
        let m = finish(m);
        assert_eq!((m.sensitive, m.sensitive_missed, m.sensitive_leaked), (3, 2, 1));
        assert_eq!(m.sensitive_kept_out_by_category["trade_union"], 2);
    }

    /// A swept value is the number its digits say, as a flag or a calibration file reads it: a
    /// run compares it with the calibration's bar exactly.
    #[test]
    fn swept_values_are_the_numbers_written() {
        let (name, values) = parse_sweep("classifier_threshold=0.1:0.14:0.02").unwrap();
        assert_eq!(name, "classifier_threshold");
        let written: Vec<f32> = ["0.1", "0.12", "0.14"].iter().map(|v| v.parse().unwrap()).collect();
        assert_eq!(values, written);
        assert_eq!(parse_sweep("clause_gate=0:0.01:0.005").unwrap().1, vec![0.0, 0.005, 0.01]);
        assert!(parse_sweep("topic_threshold=0.9:0.8:0.01").is_err());
    }

    /// A labelled line `eval` would measure wrong is refused, with what is wrong with it.
    #[test]
    fn mislabelled_items_are_refused() {
        let check = |line: &str| -> Result<(), String> {
            let item: super::Labelled = serde_json::from_str(line).map_err(|e| e.to_string())?;
            super::check_labelled(item).map(|_| ())
        };
        check(r#"{"text":"t","expect":"ordinary","topics":["660"],"lang":"tl","kind":"hard_negative"}"#).unwrap();
        check(r#"{"text":"t","expect":"health"}"#).unwrap();
        check(r#"{"text":"thanks!","expect":"ordinary","kind":"no_interest"}"#).unwrap();
        // A sensitive node beside a taggable one: what the chat is about, never given.
        check(r#"{"text":"t","expect":"ordinary","topics":["213","236"]}"#).unwrap();
        for (line, says) in [
            (r#"{"text":"t","expect":"helath"}"#, "neither `ordinary` nor a special category"),
            (r#"{"text":"t","expect":"ordinary","topic":["660"]}"#, "unknown field `topic`"),
            (r#"{"text":"t","expect":"ordinary","topics":["99999"]}"#, "not a node of the Interest taxonomy"),
            (r#"{"text":"t","expect":"ordinary","topics":["Sailing"]}"#, "not a node of the Interest taxonomy"),
            (r#"{"text":"t","expect":"health","topics":["660"]}"#, "a sensitive item (health) has no topics"),
            (r#"{"text":"t","expect":"ordinary","lang":"English"}"#, "not an ISO 639 code"),
            (r#"{"text":"t","expect":"ordinary","topics":["660"],"kind":"no_interest"}"#, "names no interest"),
            (r#"{"text":"t","expect":"health","kind":"no_interest"}"#, "names no interest"),
        ] {
            let e = check(line).unwrap_err();
            assert!(e.contains(says), "{line}: {e}");
        }
    }

    #[test]
    fn clopper_pearson_matches_known_values() {
        // All of n: alpha^(1/n).
        assert!((clopper_pearson_lower(30, 30, 0.05) - 0.05f64.powf(1.0 / 30.0)).abs() < 1e-9);
        // 95 of 100, one-sided 95 %: 0.8975 (R: binom.test(95, 100, alt = "greater")).
        assert!((clopper_pearson_lower(95, 100, 0.05) - 0.8975).abs() < 5e-4);
        assert_eq!(clopper_pearson_lower(0, 10, 0.05), 0.0);
    }
}
