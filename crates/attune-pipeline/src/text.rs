//! Words: the language gate, the lexicon and the text paths, for every text of a batch (the
//! user's and the assistant's words, transcripts, text read in pictures).

use crate::{text_path, Parts, Pending, Pipeline, Report};
use attune_event::{Role, Source};
use attune_lang::{Language, LanguageDecision, SupportedText, UnidentifiedReason};
use attune_tag::{Segments, Verdict};

impl Pipeline<'_, '_> {
    /// The words of each event (the user's, the assistant's) and its transcript: the language
    /// gate first (text it does not admit makes the event skipped whole, never tagged), then the
    /// lexicon (what it drops is never embedded), then one embedding batch per text path.
    ///
    /// A chat's language is read from all its words; each side is then read by itself, and
    /// takes the chat's language when it is too short to tell alone ("thanks!").
    pub(crate) fn tag_texts(
        &mut self,
        work: &[Pending],
        transcripts: &[Option<String>],
        picture_texts: &[Option<String>],
        parts: &mut Parts,
        report: &mut Report,
    ) {
        // Each event's texts, owned here so the gate's admitted views can borrow them.
        let texts: Vec<EventTexts> =
            (0..work.len()).map(|i| EventTexts::of(&work[i], &transcripts[i], &picture_texts[i])).collect();
        // Per text path: the parts it embeds.
        let mut to_embed: Vec<Vec<(usize, Source, SupportedText<'_>)>> = self.text.iter().map(|_| Vec::new()).collect();
        let gate = self.languages;
        for (i, t) in texts.iter().enumerate() {
            if !parts.still_open(i) {
                continue; // failed, or skipped whole already: nothing of it is tagged
            }
            let mut admitted: Vec<(Source, SupportedText<'_>)> = Vec::new();
            let mut counted = false;
            let mut count = |report: &mut Report, language: Option<Language>| {
                if !std::mem::replace(&mut counted, true) {
                    report.count_language(language);
                }
            };
            if let Some(whole) = &t.words {
                // Words that come with media (a prompt, a caption, a question) are short, like
                // a sign: the gate's best guess. A chat is read with the gate's full confidence.
                let whole_text =
                    if work[i].decoded.is_some() { gate.admit_best_guess(whole) } else { gate.admit(whole) };
                match whole_text {
                    Ok(whole_text) => {
                        count(report, Some(whole_text.language()));
                        if work[i].decoded.is_none() {
                            let user_id = &work[i].event.get().user_id;
                            self.typed_languages.chat_admitted(i, user_id, whole_text.language());
                        }
                        match (&t.user, &t.assistant) {
                            (Some(user), Some(assistant)) => {
                                for (source, side) in [(Source::Words, user), (Source::Assistant, assistant)] {
                                    match gate.admit_part(side, &whole_text) {
                                        Ok(side) => admitted.push((source, side)),
                                        Err(_) => parts.language_skipped[i] = true,
                                    }
                                }
                            }
                            (None, Some(_)) => admitted.push((Source::Assistant, whole_text)),
                            _ => admitted.push((Source::Words, whole_text)),
                        }
                    }
                    // Words with (almost) no letters say nothing that could be tagged or be
                    // sensitive when the event has media; alone, they are an event in no language.
                    Err(LanguageDecision::Unidentified { reason: UnidentifiedReason::TooShort })
                        if work[i].decoded.is_some() =>
                    {
                        parts.expected[i] += 1;
                        parts.texts[i].push((Source::Words, Verdict::Topics(Vec::new())));
                    }
                    Err(decision) => {
                        count(report, decision.language());
                        parts.language_skipped[i] = true;
                    }
                }
            }
            // Speech and text in pictures: read by themselves. With (almost) no letters, nothing
            // was said or written that could be tagged or be sensitive; the rest of the event
            // still speaks for it. Anything else the gate does not admit skips the event whole.
            for (source, text) in [(Source::Speech, &t.speech), (Source::TextInPicture, &t.in_pictures)] {
                let Some(text) = text else { continue };
                // A sign or a label is too short for the gate to be sure of: its best guess.
                let admitted_text =
                    if source == Source::TextInPicture { gate.admit_best_guess(text) } else { gate.admit(text) };
                match admitted_text {
                    Ok(text) => {
                        count(report, Some(text.language()));
                        admitted.push((source, text));
                    }
                    Err(LanguageDecision::Unidentified { reason: UnidentifiedReason::TooShort }) => {
                        parts.expected[i] += 1;
                        parts.texts[i].push((source, Verdict::Topics(Vec::new())));
                    }
                    Err(decision) => {
                        count(report, decision.language());
                        parts.language_skipped[i] = true;
                    }
                }
            }
            if parts.language_skipped[i] {
                continue; // skipped whole: nothing of it is embedded
            }
            for (source, text) in admitted {
                // The gate admits only languages a path covers; a miss here is a skip, never a guess.
                let Some(path) = text_path::route(&self.text, text.language()) else {
                    parts.language_skipped[i] = true;
                    break;
                };
                parts.expected[i] += 1;
                to_embed[path].push((i, source, text));
            }
        }
        for (path, items) in to_embed.into_iter().enumerate() {
            let items: Vec<_> = items.into_iter().filter(|(i, ..)| !parts.language_skipped[*i]).collect();
            if !items.is_empty() {
                self.tag_on_path(path, items, work, parts, report);
            }
        }
    }

    /// The lexicon, then one embedding batch, on one text path (made now if it is the first
    /// time it is needed).
    pub(crate) fn tag_on_path(
        &mut self,
        path: usize,
        items: Vec<(usize, Source, SupportedText<'_>)>,
        work: &[Pending],
        parts: &mut Parts,
        report: &mut Report,
    ) {
        let (got, loading) = self.text[path].get();
        report.model_load_s += loading.as_secs_f64();
        let (embedder, tagger) = match got {
            Ok(got) => got,
            Err(reason) => {
                for (i, ..) in items {
                    parts.fail(i, &work[i], report, format!("text model unavailable: {reason}"));
                }
                return;
            }
        };
        // The texts to encode, and their segments and lexicon matches beside them (the tagger
        // takes each as one slice). Each text is matched once: a lexicon pass costs ~3.6 ms on a
        // long chat, and the tagger would otherwise match it again to read and to tag it.
        let mut to_embed = Vec::with_capacity(items.len());
        let mut segments: Vec<Segments> = Vec::with_capacity(items.len());
        let mut matches = Vec::with_capacity(items.len());
        for (i, source, text) in items {
            // Only what the lexicon decides alone (a decisive term, or any match when nothing
            // confirms it) is settled here; a match the classifier must confirm is read by the
            // tagger, which stops encoding it at the first segment confirming it.
            let found = tagger.lexicon_match(text.text());
            match tagger.lexicon_settles(found) {
                Some(category) => record(
                    parts,
                    report,
                    (i, source, &text),
                    Verdict::Sensitive { category, detector: attune_tag::Detector::Lexicon },
                ),
                None => {
                    segments.push(tagger.segments(text.text()));
                    matches.push(found);
                    to_embed.push((i, source, text));
                }
            }
        }
        if to_embed.is_empty() {
            return;
        }
        match tagger.encode_until_dropped_matched(embedder, &segments, &matches) {
            Ok(encoded) => {
                for (k, ((i, source, text), segs)) in to_embed.iter().zip(&segments).enumerate() {
                    let verdict = tagger.tag_matched(text, segs, encoded.item(k), matches[k]);
                    record(parts, report, (*i, *source, text), verdict);
                }
            }
            Err(batch_error) => {
                // Find the bad items: one model call each, so one bad input costs one event.
                tracing::warn!("text batch of {} failed ({batch_error}); retrying one by one", to_embed.len());
                for (k, ((i, source, text), segs)) in to_embed.iter().zip(&segments).enumerate() {
                    let found = &matches[k..=k];
                    match tagger.encode_until_dropped_matched(embedder, std::slice::from_ref(segs), found) {
                        Ok(encoded) => {
                            let verdict = tagger.tag_matched(text, segs, encoded.item(0), found[0]);
                            record(parts, report, (*i, *source, text), verdict)
                        }
                        Err(e) => parts.fail(*i, &work[*i], report, e.to_string()),
                    }
                }
            }
        }
    }
}

/// A text's verdict, into its item's parts, counted in the report when sensitive.
fn record(
    parts: &mut Parts,
    report: &mut Report,
    (i, source, text): (usize, Source, &SupportedText<'_>),
    verdict: Verdict,
) {
    if matches!(verdict, Verdict::Sensitive { .. }) {
        report.count_sensitive_text(text.language());
    }
    parts.texts[i].push((source, verdict));
}

/// The texts of one event, as the language gate reads them.
pub(crate) struct EventTexts {
    /// All of its words, each turn on its own line: what the chat's language is read from.
    pub(crate) words: Option<String>,
    /// The user's turns (a message, prompt, caption, question) and the assistant's; both
    /// `None` when the event has no words, and `user` alone when it has no assistant turn.
    pub(crate) user: Option<String>,
    pub(crate) assistant: Option<String>,
    pub(crate) speech: Option<String>,
    /// The text read in its photo or video frames.
    pub(crate) in_pictures: Option<String>,
}

impl EventTexts {
    pub(crate) fn of(p: &Pending, transcript: &Option<String>, in_pictures: &Option<String>) -> EventTexts {
        let e = p.event.get();
        let (user, assistant) = (e.words_of(Role::User), e.words_of(Role::Assistant));
        let words = e.words();
        EventTexts { words, user, assistant, speech: transcript.clone(), in_pictures: in_pictures.clone() }
    }
}
