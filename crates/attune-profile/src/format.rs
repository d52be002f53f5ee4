use attune_event::Product;
use attune_taxonomy::{AllowedTopic, OPENRTB_SEGTAX};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// The `$id` of `schemas/attune.profile.v1.json`.
pub const PROFILE_SCHEMA_ID: &str = "attune.profile.v1";

/// One user's interest profile, as exported (`attune export --format profile`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Profile {
    pub schema: &'static str,
    pub user_id: String,
    /// Capture time of the newest evidence in the profile.
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// The instant the scores were decayed to.
    #[serde(serialize_with = "rfc3339")]
    pub scored_at: DateTime<Utc>,
    pub half_life_days: f64,
    pub taxonomy: String,
    pub model_set: String,
    pub topics: Vec<ProfileTopic>,
}

/// One topic of a profile. Holds an [`AllowedTopic`], so it cannot name a sensitive node.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProfileTopic {
    /// The IAB Audience 1.1 Unique ID, as a string.
    #[serde(serialize_with = "topic_id")]
    pub id: AllowedTopic,
    pub name: &'static str,
    /// In [0, 1): `1 - exp(-Σ evidence score × 0.5^(age / half-life))`, rounded down to 4
    /// decimals (at most 0.9999).
    pub score: f64,
    /// How many events gave this topic.
    pub evidence: u64,
    #[serde(serialize_with = "rfc3339")]
    pub first_seen: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub last_seen: DateTime<Utc>,
    pub products: Vec<Product>,
}

fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn topic_id<S: serde::Serializer>(t: &AllowedTopic, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.id().to_string())
}

/// The profile as an OpenRTB 2.6 `user` object with one `data` entry (segtax 4 = Audience 1.1).
pub fn openrtb_user(profile: &Profile) -> serde_json::Value {
    let segments: Vec<_> = profile
        .topics
        .iter()
        .map(|t| serde_json::json!({"id": t.id.id().to_string(), "name": t.name, "value": format!("{:.4}", t.score)}))
        .collect();
    serde_json::json!({
        "user": {
            "id": profile.user_id,
            "data": [{"name": "attune", "ext": {"segtax": OPENRTB_SEGTAX}, "segment": segments}]
        }
    })
}
