//! The decoder on the files `fixtures/make_video.py` makes: every codec/container pair, the
//! sampling strategies on variable frame rates and sparse keyframes, rotation, limits, bad files.

use attune_decode_video::{decode_file, Sampling, Strategy, VideoError, VideoLimits, VideoOptions};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/video");
    assert!(dir.join("manifest.jsonl").exists(), "fixtures/video missing: run `python3 fixtures/make_video.py`");
    dir.join(name)
}

#[test]
fn every_codec_pair_gives_frames_and_speech() {
    for name in ["coffee-baking.mp4", "cat-baking.mov", "motorcycle-baking.webm", "camera-baking.mkv"] {
        let v = decode_file(&fixture(name), &VideoOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let audio = v.audio.as_ref().unwrap_or_else(|| panic!("{name}: no audio"));
        eprintln!(
            "{name}: {:.2} s, {} frames of {} decoded ({:?}, keyframe gap {:?}), audio {:.2} s",
            v.duration_s,
            v.frames.len(),
            v.decoded_frames,
            v.strategy,
            v.keyframe_gap_s,
            audio.seconds()
        );
        assert!((audio.seconds() - v.duration_s).abs() < 0.5, "{name}: audio {:.2} s", audio.seconds());
        // One frame per second of video, scaled to the image model's short side.
        assert!(v.frames.len() as f64 >= v.duration_s.floor(), "{name}: {} frames", v.frames.len());
        for f in &v.frames {
            assert_eq!((f.image.width, f.image.height), (455, 256), "{name}");
            assert_eq!(f.image.data.len(), 455 * 256 * 3);
        }
        // The photo is centred on black bars: its middle is not black.
        let mid = &v.frames[0].image;
        let at = ((128 * 455) + 227) * 3;
        assert!(mid.data[at..at + 3].iter().map(|&b| b as u32).sum::<u32>() > 30, "{name}: black middle");
        assert_eq!(v.corrupt_packets, 0);
    }
}

#[test]
fn variable_frame_rate_is_sampled_by_timestamp() {
    // 30 fps for 2 s, then 3 fps: counting frames would put five samples in the first 2 s.
    let v = decode_file(&fixture("vfr.mp4"), &VideoOptions::default()).unwrap();
    let times: Vec<f64> = v.frames.iter().map(|f| f.at_s).collect();
    eprintln!("vfr: {times:.2?} ({:?})", v.strategy);
    assert_eq!(times.len(), 6, "{times:?}");
    for (i, t) in times.iter().enumerate() {
        assert!(*t >= i as f64 - 1e-6 && *t < i as f64 + 0.34, "sample {i} at {t}");
    }
    assert!(v.audio.is_none());
}

#[test]
fn sparse_keyframes_decode_every_frame_and_dense_ones_only_keyframes() {
    let sparse = fixture("sparse-keyframes.mp4");
    let auto = decode_file(&sparse, &VideoOptions::default()).unwrap();
    assert_eq!(auto.strategy, Strategy::EveryFrame);
    assert!(auto.keyframe_gap_s.unwrap() >= 9.9, "{:?}", auto.keyframe_gap_s);
    assert_eq!(auto.frames.len(), 12);
    // Frames nothing refers to are skipped between sampling marks; the frames kept are the same,
    // pixel for pixel, as when all 360 are decoded.
    let all = decode_file(&sparse, &VideoOptions { skip_unreferenced: false, ..Default::default() }).unwrap();
    assert_eq!(all.decoded_frames, 360);
    assert!(auto.decoded_frames < 300, "{} of 360 decoded", auto.decoded_frames);
    for (a, b) in auto.frames.iter().zip(&all.frames) {
        assert_eq!(a.at_s, b.at_s);
        assert!(a.image.data == b.image.data, "frame at {} s differs", a.at_s);
    }
    assert_eq!(auto.frames.len(), all.frames.len());
    let keyframes =
        decode_file(&sparse, &VideoOptions { sampling: Sampling::Keyframes, ..Default::default() }).unwrap();
    assert_eq!(keyframes.frames.len(), 2, "keyframes at 0 s and 10 s only");

    let dense = decode_file(&fixture("coffee-baking.mp4"), &VideoOptions::default()).unwrap();
    assert_eq!(dense.strategy, Strategy::Keyframes);
    assert!(dense.keyframe_gap_s.unwrap() <= 1.01, "{:?}", dense.keyframe_gap_s);
    assert_eq!(dense.decoded_frames as usize, dense.frames.len(), "only keyframes went through the decoder");
    let every = decode_file(
        &fixture("coffee-baking.mp4"),
        &VideoOptions { sampling: Sampling::EveryFrame, skip_unreferenced: false, ..Default::default() },
    )
    .unwrap();
    assert_eq!(every.frames.len(), dense.frames.len());
    assert!(every.decoded_frames > 180, "every frame of 6.2 s at 30 fps: {}", every.decoded_frames);
}

#[test]
fn display_rotation_is_applied() {
    let v = decode_file(&fixture("rotated.mp4"), &VideoOptions::default()).unwrap();
    assert_eq!((v.frames[0].image.width, v.frames[0].image.height), (256, 455));
}

#[test]
fn the_frame_cap_spreads_over_the_whole_video() {
    let limits = VideoLimits { max_frames: 3, ..Default::default() };
    let v = decode_file(&fixture("sparse-keyframes.mp4"), &VideoOptions { limits, ..Default::default() }).unwrap();
    let times: Vec<f64> = v.frames.iter().map(|f| f.at_s).collect();
    assert_eq!(times.len(), 3);
    assert!(times[2] >= 8.0, "{times:?}");
}

#[test]
fn limits_hold_before_decoding() {
    let file = fixture("coffee-baking.mp4");
    let short = VideoLimits { max_seconds: 3.0, ..Default::default() };
    let e = decode_file(&file, &VideoOptions { limits: short, ..Default::default() }).unwrap_err();
    assert!(matches!(e, VideoError::TooLong { .. }), "{e}");
    let narrow = VideoLimits { max_width: 320, ..Default::default() };
    let e = decode_file(&file, &VideoOptions { limits: narrow, ..Default::default() }).unwrap_err();
    assert!(matches!(e, VideoError::TooLarge { .. }), "{e}");
    let small = VideoLimits { max_file_bytes: 1000, ..Default::default() };
    let e = decode_file(&file, &VideoOptions { limits: small, ..Default::default() }).unwrap_err();
    assert!(matches!(e, VideoError::FileTooLarge { .. }), "{e}");
}

#[test]
fn bad_files_fail_with_their_reason() {
    for (name, want) in [
        ("cut-half.mp4", "stops early"),
        ("cut-before-index.mp4", "cannot open the video"),
        ("concat.mp4", "not an allowed container (an FFmpeg concat list)"),
        ("playlist.mp4", "not an allowed container (an M3U/HLS playlist)"),
        ("random.webm", "not an allowed container"),
        ("empty.mp4", "empty"),
    ] {
        let e = decode_file(&fixture(name), &VideoOptions::default()).unwrap_err().to_string();
        eprintln!("{name}: {e}");
        assert!(e.contains(want), "{name}: `{e}` does not say `{want}`");
    }
}
