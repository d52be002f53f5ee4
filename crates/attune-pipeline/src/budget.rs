//! One CPU budget shared by the decoder threads and the models, so the two never run more
//! threads than the budget allows, yet neither leaves cores idle while the other waits.
//!
//! A decoder holds one permit while it decodes; the batcher holds as many permits as ONNX
//! Runtime has threads while the models run, and goes first when it is waiting (the models drain
//! what the decoders produce; starving them would only fill the channels).

use std::sync::{Condvar, Mutex};

pub struct CpuBudget {
    total: usize,
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    free: usize,
    models_waiting: bool,
}

/// Permits held; given back when dropped.
pub struct Permits<'a> {
    budget: &'a CpuBudget,
    n: usize,
}

impl CpuBudget {
    pub fn new(permits: usize) -> CpuBudget {
        let total = permits.max(1);
        CpuBudget { total, state: Mutex::new(State { free: total, models_waiting: false }), changed: Condvar::new() }
    }

    /// One permit for one decode; waits while the models are waiting for theirs.
    pub fn for_decoder(&self) -> Permits<'_> {
        let mut s = self.state.lock().expect("not poisoned");
        while s.free == 0 || s.models_waiting {
            s = self.changed.wait(s).expect("not poisoned");
        }
        s.free -= 1;
        Permits { budget: self, n: 1 }
    }

    /// `n` permits for a model call (at most the whole budget).
    pub fn for_models(&self, n: usize) -> Permits<'_> {
        let n = n.clamp(1, self.total);
        let mut s = self.state.lock().expect("not poisoned");
        s.models_waiting = true;
        while s.free < n {
            s = self.changed.wait(s).expect("not poisoned");
        }
        s.free -= n;
        s.models_waiting = false;
        self.changed.notify_all();
        Permits { budget: self, n }
    }

    /// Up to `n` more permits, only those free now (perhaps none): for work that can use more
    /// threads than it needs, while the decoders leave them idle.
    pub fn spare(&self, n: usize) -> Permits<'_> {
        let mut s = self.state.lock().expect("not poisoned");
        let n = n.min(s.free);
        s.free -= n;
        Permits { budget: self, n }
    }
}

impl Permits<'_> {
    pub fn count(&self) -> usize {
        self.n
    }
}

impl Drop for Permits<'_> {
    fn drop(&mut self) {
        let mut s = self.budget.state.lock().expect("not poisoned");
        s.free += self.n;
        self.budget.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn never_more_busy_than_permits_and_models_get_theirs() {
        let budget = Arc::new(CpuBudget::new(2));
        let busy = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for _ in 0..4 {
            let (budget, busy, peak) = (budget.clone(), busy.clone(), peak.clone());
            threads.push(std::thread::spawn(move || {
                for _ in 0..200 {
                    let _p = budget.for_decoder();
                    let now = busy.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::yield_now();
                    busy.fetch_sub(1, Ordering::SeqCst);
                }
            }));
        }
        for _ in 0..50 {
            let p = budget.for_models(2);
            assert_eq!(p.n, 2);
            let now = busy.fetch_add(2, Ordering::SeqCst) + 2;
            peak.fetch_max(now, Ordering::SeqCst);
            busy.fetch_sub(2, Ordering::SeqCst);
        }
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 2);
    }

    #[test]
    fn spare_permits_are_only_those_free() {
        let budget = CpuBudget::new(3);
        let models = budget.for_models(1);
        let decoder = budget.for_decoder();
        assert_eq!(budget.spare(5).count(), 1);
        let spare = budget.spare(5);
        assert_eq!((spare.count(), budget.spare(5).count()), (1, 0));
        drop((models, decoder, spare));
        assert_eq!(budget.spare(2).count(), 2);
    }
}
