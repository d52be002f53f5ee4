//! Speech: voice recordings and video soundtracks to transcripts, in the language the gate
//! reads them in (a second decode when the two disagree, or when one is not understood in the
//! language its user's chats or country suggested first), unsure or looping ones never tagged.

use crate::typed_languages::LikelyLanguages;
use crate::{budget, Parts, Pending, Pipeline, Report, SpeechToText};
use attune_infer::{InferError, SpeechLanguage, SpeechRequest, SpokenText};
use attune_lang::{Language, LanguageDecision};
use std::time::{Duration, Instant};

/// A transcript not to be tagged: decoded with too little confidence, or nothing but
/// repetition loops.
pub(crate) fn unintelligible(spoken: &SpokenText, min_logprob: f32) -> bool {
    if spoken.text.trim().is_empty() {
        spoken.looped_windows > 0
    } else {
        spoken.avg_logprob < min_logprob
    }
}

/// Whether a transcript decoded as `decoded` (ISO 639-1) reads as `heard`. Malay and Indonesian
/// count as one: the gate tells them apart by chat words, Whisper by sound, and either way the
/// same encoder and lexicons read the text.
pub(crate) fn same_language(decoded: &str, heard: Language) -> bool {
    decoded == heard.code() || matches!((decoded, heard), ("id", Language::Malay) | ("ms", Language::Indonesian))
}

/// The language to decode a recording in again when it was not understood as `decoded`: the
/// first of its strongest clues (the user's most typed language, their country's first) that it
/// was not decoded as. Speech decoded as the wrong language comes out as nonsense at a low
/// log-probability (espeak-ng Indonesian decoded as English: "The", −2.5), so a user who types
/// English in Indonesia and speaks Indonesian is understood on the second try.
pub(crate) fn untried_claim(likely: &LikelyLanguages, decoded: &str) -> Option<Language> {
    likely.claims.iter().copied().find(|&claim| !same_language(decoded, claim))
}

/// `requests` (recordings of similar length next to each other) on the speech sessions side by
/// side, one thread each, in groups of at most the model's batch (Whisper decodes a group's
/// windows in one batch), the same number of groups for every session: the batch ends when its
/// last session does. Each result with its request's key.
fn on_sessions<K: Copy + Send + Sync>(
    speech: &mut [Box<dyn SpeechToText>],
    requests: &[(K, SpeechRequest<'_>)],
) -> Vec<(K, Result<SpokenText, InferError>)> {
    let sessions = speech.len();
    let groups = requests.len().div_ceil(speech[0].batch().max(1)).next_multiple_of(sessions).min(requests.len());
    let chunks = even_chunks(requests, groups);
    tracing::debug!("speech: {} recordings, {sessions} sessions, {} groups", requests.len(), chunks.len());
    let transcribe = |speech: &mut Box<dyn SpeechToText>, chunk: &[(K, SpeechRequest<'_>)]| {
        let batch: Vec<SpeechRequest> = chunk.iter().map(|(_, r)| r.clone()).collect();
        chunk.iter().map(|(key, _)| *key).zip(speech.transcribe(&batch)).collect::<Vec<_>>()
    };
    if sessions == 1 {
        let speech = &mut speech[0];
        return chunks.iter().flat_map(|chunk| transcribe(speech, chunk)).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let threads: Vec<_> = speech
            .iter_mut()
            .map(|speech| {
                let (chunks, next, transcribe) = (&chunks, &next, &transcribe);
                scope.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(chunk) = chunks.get(k) else { break };
                        done.extend(transcribe(speech, chunk));
                    }
                    done
                })
            })
            .collect();
        threads.into_iter().flat_map(|t| t.join().expect("a speech thread panicked")).collect()
    })
}

/// `items` cut into `n` consecutive runs whose lengths differ by at most one (`items.chunks`
/// would give 5 runs, not 6, for 20 items in runs of at most 4).
pub(crate) fn even_chunks<T>(items: &[T], n: usize) -> Vec<&[T]> {
    let n = n.clamp(1, items.len().max(1));
    let (base, longer) = (items.len() / n, items.len() % n);
    let mut rest = items;
    (0..n)
        .map(|k| {
            let (chunk, tail) = rest.split_at(base + usize::from(k < longer));
            rest = tail;
            chunk
        })
        .filter(|c| !c.is_empty())
        .collect()
}

impl Pipeline<'_, '_> {
    /// Voice recordings and video soundtracks to transcripts. Recordings go to the model in groups
    /// of similar length, spread over the speech sessions ([`on_sessions`]): Whisper's greedy
    /// decoding gains little from more intra-op threads and much from running recordings side by
    /// side. `None` for items without speech; with the time spent making sessions.
    ///
    /// Each recording's language is the model's to detect, the languages its user chats in (this
    /// run) and then those of their country preferred. A transcript the language gate finds in
    /// another supported language than it was decoded as is decoded again as that language, once;
    /// if the two still disagree the item is skipped as in an unsupported language (nonsense in
    /// the wrong language is never tagged). One not understood is decoded again, once, in the
    /// strongest language clue it was not decoded as ([`untried_claim`]), if there is one.
    pub(crate) fn transcribe(
        &mut self,
        work: &[Pending],
        parts: &mut Parts,
        report: &mut Report,
        budget: Option<&budget::CpuBudget>,
    ) -> (Vec<Option<String>>, Duration) {
        let mut out: Vec<Option<String>> = vec![None; work.len()];
        let mut items: Vec<(usize, &[f32])> =
            work.iter().enumerate().filter_map(|(i, p)| Some((i, p.speech()?))).collect();
        if items.is_empty() {
            return (out, Duration::ZERO);
        }
        // Similar lengths decode together, so a group's rows finish at about the same step.
        items.sort_by_key(|(_, pcm)| std::cmp::Reverse(pcm.len()));
        // The batch holds `model_threads` permits; a session beyond those runs only on a permit
        // the decoders leave free now (when they wait on a full channel, the cores are the
        // models'). Sessions are made as first wanted, so a run makes only as many as its
        // batches keep busy.
        let wanted = self.speech.limit().min(items.len());
        let held = self.config.model_threads.min(wanted);
        let spare = budget.map(|b| b.spare(wanted.saturating_sub(held)));
        let sessions = if budget.is_some() { held + spare.as_ref().map_or(0, |p| p.count()) } else { wanted };
        let loading = Instant::now();
        let speech = self.speech.get(sessions);
        let loading = loading.elapsed();
        let speech = match speech {
            Ok(speech) => speech,
            Err(reason) => {
                for (i, _) in items {
                    // A video's pictures alone are not enough: its speech could be sensitive.
                    parts.fail(i, &work[i], report, reason.clone());
                }
                return (out, loading);
            }
        };
        // The languages each recording is most likely spoken in: its user's chats', then their
        // country's.
        let likely: Vec<LikelyLanguages> = work
            .iter()
            .map(|p| {
                let event = p.event.get();
                if !p.has_speech() {
                    return LikelyLanguages::default();
                }
                let country = event.country.as_ref().map_or("", |c| c.as_str());
                let typed = self.typed_languages.of(&event.user_id);
                let likely = LikelyLanguages::of(&typed, country, self.languages.admitted());
                report.speech_languages_from_chats += u64::from(likely.from_chats);
                likely
            })
            .collect();
        let requests: Vec<(usize, SpeechRequest)> = items
            .iter()
            .map(|&(i, pcm)| {
                let preferred = likely[i].preferred.iter().map(|l| l.code().to_string()).collect();
                (i, SpeechRequest::new(pcm, SpeechLanguage::Detect { preferred }))
            })
            .collect();
        let results = on_sessions(speech, &requests);
        // The gate's reading of each transcript; a disagreement with the decoded language asks
        // for a second decode as the language the gate heard. A transcript not understood in the
        // language it was decoded as gets one in the strongest clue it was not decoded as.
        let mut again: Vec<(usize, Language)> = Vec::new();
        let min_logprob = self.config.min_speech_logprob;
        for (i, result) in results {
            match result {
                Ok(spoken) if unintelligible(&spoken, min_logprob) => {
                    match spoken.language.as_deref().and_then(|decoded| untried_claim(&likely[i], decoded)) {
                        Some(language) => {
                            tracing::debug!(
                                "speech {i}: not understood as {:?}, tried as {}",
                                spoken.language,
                                language.code()
                            );
                            again.push((i, language));
                        }
                        None => parts.unintelligible[i] = true,
                    }
                }
                Ok(spoken) => {
                    if let (Some(decoded), LanguageDecision::Supported { language, .. }) =
                        (&spoken.language, self.languages.decide(&spoken.text))
                    {
                        if !same_language(decoded, language) {
                            tracing::debug!("speech {i}: decoded as {decoded}, reads as {}", language.code());
                            again.push((i, language));
                            continue;
                        }
                    }
                    out[i] = Some(spoken.text);
                }
                Err(e) => parts.fail(i, &work[i], report, e.to_string()),
            }
        }
        if !again.is_empty() {
            let pcm_of = |i: usize| work[i].speech().unwrap_or_default();
            // Longest first, as the first pass: similar lengths decode together.
            again.sort_by_key(|&(i, _)| std::cmp::Reverse(pcm_of(i).len()));
            let requests: Vec<((usize, Language), SpeechRequest)> = again
                .iter()
                .map(|&(i, language)| {
                    let forced = SpeechLanguage::Force(language.code().to_string());
                    ((i, language), SpeechRequest::new(pcm_of(i), forced))
                })
                .collect();
            report.speech_redecoded += again.len() as u64;
            for ((i, language), result) in on_sessions(speech, &requests) {
                match result {
                    Ok(spoken) if unintelligible(&spoken, min_logprob) => parts.unintelligible[i] = true,
                    Ok(spoken) => match self.languages.decide(&spoken.text) {
                        LanguageDecision::Supported { language: heard, .. }
                            if same_language(language.code(), heard) =>
                        {
                            out[i] = Some(spoken.text)
                        }
                        // Still not the language it was decoded as: what it says is not known.
                        _ => parts.language_skipped[i] = true,
                    },
                    Err(e) => parts.fail(i, &work[i], report, e.to_string()),
                }
            }
        }
        (out, loading)
    }
}

#[cfg(test)]
mod tests {
    use super::{even_chunks, same_language, unintelligible, untried_claim};
    use crate::DEFAULT_MIN_SPEECH_LOGPROB;
    use attune_infer::SpokenText;
    use attune_lang::Language;

    #[test]
    fn unsure_or_looping_speech_is_unintelligible_and_silence_is_not() {
        let spoken = |text: &str, avg_logprob: f32, looped_windows: usize| SpokenText {
            text: text.into(),
            avg_logprob,
            looped_windows,
            ..Default::default()
        };
        let floor = DEFAULT_MIN_SPEECH_LOGPROB;
        assert!(!unintelligible(&spoken("what tent should I buy", -0.3, 0), floor));
        assert!(unintelligible(&spoken("kết hạng mạnh tử kiếm", -0.77, 0), floor));
        // Nothing but loops: something was said and not understood.
        assert!(unintelligible(&spoken("", 0.0, 1), floor));
        // Silence: nothing was said; a video's pictures still speak for it.
        assert!(!unintelligible(&spoken("", 0.0, 0), floor));
        assert!(!unintelligible(&spoken("kết hạng", -0.77, 0), -1.0), "the floor is the caller's");
    }

    #[test]
    fn malay_and_indonesian_count_as_one_language_for_speech() {
        assert!(same_language("id", Language::Malay) && same_language("ms", Language::Indonesian));
        assert!(same_language("es", Language::Spanish));
        assert!(!same_language("th", Language::Indonesian) && !same_language("en", Language::Hindi));
    }

    #[test]
    fn speech_not_understood_is_tried_in_the_strongest_clue_it_was_not_decoded_as() {
        use crate::typed_languages::LikelyLanguages;
        let all = Language::DEFAULT_SUPPORTED;
        // Types English, lives in Indonesia: decoded as English and not understood, tried as
        // Indonesian; decoded as Indonesian (or Malay, the same for speech), tried as English.
        let likely = LikelyLanguages::of(&[Language::English], "ID", all);
        assert_eq!(untried_claim(&likely, "en"), Some(Language::Indonesian));
        assert_eq!(untried_claim(&likely, "id"), Some(Language::English));
        assert_eq!(untried_claim(&likely, "ms"), Some(Language::English));
        // Whisper overrode the only clue (Thai over the country's Indonesian): tried as it.
        let likely = LikelyLanguages::of(&[], "ID", all);
        assert_eq!(untried_claim(&likely, "th"), Some(Language::Indonesian));
        // Decoded as the only clue: nothing else to try.
        assert_eq!(untried_claim(&likely, "id"), None);
        // Nothing known: nothing to try.
        assert_eq!(untried_claim(&LikelyLanguages::of(&[], "", all), "en"), None);
    }

    #[test]
    fn even_chunks_keep_order_and_differ_by_at_most_one() {
        let items: Vec<u32> = (0..20).collect();
        let lengths = |n| even_chunks(&items, n).iter().map(|c| c.len()).collect::<Vec<_>>();
        assert_eq!(lengths(6), [4, 4, 3, 3, 3, 3]);
        assert_eq!(lengths(2), [10, 10]);
        assert_eq!(lengths(1), [20]);
        assert_eq!(lengths(40), vec![1; 20], "never an empty chunk");
        assert_eq!(lengths(0), [20]);
        assert_eq!(even_chunks(&items, 6).concat(), items);
        assert!(even_chunks::<u32>(&[], 3).is_empty());
    }
}
