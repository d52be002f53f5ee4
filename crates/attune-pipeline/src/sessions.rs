//! Speech sessions made on first use. A Whisper session holds about 250 MB, and a run may use
//! one per thread of its budget; a manifest without recordings never needs one, and a run whose
//! batches keep only two busy should not pay for sixteen. The sessions a batch wants are made
//! side by side: making one is mostly ONNX Runtime copying and rewriting the graph on one thread
//! (Whisper base: 1-4 s each), and a short run pays for it in full.

use attune_infer::{InferError, SpeechToText};

/// Makes one more session of the speech model; called from several threads at once.
pub type MakeSession<'a> = Box<dyn Fn() -> Result<Box<dyn SpeechToText>, InferError> + Send + Sync + 'a>;

/// Up to `limit` sessions of one speech model, made as batches first need them and kept for
/// the run.
pub struct SpeechSessions<'a> {
    /// The model's id, known before any session is made (it goes into the profiles' provenance).
    id: Option<String>,
    limit: usize,
    make: Option<MakeSession<'a>>,
    made: Vec<Box<dyn SpeechToText>>,
    /// Why no session can be had: audio events fail with it.
    unavailable: Option<String>,
}

impl<'a> SpeechSessions<'a> {
    /// At most `limit` sessions of model `id`, each made by `make` when first needed.
    pub fn on_demand(id: String, limit: usize, make: MakeSession<'a>) -> Self {
        SpeechSessions { id: Some(id), limit: limit.max(1), make: Some(make), made: Vec::new(), unavailable: None }
    }

    /// Sessions made already (tests, benches, a caller that loads eagerly).
    pub fn ready(made: Vec<Box<dyn SpeechToText>>) -> Self {
        let id = made.first().map(|s| s.id().to_string());
        let unavailable = made.is_empty().then(|| "no speech model is loaded in this run".to_string());
        SpeechSessions { id, limit: made.len(), make: None, made, unavailable }
    }

    /// No speech model: audio events, and videos with a soundtrack, fail with `reason`.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        SpeechSessions { id: None, limit: 0, make: None, made: Vec::new(), unavailable: Some(reason.into()) }
    }

    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The most sessions this run may use side by side.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Sessions made so far.
    pub fn made(&self) -> usize {
        self.made.len()
    }

    /// At least one and at most `wanted` sessions (never more than the limit), making the missing
    /// ones now, side by side. A session that cannot be made lowers the limit to those made; when
    /// none can be, the reason, which every later call repeats without trying again.
    pub fn get(&mut self, wanted: usize) -> Result<&mut [Box<dyn SpeechToText>], String> {
        let wanted = wanted.max(1);
        let missing = wanted.min(self.limit).saturating_sub(self.made.len());
        if let (Some(make), true, None) = (self.make.as_ref(), missing > 0, self.unavailable.as_ref()) {
            let started = std::time::Instant::now();
            let made: Vec<Result<Box<dyn SpeechToText>, InferError>> = if missing == 1 {
                vec![make()]
            } else {
                std::thread::scope(|scope| {
                    let makers: Vec<_> = (0..missing).map(|_| scope.spawn(make)).collect();
                    makers
                        .into_iter()
                        .map(|m| {
                            m.join()
                                .unwrap_or_else(|_| Err(InferError::Config("making a speech session panicked".into())))
                        })
                        .collect()
                })
            };
            let seconds = started.elapsed().as_secs_f64();
            for result in made {
                match result {
                    Ok(session) => {
                        self.made.push(session);
                        tracing::info!(
                            "speech session {} of at most {} made ({missing} side by side in {seconds:.2} s)",
                            self.made.len(),
                            self.limit
                        );
                    }
                    Err(e) if self.made.is_empty() && self.unavailable.is_none() => {
                        tracing::warn!("speech model unavailable, audio events will fail: {e}");
                        self.unavailable = Some(format!("the speech model could not be loaded: {e}"));
                    }
                    Err(e) => tracing::warn!("a speech session could not be made ({e})"),
                }
            }
            if !self.made.is_empty() && self.made.len() < wanted.min(self.limit) {
                // A session that cannot be made now will not be made later: go on with those made.
                tracing::warn!("going on with {} speech session(s)", self.made.len());
                self.limit = self.made.len();
                self.unavailable = None;
            }
        }
        match wanted.min(self.made.len()) {
            0 => Err(self.unavailable.clone().unwrap_or_else(|| "no speech model is loaded in this run".into())),
            available => Ok(&mut self.made[..available]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_infer::{SpeechRequest, SpokenText};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Echo;
    impl SpeechToText for Echo {
        fn id(&self) -> &str {
            "echo@1"
        }
        fn restrict_languages(&mut self, _: &[&str]) {}
        fn transcribe(&mut self, requests: &[SpeechRequest<'_>]) -> Vec<Result<SpokenText, InferError>> {
            requests.iter().map(|r| Ok(SpokenText { text: r.pcm.len().to_string(), ..Default::default() })).collect()
        }
    }

    /// A maker that counts its calls and fails from call `fail_from` on.
    fn counting(fail_from: usize) -> (Arc<AtomicUsize>, MakeSession<'static>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let make: MakeSession<'static> = Box::new(move || {
            if c.fetch_add(1, Ordering::SeqCst) >= fail_from {
                Err(InferError::ModelMissing { name: "echo".into(), dir: "/nowhere".into() })
            } else {
                Ok(Box::new(Echo) as Box<dyn SpeechToText>)
            }
        });
        (calls, make)
    }

    #[test]
    fn nothing_is_made_before_it_is_needed_and_no_more_than_needed() {
        let (calls, make) = counting(usize::MAX);
        let mut sessions = SpeechSessions::on_demand("echo@1".into(), 4, make);
        assert_eq!((calls.load(Ordering::SeqCst), sessions.made(), sessions.id()), (0, 0, Some("echo@1")));
        assert_eq!(sessions.get(2).unwrap().len(), 2);
        assert_eq!(sessions.get(1).unwrap().len(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 2, "sessions are kept, not made again");
        assert_eq!(sessions.get(9).unwrap().len(), 4, "never more than the limit");
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn a_model_that_cannot_load_fails_every_call_with_its_reason_and_is_not_tried_again() {
        let (calls, make) = counting(0);
        let mut sessions = SpeechSessions::on_demand("echo@1".into(), 2, make);
        let first = sessions.get(2).err().unwrap();
        assert!(first.contains("could not be loaded") && first.contains("echo"), "{first}");
        assert_eq!(calls.load(Ordering::SeqCst), 2, "the two wanted were tried side by side");
        assert_eq!(sessions.get(1).err().unwrap(), first);
        assert_eq!(sessions.get(2).err().unwrap(), first);
        assert_eq!(calls.load(Ordering::SeqCst), 2, "and never again");
    }

    #[test]
    fn sessions_wanted_together_are_made_side_by_side() {
        // Each maker waits until the other has started: made one after the other, they would
        // wait for ever (bounded here by a timeout that fails the test).
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let (tx, rx) = std::sync::mpsc::channel();
        let make: MakeSession<'static> = Box::new(move || {
            barrier.wait();
            Ok(Box::new(Echo) as Box<dyn SpeechToText>)
        });
        std::thread::spawn(move || {
            let mut sessions = SpeechSessions::on_demand("echo@1".into(), 2, make);
            let n = sessions.get(2).map(|s| s.len()).unwrap_or(0);
            tx.send(n).unwrap();
        });
        assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(30)), Ok(2));
    }

    #[test]
    fn a_later_session_that_cannot_be_made_lowers_the_limit() {
        let (calls, make) = counting(1);
        let mut sessions = SpeechSessions::on_demand("echo@1".into(), 3, make);
        assert_eq!(sessions.get(3).unwrap().len(), 1);
        assert_eq!(sessions.limit(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 3, "the three wanted were tried side by side");
        assert_eq!(sessions.get(3).unwrap().len(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 3, "not tried again");
    }

    #[test]
    fn unavailable_and_empty_ready_sessions_explain_themselves() {
        assert_eq!(SpeechSessions::unavailable("not installed").get(1).err().unwrap(), "not installed");
        assert!(SpeechSessions::ready(Vec::new()).get(1).is_err());
        let mut ready = SpeechSessions::ready(vec![Box::new(Echo), Box::new(Echo)]);
        assert_eq!(ready.get(5).unwrap().len(), 2);
        assert_eq!((ready.id(), ready.limit()), (Some("echo@1"), 2));
    }
}
