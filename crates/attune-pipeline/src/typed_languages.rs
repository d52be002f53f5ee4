//! The languages each user types in, remembered through a run: the best clue to what their
//! recordings are spoken in. A user's country names the languages most people there speak; their
//! own chats name theirs (a Spanish speaker in the US, an Indian who writes English, an Indonesian
//! in Malaysia). Speech detection prefers the user's typed languages, then their country's.
//!
//! Only chats count: words that come with media (a prompt, a caption) are too short to be read
//! with confidence, and a transcript's language is what is being decided. What is kept is a
//! count per language and user, never words, under a 64-bit hash of the user id; a collision
//! costs at most a preference, which the language gate checks after decoding anyway.

use crate::Pending;
use attune_lang::{Language, LanguageGate};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// Users remembered at most (~30 bytes each: 30 MB). A run with more users stops remembering
/// new ones; those it has go on counting, and the rest fall back to their country's languages.
pub(crate) const MAX_USERS: usize = 1_000_000;

/// Chats per language and user in this run.
#[derive(Debug, Default)]
pub(crate) struct TypedLanguages {
    by_user: HashMap<u64, Tally>,
    /// Of the batch being flushed: events already counted by [`TypedLanguages::read_ahead`], so
    /// the text stage does not count them twice.
    counted_ahead: Vec<bool>,
}

/// Chats per language of one user: the [`TALLIED`] languages with the most chats, as (index in
/// [`Language::ALL`], count); counts saturate (only their order matters).
#[derive(Debug, Clone, Copy)]
struct Tally([(u8, u16); TALLIED]);

/// Languages kept per user: a fourth takes the place of the one with the fewest chats.
const TALLIED: usize = 3;
const NO_LANGUAGE: u8 = u8::MAX;
const _: () = assert!(Language::ALL.len() < NO_LANGUAGE as usize);

impl Tally {
    const EMPTY: Tally = Tally([(NO_LANGUAGE, 0); TALLIED]);

    fn add(&mut self, language: Language) {
        let k = index_of(language);
        if let Some(slot) = self.0.iter_mut().find(|(l, _)| *l == k) {
            slot.1 = slot.1.saturating_add(1);
        } else {
            // An empty slot has count 0, so it is the first taken.
            let fewest = self.0.iter_mut().min_by_key(|(_, n)| *n).expect("TALLIED > 0");
            *fewest = (k, 1);
        }
    }

    #[cfg(test)]
    fn count(&self, language: Language) -> u16 {
        let k = index_of(language);
        self.0.iter().find(|(l, _)| *l == k).map_or(0, |(_, n)| *n)
    }
}

fn user_key(user_id: &str) -> u64 {
    // SipHash with fixed keys: the same key for the same user all run long.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    user_id.hash(&mut hasher);
    hasher.finish()
}

fn index_of(language: Language) -> u8 {
    Language::ALL.iter().position(|&l| l == language).expect("every language is in Language::ALL") as u8
}

impl TypedLanguages {
    /// Forget everything: a new run.
    pub(crate) fn clear(&mut self) {
        self.by_user.clear();
        self.counted_ahead.clear();
    }

    /// Count one chat of `user_id` in `language`.
    fn count(&mut self, user_id: &str, language: Language) {
        let full = self.by_user.len() >= MAX_USERS;
        let tally = match self.by_user.entry(user_key(user_id)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(_) if full => return,
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Tally::EMPTY),
        };
        tally.add(language);
    }

    /// Before the batch's speech is decoded: the chats in this batch of the users who have a
    /// recording in it, read by the gate now (the text stage comes after speech). Every other
    /// chat is counted when the text stage reads it, at no extra cost.
    pub(crate) fn read_ahead(&mut self, work: &[Pending], gate: &LanguageGate) {
        self.counted_ahead = vec![false; work.len()];
        let speakers: std::collections::HashSet<&str> =
            work.iter().filter(|p| p.has_speech()).map(|p| p.event.get().user_id.as_str()).collect();
        if speakers.is_empty() {
            return;
        }
        for (i, p) in work.iter().enumerate() {
            let event = p.event.get();
            if p.decoded.is_some() || !speakers.contains(event.user_id.as_str()) {
                continue;
            }
            if let Some(words) = event.words() {
                if let Ok(text) = gate.admit(&words) {
                    self.count(&event.user_id, text.language());
                }
                self.counted_ahead[i] = true;
            }
        }
    }

    /// The text stage admitted chat `i` of the batch (words alone, no media) in `language`.
    pub(crate) fn chat_admitted(&mut self, i: usize, user_id: &str, language: Language) {
        if !self.counted_ahead.get(i).copied().unwrap_or(false) {
            self.count(user_id, language);
        }
    }

    /// The languages `user_id` has chatted in so far this run, most chats first (ties in
    /// [`Language::ALL`]'s order).
    pub(crate) fn of(&self, user_id: &str) -> Vec<Language> {
        let Some(tally) = self.by_user.get(&user_key(user_id)) else { return Vec::new() };
        let mut typed: Vec<(u8, u16)> = tally.0.iter().copied().filter(|&(k, _)| k != NO_LANGUAGE).collect();
        typed.sort_by_key(|&(k, n)| (std::cmp::Reverse(n), k));
        typed.into_iter().map(|(k, _)| Language::ALL[usize::from(k)]).collect()
    }
}

/// What is known of the language a user's recording is spoken in, among those the run can tag.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LikelyLanguages {
    /// Preferred in detection, most likely first: the languages the user chats in (most chats
    /// first), then their country's.
    pub(crate) preferred: Vec<Language>,
    /// The two strongest clues, each alone enough to try: the user's most typed language and
    /// their country's first, in that order (one, when they agree or one is unknown).
    pub(crate) claims: Vec<Language>,
    /// The user's chats named a language the run can tag.
    pub(crate) from_chats: bool,
}

impl LikelyLanguages {
    pub(crate) fn of(typed: &[Language], country: &str, admitted: &[Language]) -> LikelyLanguages {
        /// `languages` the run admits, each once, in order.
        fn admitted_once<'l>(
            languages: impl IntoIterator<Item = &'l Language>,
            admitted: &[Language],
        ) -> Vec<Language> {
            let mut kept: Vec<Language> = Vec::new();
            for &l in languages {
                if admitted.contains(&l) && !kept.contains(&l) {
                    kept.push(l);
                }
            }
            kept
        }
        let typed = admitted_once(typed, admitted);
        let of_country = admitted_once(attune_lang::languages_of_country(country), admitted);
        LikelyLanguages {
            preferred: admitted_once(typed.iter().chain(&of_country), admitted),
            claims: admitted_once(typed.first().into_iter().chain(of_country.first()), admitted),
            from_chats: !typed.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Language::*;

    #[test]
    fn the_most_typed_language_comes_first_then_the_country() {
        let mut typed = TypedLanguages::default();
        assert!(typed.of("u").is_empty());
        typed.count("u", Spanish);
        typed.count("u", English);
        typed.count("u", Spanish);
        typed.count("v", Indonesian);
        assert_eq!(typed.of("u"), vec![Spanish, English]);
        assert_eq!(typed.of("v"), vec![Indonesian]);
        let all = Language::DEFAULT_SUPPORTED;
        let likely = |typed: &[Language], country: &str, admitted: &[Language]| {
            let l = LikelyLanguages::of(typed, country, admitted);
            (l.preferred, l.claims, l.from_chats)
        };
        assert_eq!(likely(&typed.of("u"), "US", all), (vec![Spanish, English], vec![Spanish, English], true));
        assert_eq!(
            likely(&typed.of("v"), "MY", all),
            (vec![Indonesian, Malay, English], vec![Indonesian, Malay], true)
        );
        assert_eq!(likely(&[Malay, English], "MY", all), (vec![Malay, English], vec![Malay], true));
        // No chats: the country's languages, as before.
        assert_eq!(likely(&[], "IN", all), (vec![Hindi, English], vec![Hindi], false));
        assert_eq!(likely(&[], "", all), (vec![], vec![], false));
        // A typed language the run cannot tag is never preferred.
        assert_eq!(likely(&[Spanish], "US", &[English]), (vec![English], vec![English], false));
        assert_eq!(likely(&[Spanish, Thai], "US", &[English, Thai]), (vec![Thai, English], vec![Thai, English], true));
        typed.clear();
        assert!(typed.of("u").is_empty());
    }

    #[test]
    fn a_chat_read_ahead_is_not_counted_again_by_the_text_stage() {
        let mut typed = TypedLanguages { counted_ahead: vec![true, false], ..Default::default() };
        typed.chat_admitted(0, "u", Thai);
        typed.chat_admitted(1, "u", Thai);
        assert_eq!(typed.by_user[&user_key("u")].count(Thai), 1);
    }

    #[test]
    fn a_fourth_language_takes_the_place_of_the_least_typed() {
        let mut typed = TypedLanguages::default();
        for (language, chats) in [(English, 3), (Hindi, 2), (Arabic, 1), (Thai, 1)] {
            for _ in 0..chats {
                typed.count("u", language);
            }
        }
        assert_eq!(typed.of("u"), vec![English, Hindi, Thai]);
    }

    #[test]
    fn counts_saturate_and_users_are_bounded() {
        let mut typed = TypedLanguages::default();
        for _ in 0..70_000 {
            typed.count("u", Vietnamese);
        }
        assert_eq!(typed.by_user[&user_key("u")].count(Vietnamese), u16::MAX);
        typed.by_user.extend((0..MAX_USERS as u64).map(|k| (k ^ 0x5a5a, Tally::EMPTY)));
        let before = typed.by_user.len();
        typed.count("a new user", Thai);
        assert_eq!(typed.by_user.len(), before, "no room for a new user");
        typed.count("u", Thai);
        assert_eq!(typed.of("u"), vec![Vietnamese, Thai], "a known user still counts");
    }
}
