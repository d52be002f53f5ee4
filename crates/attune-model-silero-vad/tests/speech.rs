//! The installed Silero VAD on real speech (the espeak-ng fixtures of `fixtures/audio`, made by
//! `fixtures/make_audio.py`) set in steady noise: the speech is found where it was put, and the
//! noise around it holds none.

use attune_decode_audio::{decode_file, AudioLimits};
use attune_infer::VoiceActivity;
use attune_model_silero_vad::SileroVad;
use attune_testkit::brown_noise;

const RATE: usize = 16_000;

fn speech(name: &str) -> Vec<f32> {
    let path = attune_testkit::repo_path("fixtures/audio").join(name);
    assert!(path.exists(), "{} is missing: run `python3 fixtures/make_audio.py`", path.display());
    decode_file(&path, &AudioLimits::default()).unwrap().samples
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

#[test]
fn speech_in_steady_noise_is_found_where_it_was_put_and_nowhere_else() {
    let runtime = attune_testkit::cpu_runtime(1);
    let mut vad = SileroVad::load(&runtime, &attune_testkit::installed_model("silero-vad")).unwrap();
    // Two minutes of noise with two spoken questions, at 20 s and at 90 s.
    let mut pcm = brown_noise(120 * RATE, 0.05);
    assert!(rms(&pcm) > 0.01, "noise far above the energy gate's silence level: {}", rms(&pcm));
    let (guitar, baking) = (speech("guitar-espeak.wav"), speech("baking-espeak.wav"));
    let placed = [(20 * RATE, &guitar), (90 * RATE, &baking)];
    for (at, said) in placed {
        for (x, s) in pcm[at..at + said.len()].iter_mut().zip(said.iter()) {
            *x += s;
        }
    }
    let found = vad.speech(&pcm).unwrap();
    eprintln!(
        "found: {:?}",
        found.iter().map(|r| (r.start as f32 / RATE as f32, r.end as f32 / RATE as f32)).collect::<Vec<_>>()
    );
    // Every stretch found lies within a spoken question (give or take half a second)...
    let slack = RATE / 2;
    for r in &found {
        assert!(
            placed.iter().any(|(at, said)| r.start + slack >= *at && r.end <= at + said.len() + slack),
            "speech found in the noise at {r:?}"
        );
    }
    // ...and each question is mostly covered: its speech is decoded.
    for (at, said) in placed {
        let covered: usize = found.iter().map(|r| r.end.min(at + said.len()).saturating_sub(r.start.max(at))).sum();
        assert!(covered * 10 >= said.len() * 7, "{covered} of {} samples of speech at {at} found", said.len());
    }
    // The noise alone holds no speech at all.
    assert!(vad.speech(&brown_noise(60 * RATE, 0.05)).unwrap().is_empty());
    // Nor does silence, nor an empty recording.
    assert!(vad.speech(&vec![0.0; 10 * RATE]).unwrap().is_empty());
    assert!(vad.speech(&[]).unwrap().is_empty());
}

#[test]
fn a_recording_is_read_the_same_in_blocks_as_in_one_call() {
    // The LSTM's state is carried from block to block (512 frames, 16.4 s): a recording longer
    // than a block gets the probabilities its halves would get read on in one stream.
    let runtime = attune_testkit::cpu_runtime(1);
    let mut vad = SileroVad::load(&runtime, &attune_testkit::installed_model("silero-vad")).unwrap();
    let said = speech("camping-espeak.wav");
    let mut pcm = brown_noise(40 * RATE, 0.02);
    for (x, s) in pcm[15 * RATE..].iter_mut().zip(said.iter()) {
        *x += s;
    }
    let whole = vad.probabilities(&pcm).unwrap();
    assert_eq!(whole.len(), pcm.len().div_ceil(512));
    // The first block alone gives the first block's probabilities: state only flows forward.
    let first = vad.probabilities(&pcm[..512 * 512]).unwrap();
    assert_eq!(&whole[..512], &first[..]);
    // Speech right across the block boundary (16.4 s) is found on both sides of it.
    assert!(whole[470..512].iter().any(|p| *p > 0.5) && whole[512..560].iter().any(|p| *p > 0.5));
}
