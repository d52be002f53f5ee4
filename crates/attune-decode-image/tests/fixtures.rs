//! Real photos from registry packages and hand-made bad files (`fixtures/make_images.py`).

use attune_decode_image::{decode_file, ImageError, ImageLimits, RgbImage};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/images").join(name);
    assert!(p.exists(), "{} missing: run `python3 fixtures/make_images.py`", p.display());
    p
}

fn decode(name: &str) -> Result<RgbImage, ImageError> {
    decode_file(&fixture(name), &ImageLimits::default(), 256)
}

fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    a.data.iter().zip(&b.data).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum::<f64>() / a.data.len() as f64
}

#[test]
fn every_format_decodes_to_the_same_picture() {
    let png = decode("chelsea.png").unwrap();
    assert_eq!((png.width, png.height), (451, 300));
    let webp = decode("chelsea.webp").unwrap();
    assert!(mean_abs_diff(&png, &webp) < 6.0);
    // Stored sideways with EXIF orientation 6: decoded upright, like the original.
    let rotated = decode("chelsea-exif-rotated.jpg").unwrap();
    assert!(mean_abs_diff(&png, &rotated) < 6.0, "EXIF orientation not applied (or applied twice)");
    // A PNG named .jpg: the bytes decide, not the name.
    assert_eq!(decode("png-named.jpg").unwrap(), png);
    // HEIC through libheif, same picture as the PNG it was made from.
    let heic = decode("motorcycle.heic").unwrap();
    let src = decode("motorcycle.png").unwrap();
    assert!(mean_abs_diff(&src, &heic) < 6.0);
    // AVIF through libheif's AV1 decoder.
    let avif = decode("coffee.avif").unwrap();
    assert!(mean_abs_diff(&decode("coffee.png").unwrap(), &avif) < 8.0);
}

#[test]
fn big_jpegs_decode_at_a_reduced_scale() {
    // 4000×3000: 1/8 scale still leaves a shorter side of 375 ≥ 256.
    let big = decode("big-12mp.jpg").unwrap();
    assert_eq!((big.width, big.height), (500, 375));
    let full = decode_file(&fixture("big-12mp.jpg"), &ImageLimits::default(), 0).unwrap();
    assert_eq!((full.width, full.height), (4000, 3000));
}

#[test]
fn bad_files_are_clear_errors() {
    assert!(matches!(decode("empty.jpg"), Err(ImageError::Empty)));
    assert!(matches!(decode("truncated-1k.jpg"), Err(ImageError::Truncated(_))));
    assert!(matches!(decode("truncated-half.jpg"), Err(ImageError::Truncated(_))));
    assert!(matches!(decode("random.jpg"), Err(ImageError::Unsupported)));
    let huge = decode("huge-header.png");
    assert!(matches!(huge, Err(ImageError::TooLarge { .. } | ImageError::OverLimit(_))), "{huge:?}");
    let small = ImageLimits { max_pixels: 1_000_000, ..Default::default() };
    assert!(matches!(decode_file(&fixture("big-12mp.jpg"), &small, 256), Err(ImageError::TooLarge { .. })));
}
