//! The batcher's side of the channels: its inbox, and the watermark that acknowledges the
//! source in order although events finish out of order.

use crate::{queue_bytes, Message};
use attune_event::Origin;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::collections::BTreeMap;
use std::time::Duration;

/// The batcher's end of the channel: taking a decoded event off it frees its queued bytes.
pub(crate) struct Inbox<'q> {
    pub(crate) messages: Receiver<Message>,
    pub(crate) queue_bytes: &'q queue_bytes::QueueBytes,
}

impl Inbox<'_> {
    /// The next message, waiting at most `timeout` (`None`: until every sender is gone).
    pub(crate) fn recv(&self, timeout: Option<Duration>) -> Result<Message, RecvTimeoutError> {
        let message = match timeout {
            Some(t) => self.messages.recv_timeout(t)?,
            None => self.messages.recv().map_err(|_| RecvTimeoutError::Disconnected)?,
        };
        if let Message::Ready(p) = &message {
            self.queue_bytes.dequeued(p.queued_bytes);
        }
        Ok(message)
    }
}

/// Acknowledges the source in order although events finish out of order: the source hears of
/// record N only once every record up to N is stored or reported.
#[derive(Default)]
pub(crate) struct Watermark {
    pub(crate) next: u64,
    pub(crate) done: BTreeMap<u64, Origin>,
    /// The last record of the contiguous prefix, not yet acknowledged.
    pub(crate) unacknowledged: Option<Origin>,
}

impl Watermark {
    pub(crate) fn done(&mut self, seq: u64, origin: Origin) {
        self.done.insert(seq, origin);
        while let Some(origin) = self.done.remove(&self.next) {
            self.unacknowledged = Some(origin);
            self.next += 1;
        }
    }

    /// The origin to acknowledge, if the contiguous prefix grew since the last call.
    pub(crate) fn take_acknowledgeable(&mut self) -> Option<Origin> {
        self.unacknowledged.take()
    }
}

#[cfg(test)]
mod tests {
    use super::Watermark;
    use attune_event::Origin;

    fn origin(n: u64) -> Origin {
        Origin { line: n + 1 }
    }

    #[test]
    fn the_source_hears_only_of_a_contiguous_prefix() {
        let mut w = Watermark::default();
        assert_eq!(w.take_acknowledgeable(), None, "nothing done yet");
        w.done(1, origin(1));
        w.done(2, origin(2));
        assert_eq!(w.take_acknowledgeable(), None, "record 0 is still on its way");
        w.done(0, origin(0));
        assert_eq!(w.take_acknowledgeable(), Some(origin(2)), "0, 1, 2 done: acknowledge up to 2");
        assert_eq!(w.take_acknowledgeable(), None, "once");
        w.done(4, origin(4));
        assert_eq!(w.take_acknowledgeable(), None);
        w.done(3, origin(3));
        assert_eq!(w.take_acknowledgeable(), Some(origin(4)));
    }
}
