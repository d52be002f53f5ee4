//! The reader: manifest records through the policy gate, to the decoders or straight to the
//! batcher (words alone).

use crate::{DecodeJob, Failure, Message, Pending, SkipAs, StageStats};
use attune_event::EventSource;
use attune_policy::Policy;
use crossbeam_channel::Sender;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// How the reader ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// The source ended, failed, or a later stage stopped.
    Ended,
    /// Asked to stop (`PipelineConfig::stop`) before the source ended.
    Stopped,
}

/// The first stage: read records, apply the selection and the policy, send words alone straight
/// to the batcher and events with media to the decoders. Stops at the end of the source, when a later stage stops,
/// or when `stop` is set — then between two records, so every record read is accounted for.
#[allow(clippy::too_many_arguments)]
pub(crate) fn read_and_gate(
    source: &Mutex<&mut (dyn EventSource + Send)>,
    policy: &Policy,
    only: &Option<HashSet<String>>,
    jobs: Sender<DecodeJob>,
    messages: Sender<Message>,
    stats: &Mutex<StageStats>,
    stop: Option<&AtomicBool>,
) -> Read {
    let selected = |id: Option<&str>| match (only, id) {
        (None, _) => true,
        (Some(only), Some(id)) => only.contains(id),
        (Some(_), None) => false,
    };
    for seq in 0u64.. {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Read::Stopped;
        }
        let t = Instant::now();
        // The guard is dropped at the end of this statement: the batcher acknowledges meanwhile.
        let record = source.lock().expect("not poisoned").next_record();
        let record = match record {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(e) => {
                let _ = messages.send(Message::SourceFailed(e));
                break;
            }
        };
        let message = match record {
            Ok((origin, event)) if selected(Some(&event.event_id)) => match policy.admit(event) {
                Err(reason) => Message::Skipped(seq, origin, SkipAs::Policy(reason)),
                Ok(event) if event.get().media.is_some() => {
                    stats.lock().expect("not poisoned").add(t.elapsed(), 1);
                    if jobs.send(DecodeJob { seq, origin, event }).is_err() {
                        break;
                    }
                    continue;
                }
                // Words alone: nothing to decode.
                Ok(event) => Message::Ready(Box::new(Pending { seq, origin, event, decoded: None, queued_bytes: 0 })),
            },
            Err(failure) if selected(failure.event_id.as_deref()) => {
                let report_failure = Failure {
                    event_id: failure.report_id(),
                    line: Some(failure.origin.line),
                    message: failure.error.to_string(),
                    user_id: None,
                };
                Message::Failed(seq, failure.origin, report_failure)
            }
            Ok((origin, _)) => Message::Skipped(seq, origin, SkipAs::NotSelected),
            Err(failure) => Message::Skipped(seq, failure.origin, SkipAs::NotSelected),
        };
        stats.lock().expect("not poisoned").add(t.elapsed(), 1);
        if messages.send(message).is_err() {
            break;
        }
    }
    Read::Ended
}
