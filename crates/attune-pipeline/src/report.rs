use attune_policy::Exclusion;
use attune_profile::Provenance;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What happened to every event of a run (`attune run --report FILE`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Records read from the source, malformed lines included.
    pub events: u64,
    /// Events that went through the models and were merged (with or without topics).
    pub processed: u64,
    pub skipped: Skipped,
    pub failed: Vec<Failure>,
    /// Texts (chats and transcripts) per language as the language gate identified them, by
    /// ISO 639-1 code, supported or not; `unidentified` for those it could not identify. A count,
    /// never content.
    pub languages: BTreeMap<String, u64>,
    /// Of those texts, the ones a special-category detector found sensitive (each drops its
    /// event), per language: with `languages`, each language's share dropped, where a detector
    /// that holds in one language and not in another shows first (on the calibration split it
    /// drops 2 % of English ordinary chats and 24 % of Hindi ones). A count, never the content,
    /// nor the category.
    pub sensitive_by_language: BTreeMap<String, u64>,
    /// Recordings decoded a second time: the language gate read the first transcript as another
    /// supported language than the one it was decoded as, or it was not understood and another
    /// strong clue (the user's most typed language, their country's first) was left to try.
    pub speech_redecoded: u64,
    /// Recordings whose language was looked for first among those their user chats in (chats
    /// earlier in the run or in the same batch), before their country's.
    pub speech_languages_from_chats: u64,
    /// Processed events that gave at least one topic, and the topics they gave.
    pub tagged: u64,
    pub topics_assigned: u64,
    pub elapsed_s: f64,
    pub events_per_s: f64,
    /// Of `elapsed_s`, the time spent loading models the run made on first use (speech sessions).
    pub model_load_s: f64,
    pub taxonomy: String,
    pub model_set: String,
    /// The text tagger's bars this run was given in place of its calibration's, by name (a run
    /// may only tighten them: `attune run --classifier-threshold 0.08`), so that what it kept
    /// out is read against the right figures; empty: the calibration's own
    /// ([`crate::PipelineBuilder::tagger_settings`]).
    pub tagger_settings: BTreeMap<String, String>,
    /// Busy time and items of each stage: `read+gate`, `decode` (summed over decoder threads),
    /// `speech`, `text`, `images` (frames and photos), `store`.
    pub stages: BTreeMap<&'static str, StageStats>,
    /// How the run divided its threads: what the figures above ran on.
    pub threads: Threads,
    /// The run was asked to stop (SIGTERM, SIGINT) before the source ended: it read no further
    /// record and finished those it had read, so the counts above cover only those, and a rerun
    /// goes on where it stopped.
    pub interrupted: bool,
    /// The signal that stopped it, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Processed events per product (`glasses`, `vibes`, `imagine`, `assistant`).
    pub products: BTreeMap<String, u64>,
    /// Topics assigned per tier-1 branch of the Interest taxonomy (`Sports`, `Travel` …).
    pub topics_by_branch: BTreeMap<String, u64>,
    /// Where the run was after each batch: at most [`MAX_TIMELINE_POINTS`], thinned evenly on a
    /// long run (every other point dropped when full).
    pub timeline: Vec<TimelinePoint>,
    /// When the run started: `elapsed_s` and the timeline count from here.
    #[serde(skip)]
    started: Instant,
}

/// The most points a report's timeline keeps.
pub const MAX_TIMELINE_POINTS: usize = 512;

/// Events read and processed by `elapsed_s` seconds into the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimelinePoint {
    pub elapsed_s: f64,
    pub events: u64,
    pub processed: u64,
}

/// The threads of a run (`--threads` and how it was divided).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Threads {
    /// The CPU budget decoders and models share (`--threads`); 0: no limit.
    pub budget: usize,
    /// Decoder threads, each with its worker process unless decoding in process.
    pub decoders: usize,
    /// ONNX Runtime's intra-op threads for a text or image model call.
    pub model_threads: usize,
    /// The most speech sessions the run may use, one thread each; those beyond `model_threads`
    /// run only on cores the decoders leave free.
    pub speech_sessions: usize,
    /// The speech sessions it made: each is made when a batch first needs it (none without
    /// recordings).
    pub speech_sessions_made: usize,
}

/// How long a stage was busy and how many items it handled.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageStats {
    pub busy_s: f64,
    pub items: u64,
}

impl StageStats {
    pub fn add(&mut self, busy: Duration, items: usize) {
        self.busy_s += busy.as_secs_f64();
        self.items += items as u64;
    }

    /// Items per second of busy time: what the stage does alone, on one thread.
    pub fn per_s(&self) -> f64 {
        if self.busy_s > 0.0 {
            self.items as f64 / self.busy_s
        } else {
            0.0
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Skipped {
    pub jurisdiction: u64,
    pub effective_date: u64,
    pub opt_out: u64,
    /// Users erased with `attune forget` (and not un-forgotten): turned away at the gate.
    pub forgotten: u64,
    pub sensitive: u64,
    /// Text (or speech) in a language outside the policy's `supported_languages`, or whose
    /// language could not be identified with confidence: never tagged (fail closed).
    pub unsupported_language: u64,
    /// Speech transcribed with too little confidence (`--min-speech-logprob`), or nothing but
    /// repetition loops: never tagged (fail closed).
    pub unintelligible_speech: u64,
    /// A picture holds text that could not be read (a script the OCR model does not know):
    /// never tagged (fail closed).
    pub unreadable_text: u64,
    pub duplicate: u64,
    /// Retry runs only: events that had not failed before, left alone.
    pub not_selected: u64,
}

impl Skipped {
    pub fn total(&self) -> u64 {
        self.jurisdiction
            + self.effective_date
            + self.opt_out
            + self.forgotten
            + self.sensitive
            + self.unsupported_language
            + self.unintelligible_speech
            + self.unreadable_text
            + self.duplicate
            + self.not_selected
    }
}

/// One event that could not be processed, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The event's id, or `line:N` when the line had no readable id.
    pub event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    pub message: String,
    /// Kept for the store's failure list (so `forget` finds it), not written to the report.
    #[serde(skip)]
    pub user_id: Option<String>,
}

impl Report {
    pub(crate) fn new(provenance: &Provenance) -> Report {
        Report {
            events: 0,
            processed: 0,
            skipped: Skipped::default(),
            failed: Vec::new(),
            languages: BTreeMap::new(),
            sensitive_by_language: BTreeMap::new(),
            speech_redecoded: 0,
            speech_languages_from_chats: 0,
            tagged: 0,
            topics_assigned: 0,
            elapsed_s: 0.0,
            events_per_s: 0.0,
            model_load_s: 0.0,
            taxonomy: provenance.taxonomy.clone(),
            model_set: provenance.model_set.clone(),
            tagger_settings: BTreeMap::new(),
            stages: BTreeMap::new(),
            threads: Threads::default(),
            interrupted: false,
            signal: None,
            products: BTreeMap::new(),
            topics_by_branch: BTreeMap::new(),
            timeline: Vec::new(),
            started: Instant::now(),
        }
    }

    /// A point of the timeline, now.
    pub(crate) fn mark_time(&mut self) {
        let elapsed_s = self.started.elapsed().as_secs_f64();
        if self.timeline.len() >= MAX_TIMELINE_POINTS {
            let mut k = 0;
            self.timeline.retain(|_| {
                k += 1;
                k % 2 == 1
            });
        }
        self.timeline.push(TimelinePoint { elapsed_s, events: self.events, processed: self.processed });
    }

    pub(crate) fn fail_event(&mut self, event: &attune_event::Event, line: u64, message: String) {
        self.failed.push(Failure {
            event_id: event.event_id.clone(),
            line: Some(line),
            message,
            user_id: Some(event.user_id.clone()),
        });
    }

    pub(crate) fn skip(&mut self, reason: Exclusion) {
        match reason {
            Exclusion::Jurisdiction => self.skipped.jurisdiction += 1,
            Exclusion::EffectiveDate => self.skipped.effective_date += 1,
            Exclusion::OptOut => self.skipped.opt_out += 1,
            Exclusion::Forgotten => self.skipped.forgotten += 1,
        }
    }

    /// Count one text the language gate examined: its language, `None` when not identified.
    pub(crate) fn count_language(&mut self, language: Option<attune_lang::Language>) {
        let key = language.map_or("unidentified", |l| l.code());
        *self.languages.entry(key.to_string()).or_default() += 1;
    }

    /// Count one text found sensitive, in its (admitted, so identified) language.
    pub(crate) fn count_sensitive_text(&mut self, language: attune_lang::Language) {
        *self.sensitive_by_language.entry(language.code().to_string()).or_default() += 1;
    }

    /// Each language's texts found sensitive, as a share of its texts ("hi 12 of 51 (24 %)"),
    /// most dropped first; `None` when no text was.
    pub fn sensitive_shares(&self) -> Option<String> {
        let mut shares: Vec<(&String, u64, u64)> = self
            .sensitive_by_language
            .iter()
            .map(|(code, &n)| (code, n, self.languages.get(code).copied().unwrap_or(n).max(n)))
            .collect();
        if shares.is_empty() {
            return None;
        }
        shares.sort_by(|a, b| (b.1 * a.2).cmp(&(a.1 * b.2)).then(a.0.cmp(b.0)));
        let parts: Vec<String> = shares
            .iter()
            .map(|(code, n, of)| format!("{code} {n} of {of} ({:.0} %)", 100.0 * *n as f64 / *of as f64))
            .collect();
        Some(parts.join(", "))
    }

    pub(crate) fn stage(&mut self, name: &'static str, busy: Duration, items: usize) {
        if items > 0 {
            self.stages.entry(name).or_default().add(busy, items);
        }
    }

    /// A processed event of `product`, with the tier-1 branches of the topics it gave.
    pub(crate) fn count_processed<'b>(&mut self, product: &str, branches: impl IntoIterator<Item = &'b str>) {
        self.processed += 1;
        *self.products.entry(product.to_string()).or_default() += 1;
        let mut n = 0u64;
        for branch in branches {
            *self.topics_by_branch.entry(branch.to_string()).or_default() += 1;
            n += 1;
        }
        if n > 0 {
            self.tagged += 1;
            self.topics_assigned += n;
        }
    }

    pub(crate) fn finish(&mut self) {
        self.elapsed_s = self.started.elapsed().as_secs_f64();
        self.events_per_s = if self.elapsed_s > 0.0 { self.events as f64 / self.elapsed_s } else { 0.0 };
    }

    pub fn progress(&self) -> crate::Progress {
        crate::Progress {
            events: self.events,
            processed: self.processed,
            skipped: self.skipped.total(),
            failed: self.failed.len() as u64,
            stages: self.stages.clone(),
        }
    }

    /// One line per stage: busy time, items and the rate it ran at.
    pub fn stage_lines(&self) -> Vec<String> {
        self.stages
            .iter()
            .filter(|(_, s)| s.items > 0)
            .map(|(name, s)| {
                format!("  {name:<10} {:>8.2} s busy  {:>8} items  {:>9.1} /s", s.busy_s, s.items, s.per_s())
            })
            .collect()
    }

    /// The one-line summary printed at the end of a run.
    pub fn summary(&self) -> String {
        let s = &self.skipped;
        let stopped = match (&self.signal, self.interrupted) {
            (Some(signal), _) => format!("interrupted by {signal}: "),
            (None, true) => "interrupted: ".to_string(),
            (None, false) => String::new(),
        };
        format!(
            "{stopped}{} events: {} processed ({} with topics), {} skipped (jurisdiction {}, effective_date {}, opt_out {}, forgotten {}, sensitive {}, unsupported_language {}, duplicate {}), {} failed in {:.1}s ({:.0} events/s)",
            self.events,
            self.processed,
            self.tagged,
            s.total(),
            s.jurisdiction,
            s.effective_date,
            s.opt_out,
            s.forgotten,
            s.sensitive,
            s.unsupported_language,
            s.duplicate,
            self.failed.len(),
            self.elapsed_s,
            self.events_per_s
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report::new(&Provenance { taxonomy: "t".into(), model_set: "m".into() })
    }

    #[test]
    fn texts_found_sensitive_are_counted_per_language_as_a_share_of_its_texts() {
        let mut r = report();
        assert_eq!(r.sensitive_shares(), None);
        let (en, hi) = (attune_lang::Language::English, attune_lang::Language::Hindi);
        for _ in 0..10 {
            r.count_language(Some(en));
        }
        for _ in 0..4 {
            r.count_language(Some(hi));
        }
        r.count_language(None);
        r.count_sensitive_text(en);
        r.count_sensitive_text(hi);
        r.count_sensitive_text(hi);
        assert_eq!(r.sensitive_by_language.get("hi"), Some(&2));
        // The language with the largest share first; the unidentified are never tagged.
        assert_eq!(r.sensitive_shares().unwrap(), "hi 2 of 4 (50 %), en 1 of 10 (10 %)");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["sensitive_by_language"], serde_json::json!({"en": 1, "hi": 2}));
    }

    #[test]
    fn processed_events_are_counted_by_product_and_their_topics_by_branch() {
        let mut r = report();
        r.count_processed("assistant", ["Sports", "Travel", "Sports"]);
        r.count_processed("glasses", []);
        assert_eq!((r.processed, r.tagged, r.topics_assigned), (2, 1, 3));
        assert_eq!(r.products, BTreeMap::from([("assistant".into(), 1), ("glasses".into(), 1)]));
        assert_eq!(r.topics_by_branch, BTreeMap::from([("Sports".into(), 2), ("Travel".into(), 1)]));
    }

    #[test]
    fn the_timeline_stays_bounded_and_keeps_its_ends() {
        let mut r = report();
        for k in 0..(3 * MAX_TIMELINE_POINTS as u64) {
            r.events = k;
            r.mark_time();
        }
        assert!(r.timeline.len() <= MAX_TIMELINE_POINTS);
        assert!(r.timeline.len() >= MAX_TIMELINE_POINTS / 2);
        assert_eq!(r.timeline.first().unwrap().events, 0);
        assert_eq!(r.timeline.last().unwrap().events, 3 * MAX_TIMELINE_POINTS as u64 - 1);
        assert!(r.timeline.windows(2).all(|w| w[0].events < w[1].events && w[0].elapsed_s <= w[1].elapsed_s));
    }
}
