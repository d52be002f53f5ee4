//! What every store shares once its rows are read: evidence rows become profiles (decay, score,
//! the taxonomy checked again) and explanations the same way in SQLite and PostgreSQL, so the
//! two give byte-identical exports of the same evidence.

use crate::{EvidenceItem, Profile, ProfileTopic, Scoring, StoreError, TopicEvidence, PROFILE_SCHEMA_ID};
use attune_event::{Product, Source};
use attune_taxonomy::Taxonomy;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeSet;

/// One stored (event, topic) row.
pub(crate) struct EvidenceRow {
    pub topic_id: u32,
    pub event_id: String,
    pub product: Product,
    pub captured_at: DateTime<Utc>,
    pub score: f32,
    pub sources: Vec<Source>,
}

impl EvidenceRow {
    /// From the stored columns (product name, capture time in ms, `words,picture` sources).
    pub fn from_columns(
        topic_id: u32,
        event_id: String,
        product: &str,
        captured_ms: i64,
        score: f32,
        sources: &str,
    ) -> EvidenceRow {
        EvidenceRow {
            topic_id,
            event_id,
            product: Product::parse(product).unwrap_or(Product::Assistant),
            captured_at: Utc.timestamp_millis_opt(captured_ms).single().unwrap_or_default(),
            score,
            sources: sources.split(',').filter_map(Source::parse).collect(),
        }
    }
}

/// Build a user's profile from their evidence rows sorted by (topic, event); `provenance` is
/// asked (taxonomy version, model set) only when something is left to export.
pub(crate) fn assemble(
    user_id: &str,
    rows: &[EvidenceRow],
    provenance: impl FnOnce() -> Result<Option<(String, String)>, StoreError>,
    scoring: &Scoring,
) -> Result<Option<Profile>, StoreError> {
    // A point in time: what was captured after `as_of` was not known then.
    let rows: Vec<&EvidenceRow> = rows.iter().filter(|r| r.captured_at <= scoring.as_of).collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let taxonomy = Taxonomy::get();
    let (tax_version, model_set) = provenance()?.unwrap_or_else(|| (taxonomy.version().to_string(), String::new()));
    let mut topics = Vec::new();
    for group in rows.chunk_by(|a, b| a.topic_id == b.topic_id) {
        // Checked again on the way out: a node marked sensitive after it was stored, or a
        // row written by something else, never reaches an export.
        let Ok(topic) = taxonomy.allowed(group[0].topic_id) else { continue };
        let mut weight = 0.0f64;
        let mut products = BTreeSet::new();
        for row in group {
            let age_days = (scoring.as_of - row.captured_at).num_milliseconds().max(0) as f64 / 86_400_000.0;
            weight += row.score as f64 * 0.5f64.powf(age_days / scoring.half_life_days);
            products.insert(row.product);
        }
        topics.push(ProfileTopic {
            id: topic,
            name: topic.name(),
            score: score(weight),
            evidence: group.len() as u64,
            first_seen: group.iter().map(|r| r.captured_at).min().expect("non-empty group"),
            last_seen: group.iter().map(|r| r.captured_at).max().expect("non-empty group"),
            products: products.into_iter().collect(),
        });
    }
    // The scores are multiples of 0.0001; the margin keeps `--min-score 0.0003` from
    // leaving out a 0.0003 that f64 holds a hair below it.
    topics.retain(|t| t.score + 1e-9 >= scoring.min_score);
    if topics.is_empty() {
        return Ok(None);
    }
    topics.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.id().cmp(&b.id.id())));
    if let Some(k) = scoring.top_k {
        topics.truncate(k.max(1));
    }
    Ok(Some(Profile {
        schema: PROFILE_SCHEMA_ID,
        user_id: user_id.to_string(),
        updated_at: topics.iter().map(|t| t.last_seen).max().expect("non-empty"),
        scored_at: scoring.as_of,
        half_life_days: scoring.half_life_days,
        taxonomy: tax_version,
        model_set,
        topics,
    }))
}

/// `attune explain`'s grouping of a user's rows sorted by (topic, capture time, event).
pub(crate) fn explain_rows(rows: &[EvidenceRow]) -> Vec<TopicEvidence> {
    let taxonomy = Taxonomy::get();
    rows.chunk_by(|a, b| a.topic_id == b.topic_id)
        .filter_map(|group| {
            let topic = taxonomy.allowed(group[0].topic_id).ok()?;
            Some(TopicEvidence {
                topic_id: topic.id().to_string(),
                name: topic.name().to_string(),
                events: group
                    .iter()
                    .map(|r| EvidenceItem {
                        event_id: r.event_id.clone(),
                        product: r.product,
                        captured_at: r.captured_at,
                        score: r.score,
                        sources: r.sources.clone(),
                    })
                    .collect(),
            })
        })
        .collect()
}

/// Decimal places of an exported score.
const SCORE_STEPS: f64 = 10_000.0;

/// A topic's exported score from its decayed evidence weight: `1 − e^(−weight)` rounded *down* to
/// 4 decimals, so it stays in [0, 1) as the schema promises — rounding to nearest gave 1.0 from a
/// weight of 9.9 on (about 25 chats on one topic), and in f64 `1 − e^(−w)` is exactly 1 from
/// w ≈ 37 — and never falls as evidence is added (it levels off at 0.9999).
pub(crate) fn score(weight: f64) -> f64 {
    let exact = -(-weight.max(0.0)).exp_m1();
    (exact * SCORE_STEPS).floor().clamp(0.0, SCORE_STEPS - 1.0) / SCORE_STEPS
}
