//! The image decoder on arbitrary bytes, with the default limits (as `attune run` uses them) and
//! with small ones, at full and at reduced scale. A decoded image must match its dimensions.
#![no_main]

use attune_decode_image::{decode_bytes, shrink, ImageLimits, RgbImage};
use libfuzzer_sys::fuzz_target;

fn check(img: RgbImage, limits: &ImageLimits) {
    assert!(img.width > 0 && img.height > 0);
    assert!(img.width <= limits.max_side && img.height <= limits.max_side);
    assert_eq!(img.data.len(), img.width as usize * img.height as usize * 3);
    let small = shrink(img, 64);
    assert_eq!(small.data.len(), small.width as usize * small.height as usize * 3);
}

fuzz_target!(|data: &[u8]| {
    let small = ImageLimits { max_file_bytes: 1 << 20, max_pixels: 1 << 20, max_side: 2048 };
    for (limits, min_short_side) in [(ImageLimits::default(), 256), (small, 0), (small, 16)] {
        if let Ok(img) = decode_bytes(data, &limits, min_short_side) {
            check(img, &limits);
        }
    }
});
