//! A bound, in bytes, on the decoded media waiting for the batcher. The channel between the
//! decoders and the batcher is bounded in messages, which says nothing about memory: a decoded
//! 10 s 1080p video is ~9 MB and a two-hour recording 460 MB, and decoders that outrun the
//! models would fill every slot. A decoder holds its result until the bytes fit.

use std::sync::{Condvar, Mutex};

pub struct QueueBytes {
    limit: usize,
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    queued: usize,
    /// The batcher is gone: nobody will take what waits, so nobody should wait.
    closed: bool,
}

impl QueueBytes {
    pub fn new(limit: usize) -> QueueBytes {
        QueueBytes { limit, state: Mutex::new(State { queued: 0, closed: false }), changed: Condvar::new() }
    }

    /// Wait until `bytes` more fit under the limit (an item larger than the limit goes alone,
    /// when nothing else is queued), then count them. `false`: closed, send nothing.
    pub fn enqueue(&self, bytes: usize) -> bool {
        let mut s = self.state.lock().expect("not poisoned");
        while !s.closed && s.queued > 0 && s.queued + bytes > self.limit {
            s = self.changed.wait(s).expect("not poisoned");
        }
        if s.closed {
            return false;
        }
        s.queued += bytes;
        true
    }

    /// The batcher took `bytes` off the queue.
    pub fn dequeued(&self, bytes: usize) {
        let mut s = self.state.lock().expect("not poisoned");
        s.queued = s.queued.saturating_sub(bytes);
        self.changed.notify_all();
    }

    /// Release every waiting decoder, for good.
    pub fn close(&self) {
        self.state.lock().expect("not poisoned").closed = true;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn never_more_queued_than_the_limit_unless_alone() {
        let queue = QueueBytes::new(100);
        let high = AtomicUsize::new(0);
        let now = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..50 {
                        assert!(queue.enqueue(30));
                        let n = now.fetch_add(30, Ordering::SeqCst) + 30;
                        high.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(50));
                        now.fetch_sub(30, Ordering::SeqCst);
                        queue.dequeued(30);
                    }
                });
            }
        });
        assert!(high.load(Ordering::SeqCst) <= 90, "{}", high.load(Ordering::SeqCst));
        // Larger than the limit: goes when nothing else waits.
        assert!(queue.enqueue(500));
        queue.dequeued(500);
    }

    #[test]
    fn closing_releases_a_waiting_decoder() {
        let queue = QueueBytes::new(10);
        assert!(queue.enqueue(10));
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| queue.enqueue(5));
            std::thread::sleep(Duration::from_millis(20));
            queue.close();
            assert!(!waiting.join().unwrap(), "told to send nothing");
        });
        assert!(!queue.enqueue(1));
    }
}
