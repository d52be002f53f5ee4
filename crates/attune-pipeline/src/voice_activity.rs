//! A speech model that decodes only where a voice activity model finds speech.

use attune_infer::{InferError, SpeechRequest, SpeechToText, SpokenText, VoiceActivity};
use std::ops::Range;

/// Samples a second of the recordings speech models take.
const RATE: f64 = attune_decode::audio::TARGET_RATE as f64;

/// A speech session with its voice activity model beside it: each recording's speech is found
/// first and handed to the speech model with the request, which decodes only there (packing a
/// long recording's stretches into few windows, an utterance at a time). A recording the voice
/// activity model fails on fails alone, with the reason.
pub(crate) struct Listening {
    pub(crate) speech: Box<dyn SpeechToText>,
    pub(crate) activity: Box<dyn VoiceActivity>,
    /// Both models' ids: a run's provenance names what decided which audio was heard.
    pub(crate) id: String,
}

impl SpeechToText for Listening {
    fn id(&self) -> &str {
        &self.id
    }

    fn batch(&self) -> usize {
        self.speech.batch()
    }

    fn restrict_languages(&mut self, codes: &[&str]) {
        self.speech.restrict_languages(codes)
    }

    fn transcribe(&mut self, requests: &[SpeechRequest<'_>]) -> Vec<Result<SpokenText, InferError>> {
        let started = std::time::Instant::now();
        // Each recording's speech, found unless the request already says where it is.
        let found: Vec<Result<Vec<Range<usize>>, InferError>> = requests
            .iter()
            .map(|r| r.speech.as_ref().map_or_else(|| self.activity.speech(r.pcm), |given| Ok(given.clone())))
            .collect();
        let heard: Vec<SpeechRequest<'_>> = requests
            .iter()
            .zip(&found)
            .filter_map(|(r, f)| Some(SpeechRequest { speech: Some(f.as_ref().ok()?.clone()), ..r.clone() }))
            .collect();
        tracing::debug!(
            "{}: {} recordings, {:.1} s of audio, {:.1} s of speech found in {:.2} s",
            self.activity.id(),
            requests.len(),
            requests.iter().map(|r| r.pcm.len()).sum::<usize>() as f64 / RATE,
            heard.iter().flat_map(|r| r.speech.iter().flatten()).map(|s| s.len()).sum::<usize>() as f64 / RATE,
            started.elapsed().as_secs_f64()
        );
        let mut transcripts = self.speech.transcribe(&heard).into_iter();
        found
            .into_iter()
            .map(|r| match r {
                Ok(_) => transcripts.next().unwrap_or_else(|| {
                    Err(InferError::Config(format!("{} gave fewer transcripts than recordings", self.speech.id())))
                }),
                Err(e) => Err(e),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Listening;
    use attune_infer::{InferError, SpeechRequest, SpeechToText, SpokenText, VoiceActivity};
    use std::ops::Range;

    /// Says where it was told the speech is, as its text.
    struct Echo;
    impl SpeechToText for Echo {
        fn id(&self) -> &str {
            "echo@1"
        }
        fn restrict_languages(&mut self, _: &[&str]) {}
        fn transcribe(&mut self, requests: &[SpeechRequest<'_>]) -> Vec<Result<SpokenText, InferError>> {
            requests.iter().map(|r| Ok(SpokenText { text: format!("{:?}", r.speech), ..Default::default() })).collect()
        }
    }

    /// Speech wherever a sample is above 0.5; a recording of NaN is an error.
    struct Loud;
    impl VoiceActivity for Loud {
        fn id(&self) -> &str {
            "loud@1"
        }
        fn speech(&mut self, pcm: &[f32]) -> Result<Vec<Range<usize>>, InferError> {
            if pcm.iter().any(|x| x.is_nan()) {
                return Err(InferError::Input { model: "loud@1".into(), message: "not a number".into() });
            }
            let first = pcm.iter().position(|x| *x > 0.5);
            let last = pcm.iter().rposition(|x| *x > 0.5);
            Ok(first.zip(last).map(|(a, b)| a..b + 1).into_iter().collect())
        }
    }

    #[test]
    fn each_recording_reaches_the_speech_model_with_where_it_speaks() {
        let mut listening = Listening { speech: Box::new(Echo), activity: Box::new(Loud), id: "echo@1+loud@1".into() };
        let (speaks, quiet, broken) = ([0.0, 0.9, 0.9, 0.0], [0.1; 4], [0.0, f32::NAN]);
        let given = SpeechRequest { speech: Some(vec![0..1, 2..3]), ..SpeechRequest::detect(&quiet) };
        let requests =
            [SpeechRequest::detect(&speaks), SpeechRequest::detect(&broken), SpeechRequest::detect(&quiet), given];
        let out: Vec<Result<String, String>> =
            listening.transcribe(&requests).into_iter().map(|r| r.map(|s| s.text).map_err(|e| e.to_string())).collect();
        assert_eq!(out[0].as_deref(), Ok("Some([1..3])"));
        assert!(out[1].as_ref().is_err_and(|e| e.contains("not a number")), "{:?}", out[1]);
        assert_eq!(out[2].as_deref(), Ok("Some([])"), "no speech found is no speech, not the model's own guess");
        assert_eq!(out[3].as_deref(), Ok("Some([0..1, 2..3])"), "speech already found is not looked for again");
        assert_eq!(listening.id(), "echo@1+loud@1");
    }
}
