//! The parts of a batch's events as the stages judge them, and the one verdict per event.

use crate::verdict::{self, EventVerdict};
use crate::{Pending, Report};
use attune_event::Source;
use attune_tag::Verdict;

/// What the models said about each item of a batch, until its verdict is assembled.
pub(crate) struct Parts {
    pub(crate) failed: Vec<bool>,
    /// Some text of the item (words or speech) is in a language the gate did not admit: the
    /// item is skipped whole (its other parts cannot vouch for what that text says).
    pub(crate) language_skipped: Vec<bool>,
    /// The speech was not understood well enough to be tagged: skipped whole, as above.
    pub(crate) unintelligible: Vec<bool>,
    /// A picture holds text that could not be read: skipped whole, as above.
    pub(crate) unreadable: Vec<bool>,
    /// The verdicts on the item's texts: the user's words, the assistant's, the transcript.
    pub(crate) texts: Vec<Vec<(Source, Verdict)>>,
    /// A photo's verdict, or one per sampled video frame.
    pub(crate) pictures: Vec<Vec<Verdict>>,
    /// How many verdicts the item was sent for; one missing fails it (never a verdict from
    /// part of what it holds).
    pub(crate) expected: Vec<usize>,
}

impl Parts {
    pub(crate) fn new(n: usize) -> Parts {
        Parts {
            failed: vec![false; n],
            language_skipped: vec![false; n],
            unintelligible: vec![false; n],
            unreadable: vec![false; n],
            texts: vec![Vec::new(); n],
            pictures: vec![Vec::new(); n],
            expected: vec![0; n],
        }
    }

    /// Neither failed nor skipped yet: worth the next model's time.
    pub(crate) fn still_open(&self, i: usize) -> bool {
        !self.failed[i] && !self.language_skipped[i] && !self.unintelligible[i] && !self.unreadable[i]
    }

    /// Record the item's first failure; later ones add nothing (one event, one failure).
    pub(crate) fn fail(&mut self, i: usize, p: &Pending, report: &mut Report, message: String) {
        if !std::mem::replace(&mut self.failed[i], true) {
            report.fail_event(p.event.get(), p.origin.line, message);
        }
    }

    /// One verdict per item.
    pub(crate) fn verdicts(mut self, work: &[Pending], report: &mut Report) -> Vec<Judged> {
        (0..work.len())
            .map(|i| {
                if self.failed[i] {
                    return Judged::Failed;
                }
                if self.language_skipped[i] {
                    return Judged::UnsupportedLanguage;
                }
                if self.unintelligible[i] {
                    return Judged::Unintelligible;
                }
                if self.unreadable[i] {
                    return Judged::UnreadableText;
                }
                let mut all = std::mem::take(&mut self.texts[i]);
                let given = all.len() + self.pictures[i].len();
                all.extend(std::mem::take(&mut self.pictures[i]).into_iter().map(|v| (Source::Picture, v)));
                if given < self.expected[i] || all.is_empty() {
                    self.fail(i, &work[i], report, "no model gave a verdict".into());
                    return Judged::Failed;
                }
                Judged::Verdict(verdict::assemble(&all))
            })
            .collect()
    }
}

/// What became of one item of a batch.
pub(crate) enum Judged {
    /// Failed somewhere (already in the report).
    Failed,
    /// Its text or speech is not in a supported language: skipped, never tagged.
    UnsupportedLanguage,
    Unintelligible,
    /// Text in its pictures could not be read: skipped, never tagged.
    UnreadableText,
    Verdict(EventVerdict),
}
