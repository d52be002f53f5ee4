//! The video decoder (FFmpeg through ffmpeg-next) on arbitrary bytes. FFmpeg reads files, so each
//! input is written to a temporary file first. Small limits keep an input that claims a long
//! or large video cheap; every decoded frame must match its dimensions and the limits.
#![no_main]

use attune_decode_video::{decode_file, Sampling, VideoLimits, VideoOptions};
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::NamedTempFile::new().expect("temporary file");
    file.write_all(data).expect("write");
    let limits = VideoLimits { max_file_bytes: 1 << 20, max_seconds: 30.0, max_width: 640, max_height: 640, max_frames: 4 };
    for sampling in [Sampling::Auto, Sampling::EveryFrame] {
        let options = VideoOptions { limits, sampling, frame_short_side: 32, threads: 1, ..Default::default() };
        if let Ok(video) = decode_file(file.path(), &options) {
            assert!(video.frames.len() <= limits.max_frames);
            for f in &video.frames {
                assert_eq!(f.image.data.len(), f.image.width as usize * f.image.height as usize * 3);
                assert!(f.at_s <= limits.max_seconds);
            }
            if let Some(pcm) = &video.audio {
                assert!(pcm.seconds() <= limits.max_seconds + 1.0);
            }
        }
    }
});
