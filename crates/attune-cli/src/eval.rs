//! `attune eval`: the tagger's figures on a labelled set, for calibration and the README.

use anyhow::{Context, Result};
use attune_pipeline::TextEmbedder;
use attune_tag::{Segments, TextTagger, Verdict};
use attune_taxonomy::Taxonomy;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::time::Instant;

#[derive(Deserialize)]
struct Labelled {
    text: String,
    /// `ordinary` or a sensitive category name.
    expect: String,
    #[serde(default)]
    topics: Vec<String>,
}

#[derive(Serialize, Default)]
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
    ordinary_wrongly_dropped: usize,
    sensitive: usize,
    /// Sensitive items not dropped.
    sensitive_missed: usize,
    /// Sensitive items that would have put a topic in a profile.
    sensitive_leaked: usize,
    sensitive_caught_by_category: BTreeMap<String, (usize, usize)>,
    hit_rate: f64,
    topic_precision: f64,
    exact_hit_rate: f64,
    wrongly_dropped_rate: f64,
    items_per_s: f64,
}

fn related(taxonomy: &Taxonomy, a: u32, b: u32) -> bool {
    let parent = |x: u32| taxonomy.node(x).and_then(|n| n.parent);
    a == b || parent(a) == Some(b) || parent(b) == Some(a)
}

pub fn run(
    path: &Path,
    embedder: &mut dyn TextEmbedder,
    tagger: &TextTagger,
    show_errors: bool,
    json: bool,
    no_lexicon: bool,
) -> Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let items: Vec<Labelled> = std::io::BufReader::new(file)
        .lines()
        .filter(|l| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
        .map(|l| Ok(serde_json::from_str(&l?)?))
        .collect::<Result<_>>()
        .context("reading the labelled set")?;
    let taxonomy = Taxonomy::get();
    let started = Instant::now();
    let mut verdicts = Vec::with_capacity(items.len());
    for chunk in items.chunks(embedder.max_batch().max(1)) {
        let segs: Vec<Segments> = chunk.iter().map(|i| Segments::of(&i.text)).collect();
        let flat: Vec<String> = segs.iter().flat_map(|s| s.texts.iter().cloned()).collect();
        let vectors = embedder.run_batch(&flat)?;
        let mut at = 0;
        for (item, s) in chunk.iter().zip(&segs) {
            let n = s.texts.len();
            verdicts.push(if no_lexicon {
                tagger.tag_segments(s, &vectors[at..at + n])
            } else {
                tagger.tag(&item.text, s, &vectors[at..at + n])
            });
            at += n;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();

    let mut m = Metrics { items: items.len(), ..Default::default() };
    for (item, verdict) in items.iter().zip(&verdicts) {
        let expected: Vec<u32> = item.topics.iter().filter_map(|t| t.parse().ok()).collect();
        let shown = |what: &str| {
            if show_errors {
                let detail = match verdict {
                    Verdict::Sensitive { category, detector } => format!("sensitive {category} by {detector:?}"),
                    Verdict::Topics(ts) => ts
                        .iter()
                        .map(|t| format!("{} {} {:.3}", t.topic.id(), t.topic.name(), t.score))
                        .collect::<Vec<_>>()
                        .join("; "),
                };
                println!("{what}: [{}] expected {:?} got {detail}\n    {}", item.expect, item.topics, item.text);
            }
        };
        if item.expect == "ordinary" {
            m.ordinary += 1;
            match verdict {
                Verdict::Sensitive { .. } => {
                    m.ordinary_wrongly_dropped += 1;
                    shown("DROPPED");
                }
                Verdict::Topics(ts) => {
                    let got: Vec<u32> = ts.iter().map(|t| t.topic.id()).collect();
                    m.topics_emitted += got.len();
                    m.topics_related +=
                        got.iter().filter(|g| expected.iter().any(|e| related(taxonomy, **g, *e))).count();
                    if got.is_empty() {
                        m.ordinary_no_topic += 1;
                    }
                    if got.iter().any(|g| expected.contains(g)) {
                        m.ordinary_exact_hits += 1;
                    }
                    if got.iter().any(|g| expected.iter().any(|e| related(taxonomy, *g, *e))) {
                        m.ordinary_hits += 1;
                    } else {
                        shown("MISS");
                    }
                }
            }
        } else {
            m.sensitive += 1;
            let entry = m.sensitive_caught_by_category.entry(item.expect.clone()).or_default();
            entry.1 += 1;
            match verdict {
                Verdict::Sensitive { .. } => entry.0 += 1,
                Verdict::Topics(ts) => {
                    m.sensitive_missed += 1;
                    if !ts.is_empty() {
                        m.sensitive_leaked += 1;
                    }
                    shown("LEAK");
                }
            }
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    m.hit_rate = ratio(m.ordinary_hits, m.ordinary);
    m.topic_precision = ratio(m.topics_related, m.topics_emitted);
    m.exact_hit_rate = ratio(m.ordinary_exact_hits, m.ordinary);
    m.wrongly_dropped_rate = ratio(m.ordinary_wrongly_dropped, m.ordinary);
    m.items_per_s = if elapsed > 0.0 { items.len() as f64 / elapsed } else { 0.0 };
    if json {
        println!("{}", serde_json::to_string_pretty(&m)?);
    } else {
        println!(
            "{} items: ordinary {} (topic hit {:.1}%, exact {:.1}%, topic precision {:.1}%, no topic {}, wrongly dropped {}); sensitive {} (missed {}, leaked into a profile {}); {:.0} items/s",
            m.items,
            m.ordinary,
            100.0 * m.hit_rate,
            100.0 * m.exact_hit_rate,
            100.0 * m.topic_precision,
            m.ordinary_no_topic,
            m.ordinary_wrongly_dropped,
            m.sensitive,
            m.sensitive_missed,
            m.sensitive_leaked,
            m.items_per_s
        );
        for (cat, (caught, n)) in &m.sensitive_caught_by_category {
            println!("  {cat:<18} caught {caught}/{n}");
        }
    }
    Ok(())
}
