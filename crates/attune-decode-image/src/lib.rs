//! Photos and generated images to upright 8-bit RGB, strictly and within limits.
//!
//! - The format is read from the bytes, never from the file name.
//! - Limits hold before any pixel buffer is allocated: file size, then the dimensions the header
//!   claims (a header claiming 100000×100000 is refused without allocating it).
//! - Truncated files are errors, not grey-filled images: a JPEG must reach its end-of-image marker
//!   after the first scan; PNG and WebP decoders fail on missing data.
//! - JPEGs are decoded at a reduced scale (1/2, 1/4, 1/8; libjpeg-turbo's DCT scaling) when the
//!   caller needs fewer pixels.
//! - EXIF orientation is applied to JPEG, PNG and WebP; libheif applies HEIF transformations itself,
//!   so it is not applied twice there.

use image::ImageDecoder;
use std::io::Cursor;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read the image: {0}")]
    Io(#[from] std::io::Error),
    #[error("empty file")]
    Empty,
    #[error("file is {bytes} bytes, over the {limit}-byte limit")]
    FileTooLarge { bytes: u64, limit: u64 },
    #[error("image claims {width}x{height} pixels, over the limit ({limit})")]
    TooLarge { width: u64, height: u64, limit: String },
    #[error("image exceeds the decoding limits: {0}")]
    OverLimit(String),
    #[error("image claims zero width or height")]
    ZeroSize,
    #[error("truncated image: {0}")]
    Truncated(&'static str),
    #[error("corrupt {format}: {message}")]
    Corrupt { format: &'static str, message: String },
    #[error("not a supported image format (JPEG, PNG, WebP, HEIC/AVIF)")]
    Unsupported,
}

/// Bounds on untrusted images, checked before decoding.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageLimits {
    pub max_file_bytes: u64,
    /// Width × height as the header claims it.
    pub max_pixels: u64,
    pub max_side: u32,
}

impl Default for ImageLimits {
    fn default() -> Self {
        // 200 MP covers the largest phone sensors; 64 MiB the largest such JPEG/HEIC.
        ImageLimits { max_file_bytes: 64 << 20, max_pixels: 200_000_000, max_side: 32_768 }
    }
}

impl ImageLimits {
    fn check(&self, width: u64, height: u64) -> Result<(), ImageError> {
        if width == 0 || height == 0 {
            return Err(ImageError::ZeroSize);
        }
        if width > self.max_side as u64 || height > self.max_side as u64 {
            return Err(ImageError::TooLarge { width, height, limit: format!("{} px a side", self.max_side) });
        }
        if width * height > self.max_pixels {
            return Err(ImageError::TooLarge { width, height, limit: format!("{} pixels", self.max_pixels) });
        }
        Ok(())
    }
}

/// Upright, interleaved 8-bit RGB.
#[derive(Clone, PartialEq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for RgbImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RgbImage({}x{})", self.width, self.height)
    }
}

/// The container, sniffed from the first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    WebP,
    Heif,
}

pub fn sniff(bytes: &[u8]) -> Option<Format> {
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] => Some(Format::Jpeg),
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Format::Png),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(Format::WebP),
        [_, _, _, _, b'f', b't', b'y', b'p', brand @ ..] if brand.len() >= 4 => {
            const HEIF_BRANDS: [&[u8; 4]; 8] = [b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1", b"avif"];
            HEIF_BRANDS.iter().any(|b| &brand[..4] == *b).then_some(Format::Heif)
        }
        _ => None,
    }
}

/// Read and decode an image file. `min_short_side` is the smallest shorter side the caller
/// needs: a JPEG may be decoded at a reduced scale that still gives at least that much.
pub fn decode_file(path: &Path, limits: &ImageLimits, min_short_side: u32) -> Result<RgbImage, ImageError> {
    let bytes = std::fs::metadata(path)?.len();
    if bytes > limits.max_file_bytes {
        return Err(ImageError::FileTooLarge { bytes, limit: limits.max_file_bytes });
    }
    decode_bytes(&std::fs::read(path)?, limits, min_short_side)
}

/// Decode an image held in memory (see [`decode_file`]).
pub fn decode_bytes(bytes: &[u8], limits: &ImageLimits, min_short_side: u32) -> Result<RgbImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(ImageError::FileTooLarge { bytes: bytes.len() as u64, limit: limits.max_file_bytes });
    }
    match sniff(bytes).ok_or(ImageError::Unsupported)? {
        Format::Jpeg => jpeg::decode(bytes, limits, min_short_side),
        Format::Png => with_image_crate(bytes, image::ImageFormat::Png, limits),
        Format::WebP => with_image_crate(bytes, image::ImageFormat::WebP, limits),
        Format::Heif => heif::decode(bytes, limits),
    }
}

/// PNG, WebP and full-scale JPEG through the `image` crate, with its allocation limits set from ours.
fn with_image_crate(bytes: &[u8], format: image::ImageFormat, limits: &ImageLimits) -> Result<RgbImage, ImageError> {
    let name = match format {
        image::ImageFormat::Png => "PNG",
        image::ImageFormat::Jpeg => "JPEG",
        _ => "WebP",
    };
    let corrupt = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => ImageError::OverLimit(e.to_string()),
        image::ImageError::IoError(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImageError::Truncated("data ends early")
        }
        other => ImageError::Corrupt { format: name, message: other.to_string() },
    };
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_pixels * 4);
    reader.limits(l);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (w, h) = decoder.dimensions();
    limits.check(w as u64, h as u64)?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    img.apply_orientation(orientation);
    let rgb = img.into_rgb8();
    Ok(RgbImage { width: rgb.width(), height: rgb.height(), data: rgb.into_raw() })
}

/// Shrink `img` so its shorter side is `max_short_side` when it is larger (bilinear, aspect kept);
/// smaller images are returned as they are.
pub fn shrink(img: RgbImage, max_short_side: u32) -> RgbImage {
    // Typed to RGB8: the untyped `Resizer::resize` compiles the convolution for 13 pixel formats.
    use fast_image_resize::images::{TypedImage, TypedImageRef};
    use fast_image_resize::pixels::U8x3;
    use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
    let short = img.width.min(img.height);
    if max_short_side == 0 || short <= max_short_side {
        return img;
    }
    let f = max_short_side as f64 / short as f64;
    let (w, h) = (((img.width as f64 * f).round() as u32).max(1), ((img.height as f64 * f).round() as u32).max(1));
    let mut data = vec![0u8; w as usize * h as usize * 3];
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    let resized = TypedImageRef::<U8x3>::from_buffer(img.width, img.height, &img.data)
        .and_then(|src| Ok((src, TypedImage::<U8x3>::from_buffer(w, h, &mut data)?)))
        .map_err(|e| e.to_string())
        .and_then(|(src, mut dst)| Resizer::new().resize_typed(&src, &mut dst, &options).map_err(|e| e.to_string()));
    match resized {
        Ok(()) => RgbImage { width: w, height: h, data },
        Err(_) => img, // the buffer did not match its size: leave it for the model to refuse
    }
}

/// Rotate/flip an RGB buffer by an EXIF orientation (1–8).
fn orient(img: RgbImage, exif_orientation: u8) -> RgbImage {
    let Some(o) = image::metadata::Orientation::from_exif(exif_orientation) else { return img };
    if o == image::metadata::Orientation::NoTransforms {
        return img;
    }
    let buf = image::RgbImage::from_raw(img.width, img.height, img.data).expect("buffer matches its dimensions");
    let mut dynamic = image::DynamicImage::ImageRgb8(buf);
    dynamic.apply_orientation(o);
    let rgb = dynamic.into_rgb8();
    RgbImage { width: rgb.width(), height: rgb.height(), data: rgb.into_raw() }
}

mod jpeg {
    use super::*;

    pub(super) fn decode(bytes: &[u8], limits: &ImageLimits, min_short_side: u32) -> Result<RgbImage, ImageError> {
        let (scan, size) = first_scan(bytes)?;
        // Our limits before libjpeg's own (which would refuse 65535 px a side in its own words);
        // a zero side (height defined later by a DNL marker) is left to libjpeg to explain.
        if let Some((w, h)) = size.filter(|&(w, h)| w > 0 && h > 0) {
            limits.check(w as u64, h as u64)?;
        }
        if !has_end_marker_after(bytes, scan) {
            return Err(ImageError::Truncated("JPEG has no end-of-image marker after its scan data"));
        }
        // libjpeg reports errors by unwinding out of its callbacks (see `strict_error_manager`);
        // each becomes the failure of this one image.
        match std::panic::catch_unwind(|| reduced(bytes, limits, min_short_side)) {
            Ok(result) => result,
            Err(payload) => Err(ImageError::Corrupt { format: "JPEG", message: panic_message(payload) }),
        }
    }

    /// Decode through libjpeg-turbo's decoder (the `mozjpeg` crate builds it from source): when the
    /// caller needs at most half the pixels a side, its DCT scaling (1/2, 1/4, 1/8, as Pillow's
    /// `draft()` picks them) skips most of the inverse DCT and all of the upsampling it would
    /// throw away. At full scale, zune-jpeg (through `image`) is used instead.
    fn reduced(bytes: &[u8], limits: &ImageLimits, min_short_side: u32) -> Result<RgbImage, ImageError> {
        let io = |e: std::io::Error| ImageError::Corrupt { format: "JPEG", message: e.to_string() };
        let mut decoder = mozjpeg::Decompress::with_err(strict_error_manager())
            .with_markers(&[mozjpeg::Marker::APP(1)])
            .from_mem(bytes)
            .map_err(io)?;
        let (w, h) = (decoder.width() as u32, decoder.height() as u32);
        limits.check(w as u64, h as u64)?;
        let Some(eighths) = scale_in_eighths(w, h, min_short_side) else {
            return with_image_crate(bytes, image::ImageFormat::Jpeg, limits);
        };
        let orientation = decoder
            .markers()
            .filter(|m| m.marker == mozjpeg::Marker::APP(1))
            .find_map(|m| m.data.starts_with(b"Exif\0\0").then(|| exif_orientation(m.data)).flatten())
            .unwrap_or(1);
        decoder.scale(eighths);
        let (data, w, h) = match decoder.image().map_err(io)? {
            mozjpeg::Format::RGB(mut rgb) => {
                let (w, h) = (rgb.width() as u32, rgb.height() as u32);
                let data = rgb.read_scanlines::<u8>().map_err(io)?;
                rgb.finish().map_err(io)?;
                (data, w, h)
            }
            mozjpeg::Format::Gray(mut grey) => {
                let (w, h) = (grey.width() as u32, grey.height() as u32);
                let g = grey.read_scanlines::<u8>().map_err(io)?;
                grey.finish().map_err(io)?;
                (g.iter().flat_map(|&v| [v, v, v]).collect(), w, h)
            }
            mozjpeg::Format::CMYK(mut cmyk) => {
                let (w, h) = (cmyk.width() as u32, cmyk.height() as u32);
                let p = cmyk.read_scanlines::<u8>().map_err(io)?;
                cmyk.finish().map_err(io)?;
                // Adobe CMYK JPEGs store inverted values: each channel times K is the colour.
                let rgb = p
                    .chunks_exact(4)
                    .flat_map(|p| {
                        let k = p[3] as u16;
                        [(p[0] as u16 * k / 255) as u8, (p[1] as u16 * k / 255) as u8, (p[2] as u16 * k / 255) as u8]
                    })
                    .collect();
                (rgb, w, h)
            }
        };
        if data.len() != w as usize * h as usize * 3 {
            return Err(ImageError::Corrupt {
                format: "JPEG",
                message: "decoded size does not match the header".into(),
            });
        }
        Ok(orient(RgbImage { width: w, height: h, data }, orientation))
    }

    /// The smallest of libjpeg's scales 1/8, 2/8, 4/8 whose output keeps the shorter side at
    /// least `min_short_side` (output sides are rounded up, as libjpeg does); `None` when
    /// only full scale will do.
    pub(super) fn scale_in_eighths(w: u32, h: u32, min_short_side: u32) -> Option<u8> {
        if min_short_side == 0 || w.min(h) < 2 * min_short_side {
            return None;
        }
        let short = w.min(h) as u64;
        [1u8, 2, 4].into_iter().find(|&e| (short * e as u64).div_ceil(8) >= min_short_side as u64)
    }

    /// libjpeg's standard error manager, but errors unwind (caught in `decode`) instead of
    /// exiting, and the warnings that mean the scan data is damaged are errors too: libjpeg would
    /// otherwise fill what it could not decode with grey and carry on.
    fn strict_error_manager() -> mozjpeg_sys::jpeg_error_mgr {
        use mozjpeg_sys::{jpeg_common_struct, jpeg_error_mgr};
        extern "C-unwind" fn error_exit(cinfo: &mut jpeg_common_struct) {
            let message = format_message(cinfo);
            std::panic::resume_unwind(Box::new(message));
        }
        extern "C-unwind" fn emit_message(cinfo: &mut jpeg_common_struct, level: std::os::raw::c_int) {
            let code = unsafe { cinfo.err.as_ref() }.map_or(0, |e| e.msg_code);
            let damaged = [
                mozjpeg_sys::JWRN_HIT_MARKER,
                mozjpeg_sys::JWRN_HUFF_BAD_CODE,
                mozjpeg_sys::JWRN_JPEG_EOF,
                mozjpeg_sys::JWRN_MUST_RESYNC,
            ];
            if level < 0 && damaged.contains(&code) {
                let message = format_message(cinfo);
                std::panic::resume_unwind(Box::new(message));
            }
        }
        fn format_message(cinfo: &mut jpeg_common_struct) -> String {
            let Some(err) = (unsafe { cinfo.err.as_ref() }) else { return "libjpeg error".into() };
            let (code, format) = (err.msg_code, err.format_message);
            let Some(format) = format else { return format!("libjpeg message {code}") };
            let buffer = [0u8; 80];
            // SAFETY: libjpeg writes at most JMSG_LENGTH_MAX (80) bytes, NUL included, into the
            // buffer (the binding declares it `&[u8; 80]`, though C writes through it).
            unsafe { format(cinfo, &buffer) };
            let text = buffer.split(|&c| c == 0).next().unwrap_or_default();
            String::from_utf8_lossy(text).into_owned()
        }
        // SAFETY: jpeg_std_error only fills in the struct it is given.
        let mut err: jpeg_error_mgr = unsafe { std::mem::zeroed() };
        unsafe { mozjpeg_sys::jpeg_std_error(&mut err) };
        err.error_exit = Some(error_exit);
        err.emit_message = Some(emit_message);
        err
    }

    fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
        match payload.downcast::<String>() {
            Ok(s) => *s,
            Err(payload) => payload.downcast_ref::<&str>().map_or("libjpeg failed".into(), |s| s.to_string()),
        }
    }

    /// The offset just past the first start-of-scan segment, and the width and height of the
    /// start-of-frame segment before it, walking the marker segments (so an EXIF thumbnail's
    /// markers inside APP1 are skipped, not mistaken for the image's).
    fn first_scan(bytes: &[u8]) -> Result<(usize, Option<(u32, u32)>), ImageError> {
        let mut size = None;
        let mut i = 2; // after SOI
        loop {
            while bytes.get(i) == Some(&0xFF) && bytes.get(i + 1) == Some(&0xFF) {
                i += 1; // fill bytes
            }
            let (Some(&0xFF), Some(&marker)) = (bytes.get(i), bytes.get(i + 1)) else {
                return Err(ImageError::Truncated("JPEG ends before its first scan"));
            };
            i += 2;
            if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
                continue; // markers without a length
            }
            let len = match (bytes.get(i), bytes.get(i + 1)) {
                (Some(&a), Some(&b)) => u16::from_be_bytes([a, b]) as usize,
                _ => return Err(ImageError::Truncated("JPEG ends inside a segment header")),
            };
            if len < 2 {
                return Err(ImageError::Corrupt { format: "JPEG", message: "segment length below 2".into() });
            }
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): precision, height, width.
            if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) && len >= 7 {
                if let Some(f) = bytes.get(i + 3..i + 7) {
                    let (h, w) = (u16::from_be_bytes([f[0], f[1]]), u16::from_be_bytes([f[2], f[3]]));
                    size.get_or_insert((w as u32, h as u32));
                }
            }
            i += len;
            if i > bytes.len() {
                return Err(ImageError::Truncated("JPEG ends inside a segment"));
            }
            if marker == 0xDA {
                return Ok((i, size));
            }
        }
    }

    /// Entropy-coded data stuffs every 0xFF with 0x00, so an EOI (FF D9) after the scan header
    /// can only be a real marker.
    fn has_end_marker_after(bytes: &[u8], from: usize) -> bool {
        bytes[from..].windows(2).any(|w| w == [0xFF, 0xD9])
    }

    /// The Orientation tag (0x0112) of IFD0 in a raw EXIF block (starting at the TIFF header).
    pub(super) fn exif_orientation(exif: &[u8]) -> Option<u8> {
        let exif = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
        let le = match exif.get(..2)? {
            b"II" => true,
            b"MM" => false,
            _ => return None,
        };
        let u16_at = |o: usize| -> Option<u16> {
            let b = [*exif.get(o)?, *exif.get(o + 1)?];
            Some(if le { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) })
        };
        let u32_at = |o: usize| -> Option<u32> {
            let b = [*exif.get(o)?, *exif.get(o + 1)?, *exif.get(o + 2)?, *exif.get(o + 3)?];
            Some(if le { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
        };
        let ifd = u32_at(4)? as usize;
        let entries = u16_at(ifd)? as usize;
        (0..entries.min(512)).find_map(|k| {
            let e = ifd + 2 + k * 12;
            (u16_at(e)? == 0x0112).then(|| u16_at(e + 8)).flatten().map(|v| v as u8)
        })
    }
}

mod heif {
    use super::*;
    use libheif_rs::{ColorSpace, HeifContext, LibHeif, RgbChroma};

    pub(super) fn decode(bytes: &[u8], limits: &ImageLimits) -> Result<RgbImage, ImageError> {
        let corrupt = |e: libheif_rs::HeifError| ImageError::Corrupt { format: "HEIF", message: e.to_string() };
        let ctx = HeifContext::read_from_bytes(bytes).map_err(corrupt)?;
        let handle = ctx.primary_image_handle().map_err(corrupt)?;
        limits.check(handle.width() as u64, handle.height() as u64)?;
        // libheif applies the container's rotation and mirroring (irot/imir) while decoding.
        let lib = LibHeif::new();
        let image = lib.decode(&handle, ColorSpace::Rgb(RgbChroma::Rgb), None).map_err(corrupt)?;
        let planes = image.planes();
        let plane = planes.interleaved.ok_or(ImageError::Corrupt { format: "HEIF", message: "no RGB plane".into() })?;
        let (w, h) = (plane.width, plane.height);
        limits.check(w as u64, h as u64)?;
        let row = w as usize * 3;
        let mut data = Vec::with_capacity(row * h as usize);
        for y in 0..h as usize {
            let start = y * plane.stride;
            data.extend_from_slice(
                plane.data.get(start..start + row).ok_or(ImageError::Truncated("HEIF plane shorter than its size"))?,
            );
        }
        Ok(RgbImage { width: w, height: h, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w`×`h` JPEG of smooth gradients (so every block has data), from the `image` encoder.
    fn gradient_jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).unwrap();
        out
    }

    #[test]
    fn the_scale_is_the_smallest_that_keeps_the_shorter_side() {
        assert_eq!(jpeg::scale_in_eighths(4000, 3000, 256), Some(1)); // 500x375
        assert_eq!(jpeg::scale_in_eighths(3000, 4000, 256), Some(1));
        assert_eq!(jpeg::scale_in_eighths(2048, 1536, 256), Some(2)); // 1/8 gives 192
        assert_eq!(jpeg::scale_in_eighths(1200, 800, 256), Some(4)); // 1/4 gives 200
        assert_eq!(jpeg::scale_in_eighths(2041, 2041, 256), Some(1)); // 1/8 gives 256 (rounded up)
        assert_eq!(jpeg::scale_in_eighths(2040, 2040, 256), Some(2)); // 1/8 gives 255
        assert_eq!(jpeg::scale_in_eighths(500, 400, 256), None); // full scale
        assert_eq!(jpeg::scale_in_eighths(4000, 3000, 0), None);
    }

    #[test]
    fn a_jpeg_decodes_at_reduced_scale_and_close_to_full_scale() {
        let bytes = gradient_jpeg(1200, 800);
        let small = decode_bytes(&bytes, &ImageLimits::default(), 256).unwrap();
        assert_eq!((small.width, small.height), (600, 400));
        let full = decode_bytes(&bytes, &ImageLimits::default(), 0).unwrap();
        assert_eq!((full.width, full.height), (1200, 800));
        // The half-scale pixel (x, y) covers full-scale pixels (2x..2x+1, 2y..2y+1).
        let (mut diff, mut n) = (0u64, 0u64);
        for y in (10..390).step_by(7) {
            for x in (10..590).step_by(7) {
                for c in 0..3 {
                    let a = small.data[(y * 600 + x) * 3 + c] as i64;
                    let b = full.data[((2 * y) * 1200 + 2 * x) * 3 + c] as i64;
                    diff += (a - b).unsigned_abs();
                    n += 1;
                }
            }
        }
        assert!((diff as f64 / n as f64) < 6.0, "mean difference {}", diff as f64 / n as f64);
    }

    #[test]
    fn damaged_scan_data_is_an_error_not_grey_fill() {
        let bytes = gradient_jpeg(1200, 800);
        // Cut the scan in the middle but keep an end-of-image marker, so the up-front check passes
        // and libjpeg meets the marker while it still expects data.
        let mut cut = bytes[..bytes.len() / 2].to_vec();
        cut.extend_from_slice(&[0xFF, 0xD9]);
        match decode_bytes(&cut, &ImageLimits::default(), 256) {
            Err(ImageError::Corrupt { format: "JPEG", message }) => {
                assert!(message.contains("Corrupt JPEG data"), "{message}")
            }
            other => panic!("expected a corrupt-JPEG error, got {:?}", other.map(|i| (i.width, i.height))),
        }
        // Our limits come before libjpeg's: a frame header claiming 65535x65535 is refused as too large.
        let mut huge = bytes.clone();
        let sof = huge.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        huge[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(matches!(decode_bytes(&huge, &ImageLimits::default(), 256), Err(ImageError::TooLarge { .. })));
        // A header that libjpeg refuses (a bad sampling factor) fails the same way, without unwinding out.
        let mut bad = bytes.clone();
        let sof = bad.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        bad[sof + 11] = 0x00; // first component's sampling factors: 0x0
        assert!(matches!(decode_bytes(&bad, &ImageLimits::default(), 256), Err(ImageError::Corrupt { .. })));
    }

    /// A minimal valid PNG header (IHDR) claiming `w`×`h`, and nothing else.
    fn png_header(w: u32, h: u32) -> Vec<u8> {
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let crc = crc32(&ihdr);
        let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13];
        out.extend_from_slice(&ihdr);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn sniffing_ignores_names_and_knows_the_formats() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Format::Jpeg));
        assert_eq!(sniff(&png_header(1, 1)), Some(Format::Png));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(Format::WebP));
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0"), Some(Format::Heif));
        assert_eq!(sniff(b"\0\0\0\x18ftypisom\0\0\0\0"), None);
        assert_eq!(sniff(b"GIF89a"), None);
    }

    #[test]
    fn enormous_claimed_dimensions_are_refused_before_allocation() {
        let err = decode_bytes(&png_header(100_000, 100_000), &ImageLimits::default(), 0).unwrap_err();
        assert!(matches!(err, ImageError::TooLarge { .. } | ImageError::OverLimit(_)), "{err:?}");
        let err = decode_bytes(&png_header(0, 10), &ImageLimits::default(), 0).unwrap_err();
        assert!(matches!(err, ImageError::ZeroSize | ImageError::Corrupt { .. }), "{err:?}");
    }

    #[test]
    fn empty_and_unknown_bytes_are_clear_errors() {
        assert!(matches!(decode_bytes(&[], &ImageLimits::default(), 0), Err(ImageError::Empty)));
        assert!(matches!(decode_bytes(b"hello world", &ImageLimits::default(), 0), Err(ImageError::Unsupported)));
        let limits = ImageLimits { max_file_bytes: 4, ..Default::default() };
        assert!(matches!(decode_bytes(&png_header(1, 1), &limits, 0), Err(ImageError::FileTooLarge { .. })));
    }

    #[test]
    fn exif_orientation_is_read_in_both_byte_orders() {
        let mut le = b"II*\0\x08\0\0\0\x01\0".to_vec();
        le.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
        assert_eq!(jpeg::exif_orientation(&le), Some(6));
        let mut be = b"Exif\0\0MM\0*\0\0\0\x08\0\x01".to_vec();
        be.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 8, 0, 0]);
        assert_eq!(jpeg::exif_orientation(&be), Some(8));
        assert_eq!(jpeg::exif_orientation(b"garbage"), None);
    }

    #[test]
    fn orientation_6_turns_a_landscape_buffer_upright() {
        let img = RgbImage { width: 3, height: 2, data: (0..18).collect() };
        let o = orient(img, 6);
        assert_eq!((o.width, o.height), (2, 3));
    }
}
