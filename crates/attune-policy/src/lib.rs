//! The policy gate: the only way to get an [`Admitted`] event.
//!
//! Decoders and models take `Admitted<Event>`, and `Admitted` has no public constructor, so an
//! event the policy excludes (jurisdiction, effective date, opt-out) cannot reach them: the
//! compiler checks it.
//!
//! ```compile_fail
//! // Outside this crate an Admitted cannot be built by hand:
//! fn forge(e: attune_event::Event) -> attune_policy::Admitted<attune_event::Event> {
//!     attune_policy::Admitted { inner: e }
//! }
//! ```

mod countries;

use attune_event::Event;
use attune_lang::{Language, LanguageGate};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use countries::{is_iso_3166_alpha2, DEFAULT_EXCLUDED_COUNTRIES};

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("policy file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot read opt-out list {path}: {source}")]
    OptOutList { path: PathBuf, source: std::io::Error },
    #[error("`{code}` in excluded_countries is not an ISO 3166-1 alpha-2 code")]
    BadCountry { code: String },
    #[error("supported_languages: {0}")]
    Language(#[from] attune_lang::LangError),
}

/// Why the gate turned an event away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Exclusion {
    /// The user's country is excluded, absent, or not a known country (fail closed).
    Jurisdiction,
    /// Captured before the policy's effective date.
    EffectiveDate,
    /// The user opted out.
    OptOut,
    /// The user was erased with `attune forget` and not un-forgotten since.
    Forgotten,
}

impl Exclusion {
    pub fn as_str(self) -> &'static str {
        match self {
            Exclusion::Jurisdiction => "jurisdiction",
            Exclusion::EffectiveDate => "effective_date",
            Exclusion::OptOut => "opt_out",
            Exclusion::Forgotten => "forgotten",
        }
    }
}

/// Proof that the gate let `inner` through. Only [`Policy::admit`] makes one.
#[derive(Debug)]
pub struct Admitted<E> {
    inner: E,
}

impl<E> Admitted<E> {
    pub fn get(&self) -> &E {
        &self.inner
    }

    /// Keep the proof while changing what it carries (e.g. an admitted event's decoded payload):
    /// what comes from an admitted event is admitted too.
    pub fn map<F, T>(self, f: F) -> Admitted<T>
    where
        F: FnOnce(E) -> T,
    {
        Admitted { inner: f(self.inner) }
    }

    /// Fallible [`Admitted::map`].
    pub fn try_map<T, Err>(self, f: impl FnOnce(E) -> Result<T, Err>) -> Result<Admitted<T>, Err> {
        Ok(Admitted { inner: f(self.inner)? })
    }

    /// Borrow the admitted value, keeping the proof.
    pub fn as_ref(&self) -> Admitted<&E> {
        Admitted { inner: &self.inner }
    }

    pub fn into_inner(self) -> E {
        self.inner
    }
}

/// The policy as written in a TOML file; every key is optional and falls back to the default.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    /// RFC 3339; events captured before it are not used.
    effective_from: Option<String>,
    /// Replaces the default list (EU 27 + IS, LI, NO + GB + KR).
    excluded_countries: Option<Vec<String>>,
    /// Added to the excluded list, keeping the defaults.
    also_excluded_countries: Option<Vec<String>>,
    /// User ids that opted out.
    opt_out_users: Option<Vec<String>>,
    /// A file of opted-out user ids, one a line, relative to the policy file.
    opt_out_file: Option<PathBuf>,
    /// ISO 639-1 codes of the languages whose text may be tagged; replaces the default list
    /// (the 12 validated: `attune_lang::Language::DEFAULT_SUPPORTED`).
    supported_languages: Option<Vec<String>>,
    /// Whether romanised Hindi and Arabizi count as Hindi and Arabic (default true).
    accept_romanised: Option<bool>,
}

/// Users whose data was erased (`attune forget`): the gate turns their events away. The profile
/// store keeps the list (as keyed hashes); the gate only asks.
pub trait ForgottenUsers: Send + Sync {
    fn is_forgotten(&self, user_id: &str) -> bool;
}

impl<F: Fn(&str) -> bool + Send + Sync> ForgottenUsers for F {
    fn is_forgotten(&self, user_id: &str) -> bool {
        self(user_id)
    }
}

/// The rules the gate applies.
#[derive(Clone)]
pub struct Policy {
    effective_from: DateTime<Utc>,
    excluded: HashSet<String>,
    opt_out: HashSet<String>,
    forgotten: Option<Arc<dyn ForgottenUsers>>,
    supported_languages: Vec<Language>,
    accept_romanised: bool,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("effective_from", &self.effective_from)
            .field("excluded", &self.excluded)
            .field("opt_out", &self.opt_out.len())
            .field("forgotten", &self.forgotten.is_some())
            .field("supported_languages", &self.supported_languages)
            .field("accept_romanised", &self.accept_romanised)
            .finish()
    }
}

/// 2025-12-16T00:00:00Z: nothing captured before it is used.
pub fn default_effective_from() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-12-16T00:00:00Z").expect("constant").with_timezone(&Utc)
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            effective_from: default_effective_from(),
            excluded: DEFAULT_EXCLUDED_COUNTRIES.iter().map(|c| c.to_string()).collect(),
            opt_out: HashSet::new(),
            forgotten: None,
            supported_languages: Language::DEFAULT_SUPPORTED.to_vec(),
            accept_romanised: true,
        }
    }
}

impl Policy {
    /// Read a TOML policy file (keys: see the README).
    pub fn from_file(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read { path: path.into(), source })?;
        Policy::from_toml(&text, path.parent().unwrap_or(Path::new(".")), path)
    }

    fn from_toml(text: &str, base: &Path, path: &Path) -> Result<Policy, PolicyError> {
        let parse_err = |message: String| PolicyError::Parse { path: path.into(), message };
        let file: PolicyFile = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        let mut policy = Policy::default();
        if let Some(t) = file.effective_from {
            policy.effective_from = DateTime::parse_from_rfc3339(&t)
                .map_err(|e| parse_err(format!("effective_from: {e}")))?
                .with_timezone(&Utc);
        }
        if let Some(list) = file.excluded_countries {
            policy.excluded = checked_countries(&list)?;
        }
        if let Some(list) = file.also_excluded_countries {
            policy.excluded.extend(checked_countries(&list)?);
        }
        policy.opt_out.extend(file.opt_out_users.unwrap_or_default());
        if let Some(list) = file.opt_out_file {
            let list = base.join(list);
            let text =
                std::fs::read_to_string(&list).map_err(|source| PolicyError::OptOutList { path: list, source })?;
            policy
                .opt_out
                .extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from));
        }
        if let Some(codes) = file.supported_languages {
            if codes.is_empty() {
                return Err(attune_lang::LangError::NoSupportedLanguages.into());
            }
            policy.supported_languages =
                codes.iter().map(|c| Language::from_code(c.trim())).collect::<Result<Vec<_>, _>>()?;
        }
        if let Some(accept) = file.accept_romanised {
            policy.accept_romanised = accept;
        }
        Ok(policy)
    }

    /// The languages whose text may be tagged.
    pub fn supported_languages(&self) -> &[Language] {
        &self.supported_languages
    }

    /// The language gate this policy asks for: text outside [`Policy::supported_languages`], or
    /// not identified with confidence, is skipped (`skipped.unsupported_language`).
    pub fn language_gate(&self) -> Result<LanguageGate, PolicyError> {
        self.language_gate_within(Language::ALL)
    }

    /// The language gate for a text model calibrated on `validated` languages: the policy's
    /// supported languages that are among them (a language the model's figures do not hold for
    /// is skipped, not tagged). An error when none is left.
    pub fn language_gate_within(&self, validated: &[Language]) -> Result<LanguageGate, PolicyError> {
        let gate = LanguageGate::new(&self.supported_languages, LanguageGate::DEFAULT_MIN_CONFIDENCE)?;
        Ok(gate.accept_romanised(self.accept_romanised).admitting(validated)?)
    }

    pub fn effective_from(&self) -> DateTime<Utc> {
        self.effective_from
    }

    /// The same policy, also turning away the events of `users` (a store's forgotten users).
    pub fn with_forgotten_users(mut self, users: Arc<dyn ForgottenUsers>) -> Policy {
        self.forgotten = Some(users);
        self
    }

    /// The gate. Checks run in a fixed order, so each excluded event has one reason:
    /// forgotten, opt-out, then jurisdiction, then effective date. An excluded event is
    /// consumed: its content is dropped here, before anything could read it.
    pub fn admit(&self, event: Event) -> Result<Admitted<Event>, Exclusion> {
        if self.forgotten.as_ref().is_some_and(|f| f.is_forgotten(&event.user_id)) {
            return Err(Exclusion::Forgotten);
        }
        if self.opt_out.contains(&event.user_id) {
            return Err(Exclusion::OptOut);
        }
        let allowed_country = match &event.country {
            None => false, // absent: fail closed
            Some(c) => is_iso_3166_alpha2(c.as_str()) && !self.excluded.contains(c.as_str()),
        };
        if !allowed_country {
            return Err(Exclusion::Jurisdiction);
        }
        if event.captured_at < self.effective_from {
            return Err(Exclusion::EffectiveDate);
        }
        Ok(Admitted { inner: event })
    }
}

fn checked_countries(list: &[String]) -> Result<HashSet<String>, PolicyError> {
    list.iter()
        .map(|c| {
            let c = c.trim().to_ascii_uppercase();
            if is_iso_3166_alpha2(&c) {
                Ok(c)
            } else {
                Err(PolicyError::BadCountry { code: c })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_event::{CountryCode, Product, Turn};

    fn event(country: Option<&str>, at: &str, user: &str) -> Event {
        Event {
            event_id: "e".into(),
            user_id: user.into(),
            country: country.map(CountryCode::new),
            product: Product::Assistant,
            captured_at: DateTime::parse_from_rfc3339(at).unwrap().with_timezone(&Utc),
            turns: vec![Turn::user("hi")],
            media: None,
        }
    }

    fn reason(p: &Policy, e: Event) -> Option<Exclusion> {
        p.admit(e).err()
    }

    #[test]
    fn default_excludes_eu_eea_uk_kr_and_unknown_countries() {
        let p = Policy::default();
        for c in ["DE", "fr", "IE", "IS", "LI", "NO", "GB", "KR", "GR", "CY", "MT", "HR"] {
            assert_eq!(reason(&p, event(Some(c), "2026-01-01T00:00:00Z", "u")), Some(Exclusion::Jurisdiction), "{c}");
        }
        // Absent, empty-ish or unknown codes fail closed; so do non-ISO aliases like UK and EL.
        for c in [None, Some("XX"), Some("UK"), Some("EL"), Some("USA"), Some("E1")] {
            assert_eq!(reason(&p, event(c, "2026-01-01T00:00:00Z", "u")), Some(Exclusion::Jurisdiction), "{c:?}");
        }
        for c in ["US", "us", "BR", "ID", "JP", "CH", "IN"] {
            assert!(p.admit(event(Some(c), "2026-01-01T00:00:00Z", "u")).is_ok(), "{c}");
        }
        assert_eq!(DEFAULT_EXCLUDED_COUNTRIES.len(), 27 + 3 + 2);
    }

    #[test]
    fn effective_date_boundary_is_inclusive() {
        let p = Policy::default();
        assert_eq!(reason(&p, event(Some("US"), "2025-12-15T23:59:59Z", "u")), Some(Exclusion::EffectiveDate));
        // 2025-12-16T01:00+02:00 is 2025-12-15T23:00Z: before the start.
        assert_eq!(reason(&p, event(Some("US"), "2025-12-16T01:00:00+02:00", "u")), Some(Exclusion::EffectiveDate));
        assert!(p.admit(event(Some("US"), "2025-12-16T00:00:00Z", "u")).is_ok());
    }

    #[test]
    fn policy_file_overrides_and_opt_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("optout.txt"), "# opted out\nu9\n\n").unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(
            &path,
            "effective_from = \"2026-03-01T00:00:00Z\"\nexcluded_countries = [\"us\"]\nopt_out_users = [\"u7\"]\nopt_out_file = \"optout.txt\"\n",
        )
        .unwrap();
        let p = Policy::from_file(&path).unwrap();
        assert_eq!(reason(&p, event(Some("US"), "2026-06-01T00:00:00Z", "u")), Some(Exclusion::Jurisdiction));
        assert!(p.admit(event(Some("DE"), "2026-06-01T00:00:00Z", "u")).is_ok());
        assert_eq!(reason(&p, event(Some("DE"), "2026-02-01T00:00:00Z", "u")), Some(Exclusion::EffectiveDate));
        assert_eq!(reason(&p, event(Some("DE"), "2026-06-01T00:00:00Z", "u7")), Some(Exclusion::OptOut));
        assert_eq!(reason(&p, event(Some("DE"), "2026-06-01T00:00:00Z", "u9")), Some(Exclusion::OptOut));
        // Still fail closed on unknown codes whatever the list says.
        assert_eq!(reason(&p, event(Some("ZZ"), "2026-06-01T00:00:00Z", "u")), Some(Exclusion::Jurisdiction));
    }

    #[test]
    fn bad_policy_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        for bad in [
            "excluded_countries = [\"Germany\"]",
            "typo_key = 1",
            "effective_from = \"soon\"",
            "supported_languages = []",
            "supported_languages = [\"en\", \"klingon\"]",
            "supported_languages = [\"sw\", \"xx\"]",
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(Policy::from_file(&path).is_err(), "{bad}");
        }
    }

    #[test]
    fn supported_languages_default_and_narrowed() {
        let gate = Policy::default().language_gate().unwrap();
        assert_eq!(gate.supported(), Language::DEFAULT_SUPPORTED);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "supported_languages = [\"en\", \"es\"]\naccept_romanised = false\n").unwrap();
        let gate = Policy::from_file(&path).unwrap().language_gate().unwrap();
        assert_eq!(gate.supported(), &[Language::English, Language::Spanish]);
        assert!(gate.admit("Quiero unas botas de fútbol para césped artificial, ¿cuáles me recomiendas?").is_ok());
        // Indonesian is identified, and no longer supported: not admitted.
        assert!(gate.admit("Rencana naik Rinjani lewat jalur Sembalun, camp 2 malam di Plawangan").is_err());
    }

    #[test]
    fn a_text_model_narrows_what_is_admitted_not_what_is_identified() {
        let english_only = Policy::default().language_gate_within(&[Language::English]).unwrap();
        assert_eq!(english_only.admitted(), &[Language::English]);
        // Short English lines whose confidence lingua shares with other supported languages are
        // still English: the others are identified, then turned away.
        for line in [
            "any tips for a first sailing trip on a small dinghy?",
            "which tent and sleeping bag should I take camping in Yosemite?",
        ] {
            assert!(english_only.admit(line).is_ok(), "{line}");
        }
        let spanish = "Quiero unas botas de fútbol para césped artificial, ¿cuáles me recomiendas?";
        assert!(matches!(
            english_only.admit(spanish),
            Err(attune_lang::LanguageDecision::Unsupported { language: Language::Spanish, .. })
        ));
        assert!(Policy::default().language_gate_within(&[]).is_err());
    }

    #[test]
    fn forgotten_users_are_turned_away_before_anything_else() {
        let p = Policy::default().with_forgotten_users(Arc::new(|u: &str| u == "gone"));
        // Forgotten comes first, whatever else would exclude the event.
        assert_eq!(reason(&p, event(Some("US"), "2026-01-01T00:00:00Z", "gone")), Some(Exclusion::Forgotten));
        assert_eq!(reason(&p, event(Some("DE"), "2025-01-01T00:00:00Z", "gone")), Some(Exclusion::Forgotten));
        assert!(p.admit(event(Some("US"), "2026-01-01T00:00:00Z", "kept")).is_ok());
        assert_eq!(Exclusion::Forgotten.as_str(), "forgotten");
    }

    #[test]
    fn admitted_carries_its_proof_through_map() {
        let a = Policy::default().admit(event(Some("US"), "2026-01-01T00:00:00Z", "u")).unwrap();
        let turns = a.map(|e| e.turns);
        assert_eq!(turns.get(), &[Turn::user("hi")]);
    }
}
