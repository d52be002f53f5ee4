//! One verdict per event from the verdicts of its parts: the user's words, the assistant's
//! turns, speech, a photo or a video's frames, text read in pictures.
//!
//! Any sensitive part drops the whole event. Topics come from the user's parts; within one kind
//! of part a topic scores its best piece (frames of one scene are not independent evidence),
//! and across kinds the scores combine as independent evidence, `1 − Π(1 − s)`. The assistant's
//! turns only strengthen a topic a user part raised: an assistant that suggests yoga does not
//! make the user a yoga fan.

use attune_event::Source;
use attune_tag::{ScoredTopic, Verdict};
use attune_taxonomy::AllowedTopic;

/// Topics an event may keep (a video: the image tagger's 3 plus the text tagger's), or more
/// when one part gave more: a session's words give each message's topics (the tagger keeps at
/// most 3 a window and 3 a message), and a session about eight things keeps all eight.
const MAX_EVENT_TOPICS: usize = 6;

/// A topic of an event, with the kinds of part that gave it.
#[derive(Debug, Clone)]
pub(crate) struct SourcedTopic {
    pub topic: AllowedTopic,
    pub score: f32,
    pub sources: Vec<Source>,
}

/// What an event comes to.
#[derive(Debug, Clone)]
pub(crate) enum EventVerdict {
    /// Some part touches a special category: the event is dropped whole. Which part and which
    /// category are not kept: the ledger must not itself become sensitive data.
    Sensitive,
    /// Zero or more topics, best first.
    Topics(Vec<SourcedTopic>),
}

/// The event's verdict from its parts' (several per source when a video has several frames).
pub(crate) fn assemble(parts: &[(Source, Verdict)]) -> EventVerdict {
    if parts.iter().any(|(_, v)| matches!(v, Verdict::Sensitive { .. })) {
        return EventVerdict::Sensitive;
    }
    // Each source's best score per topic: parts of one source are not independent evidence.
    let best_of = |source: Source| {
        let topics = parts.iter().filter(|(s, _)| *s == source).flat_map(|(_, verdict)| match verdict {
            Verdict::Topics(topics) => topics.as_slice(),
            Verdict::Sensitive { .. } => &[],
        });
        ScoredTopic::best_of_each(topics.cloned())
    };
    let mut combined: Vec<SourcedTopic> = Vec::new();
    let mut add = |topic: AllowedTopic, score: f32, source: Source, may_introduce: bool| match combined
        .iter_mut()
        .find(|c| c.topic == topic)
    {
        Some(c) => {
            c.score = 1.0 - (1.0 - c.score) * (1.0 - score);
            c.sources.push(source);
        }
        None if may_introduce => combined.push(SourcedTopic { topic, score, sources: vec![source] }),
        None => {}
    };
    for source in Source::ALL.into_iter().filter(|s| *s != Source::Assistant) {
        for t in best_of(source) {
            add(t.topic, t.score, source, true);
        }
    }
    for t in best_of(Source::Assistant) {
        add(t.topic, t.score, Source::Assistant, false);
    }
    combined.sort_by(|a, b| b.score.total_cmp(&a.score));
    let most_of_one_part = parts
        .iter()
        .filter(|(s, _)| *s != Source::Assistant)
        .map(|(_, v)| match v {
            Verdict::Topics(t) => t.len(),
            Verdict::Sensitive { .. } => 0,
        })
        .max()
        .unwrap_or(0);
    combined.truncate(MAX_EVENT_TOPICS.max(most_of_one_part));
    EventVerdict::Topics(combined)
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_tag::Detector;
    use attune_taxonomy::{SensitiveCategory, Taxonomy};

    fn topics(list: &[(u32, f32)]) -> Verdict {
        let tax = Taxonomy::get();
        Verdict::Topics(
            list.iter().map(|&(id, score)| ScoredTopic { topic: tax.allowed(id).unwrap(), score }).collect(),
        )
    }

    fn sensitive() -> Verdict {
        Verdict::Sensitive { category: SensitiveCategory::ALL[0], detector: Detector::Classifier }
    }

    fn ids(v: &EventVerdict) -> Vec<(u32, Vec<Source>)> {
        match v {
            EventVerdict::Topics(t) => t.iter().map(|t| (t.topic.id(), t.sources.clone())).collect(),
            EventVerdict::Sensitive => panic!("sensitive"),
        }
    }

    // An Interest node of the IAB Audience Taxonomy 1.1 (Camping).
    const CAMPING: u32 = 725;

    #[test]
    fn any_sensitive_part_drops_the_event_whatever_the_others_say() {
        for parts in [
            vec![(Source::Words, sensitive()), (Source::Picture, topics(&[(CAMPING, 0.9)]))],
            vec![(Source::Words, topics(&[(CAMPING, 0.9)])), (Source::Picture, sensitive())],
            vec![(Source::Words, topics(&[(CAMPING, 0.9)])), (Source::Assistant, sensitive())],
            vec![(Source::Picture, topics(&[])), (Source::Picture, sensitive()), (Source::Speech, topics(&[]))],
        ] {
            assert!(matches!(assemble(&parts), EventVerdict::Sensitive), "{parts:?}");
        }
    }

    #[test]
    fn the_assistant_strengthens_a_users_topic_but_never_introduces_one() {
        let other = Taxonomy::get()
            .nodes()
            .iter()
            .map(|n| n.id)
            .find(|&id| id != CAMPING && Taxonomy::get().allowed(id).is_ok())
            .unwrap();
        let v = assemble(&[(Source::Assistant, topics(&[(CAMPING, 0.8), (other, 0.9)]))]);
        assert!(ids(&v).is_empty(), "assistant-only topics: {:?}", ids(&v));
        let v = assemble(&[
            (Source::Words, topics(&[(CAMPING, 0.5)])),
            (Source::Assistant, topics(&[(CAMPING, 0.5), (other, 0.9)])),
        ]);
        assert_eq!(ids(&v), [(CAMPING, vec![Source::Words, Source::Assistant])]);
        let EventVerdict::Topics(t) = v else { unreachable!() };
        assert!((t[0].score - 0.75).abs() < 1e-6, "independent evidence: {}", t[0].score);
    }

    /// An event keeps 6 topics, but every topic of a part that gave more (a session's
    /// messages), and never one the assistant alone raised.
    #[test]
    fn a_session_keeps_the_topics_of_each_of_its_messages() {
        let allowed: Vec<u32> =
            Taxonomy::get().nodes().iter().map(|n| n.id).filter(|&id| Taxonomy::get().allowed(id).is_ok()).collect();
        let session: Vec<(u32, f32)> = allowed[..9].iter().map(|&id| (id, 0.8)).collect();
        let v = assemble(&[(Source::Words, topics(&session)), (Source::Picture, topics(&[(allowed[9], 0.7)]))]);
        assert_eq!(ids(&v).len(), 9, "{:?}", ids(&v));
        let many: Vec<(u32, f32)> = allowed[..4].iter().map(|&id| (id, 0.8)).collect();
        let few = assemble(&[
            (Source::Words, topics(&many)),
            (Source::Picture, topics(&[(allowed[10], 0.7), (allowed[11], 0.7), (allowed[12], 0.7)])),
            (Source::Assistant, topics(&session)),
        ]);
        assert_eq!(ids(&few).len(), 6, "{:?}", ids(&few));
    }

    #[test]
    fn frames_count_once_and_kinds_of_part_combine() {
        let v = assemble(&[
            (Source::Picture, topics(&[(CAMPING, 0.5)])),
            (Source::Picture, topics(&[(CAMPING, 0.6)])),
            (Source::Words, topics(&[(CAMPING, 0.5)])),
        ]);
        let EventVerdict::Topics(t) = &v else { unreachable!() };
        assert!((t[0].score - 0.8).abs() < 1e-6, "best frame 0.6, then words 0.5: {}", t[0].score);
        assert_eq!(t[0].sources, [Source::Words, Source::Picture]);
        // Each topic once, best first, whichever part gave it; a frame without topics adds none.
        let frames_and_speech = [
            (Source::Picture, topics(&[(377, 0.5)])),
            (Source::Picture, topics(&[(377, 0.6), (543, 0.3)])),
            (Source::Picture, topics(&[])),
            (Source::Words, topics(&[(CAMPING, 0.4), (377, 0.5)])),
        ];
        let got: Vec<(u32, f32)> = match assemble(&frames_and_speech) {
            EventVerdict::Topics(t) => t.iter().map(|t| (t.topic.id(), t.score)).collect(),
            EventVerdict::Sensitive => panic!("nothing sensitive"),
        };
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!((got[0].0, got[1], got[2]), (377, (CAMPING, 0.4), (543, 0.3)));
        assert!((got[0].1 - 0.8).abs() < 1e-6, "{got:?}");
        assert!(matches!(assemble(&[]), EventVerdict::Topics(t) if t.is_empty()));
    }
}
