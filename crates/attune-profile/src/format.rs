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

/// What an OpenRTB export writes besides the segments.
#[derive(Debug, Clone)]
pub struct OpenRtbOptions {
    /// `data.name`: the data provider (the spec's examples use the provider's domain).
    pub provider: String,
    /// `user.id`: the id to write for a user (see [`OpenRtbUserId`]).
    pub user_id: OpenRtbUserId,
}

/// Which id an OpenRTB `user` carries. The default is a keyed hash: an exchange never sees the
/// internal id unless asked for it.
#[derive(Debug, Clone)]
pub enum OpenRtbUserId {
    /// HMAC-SHA256 of the internal id under `key`, in hex, domain-separated from the store's
    /// suppression hashes (the same user hashes differently there).
    Hashed { key: Vec<u8> },
    /// The internal id as the store has it.
    Internal,
    /// No `user.id` at all (the caller joins on its own key).
    None,
}

impl OpenRtbUserId {
    /// [`OpenRtbUserId::Hashed`] under a key given in hex (at least 16 bytes).
    pub fn hashed_with_hex_key(key: &str) -> Result<OpenRtbUserId, String> {
        match crate::unhex(key.trim()) {
            Some(key) if key.len() >= 16 => Ok(OpenRtbUserId::Hashed { key }),
            _ => Err("the user id key must be at least 32 hex digits (16 bytes), an even number".into()),
        }
    }

    fn for_user(&self, user_id: &str) -> Option<String> {
        match self {
            OpenRtbUserId::Hashed { key } => {
                Some(crate::hex(&crate::user_hash(key, &format!("openrtb-user-id\0{user_id}"))))
            }
            OpenRtbUserId::Internal => Some(user_id.to_string()),
            OpenRtbUserId::None => None,
        }
    }
}

/// The profile as an OpenRTB 2.6 `user` object with one `data` entry (segtax 4 = Audience 1.1).
pub fn openrtb_user(profile: &Profile, options: &OpenRtbOptions) -> serde_json::Value {
    let segments: Vec<_> = profile
        .topics
        .iter()
        .map(|t| serde_json::json!({"id": t.id.id().to_string(), "name": t.name, "value": format!("{:.4}", t.score)}))
        .collect();
    let mut user = serde_json::json!({
        "data": [{"name": options.provider, "ext": {"segtax": OPENRTB_SEGTAX}, "segment": segments}]
    });
    if let Some(id) = options.user_id.for_user(&profile.user_id) {
        user["id"] = id.into();
    }
    serde_json::json!({ "user": user })
}
