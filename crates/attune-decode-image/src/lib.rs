//! Photos and generated images to upright 8-bit RGB, strictly and within limits.
//!
//! - The format is read from the bytes, never from the file name.
//! - Limits hold before any pixel buffer is allocated: file size, then the dimensions the header
//!   claims (a header claiming 100000×100000 is refused without allocating it).
//! - Truncated files are errors, not grey-filled images: a JPEG must reach its end-of-image marker
//!   after the first scan; PNG and WebP decoders fail on missing data.
//! - JPEGs are decoded at a reduced scale (1/2, 1/4, 1/8) when the caller needs fewer pixels.
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
#[derive(Debug, Clone, Copy)]
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
    use fast_image_resize::images::{Image, ImageRef};
    use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
    let short = img.width.min(img.height);
    if max_short_side == 0 || short <= max_short_side {
        return img;
    }
    let f = max_short_side as f64 / short as f64;
    let (w, h) = (((img.width as f64 * f).round() as u32).max(1), ((img.height as f64 * f).round() as u32).max(1));
    let mut dst = Image::new(w, h, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    let resized = ImageRef::new(img.width, img.height, &img.data, PixelType::U8x3)
        .map_err(|e| e.to_string())
        .and_then(|src| Resizer::new().resize(&src, &mut dst, &options).map_err(|e| e.to_string()));
    match resized {
        Ok(()) => RgbImage { width: w, height: h, data: dst.into_vec() },
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
        let corrupt = |e: jpeg_decoder::Error| ImageError::Corrupt { format: "JPEG", message: e.to_string() };
        let scan = first_scan(bytes)?;
        if !has_end_marker_after(bytes, scan) {
            return Err(ImageError::Truncated("JPEG has no end-of-image marker after its scan data"));
        }
        let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
        decoder.read_info().map_err(corrupt)?;
        let info = decoder.info().ok_or(ImageError::Truncated("JPEG header incomplete"))?;
        let (w, h) = (info.width as u32, info.height as u32);
        limits.check(w as u64, h as u64)?;
        // At full scale, zune-jpeg (through `image`) is closer to libjpeg-turbo's output; when the
        // caller needs at most half the pixels a side, jpeg-decoder's reduced-scale IDCT (1/2, 1/4,
        // 1/8) is several times faster than decoding everything and resizing.
        if min_short_side == 0 || w.min(h) < 2 * min_short_side {
            return with_image_crate(bytes, image::ImageFormat::Jpeg, limits);
        }
        decoder.set_max_decoding_buffer_size((limits.max_pixels * 4) as usize);
        // The smallest scale that keeps the shorter side at least `min_short_side`.
        let f = min_short_side as f64 / w.min(h) as f64;
        let rw = ((w as f64 * f).ceil() as u32).clamp(1, u16::MAX as u32) as u16;
        let rh = ((h as f64 * f).ceil() as u32).clamp(1, u16::MAX as u32) as u16;
        decoder.scale(rw, rh).map_err(corrupt)?;
        let pixels = decoder.decode().map_err(corrupt)?;
        let info = decoder.info().ok_or(ImageError::Truncated("JPEG header incomplete"))?;
        let (w, h) = (info.width as u32, info.height as u32);
        let n = w as usize * h as usize;
        let data = match info.pixel_format {
            jpeg_decoder::PixelFormat::RGB24 => pixels,
            jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&g| [g, g, g]).collect(),
            jpeg_decoder::PixelFormat::L16 => pixels.chunks_exact(2).flat_map(|p| [p[0], p[0], p[0]]).collect(),
            jpeg_decoder::PixelFormat::CMYK32 => pixels
                .chunks_exact(4)
                .flat_map(|p| {
                    // Adobe CMYK JPEGs store inverted values: each channel times K is the colour.
                    let k = p[3] as u16;
                    [(p[0] as u16 * k / 255) as u8, (p[1] as u16 * k / 255) as u8, (p[2] as u16 * k / 255) as u8]
                })
                .collect(),
        };
        if data.len() != n * 3 {
            return Err(ImageError::Corrupt {
                format: "JPEG",
                message: "decoded size does not match the header".into(),
            });
        }
        let orientation = decoder.exif_data().and_then(exif_orientation).unwrap_or(1);
        Ok(orient(RgbImage { width: w, height: h, data }, orientation))
    }

    /// The offset just past the first start-of-scan segment, walking the marker segments (so an
    /// EXIF thumbnail's markers inside APP1 are skipped, not mistaken for the image's).
    fn first_scan(bytes: &[u8]) -> Result<usize, ImageError> {
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
            i += len;
            if i > bytes.len() {
                return Err(ImageError::Truncated("JPEG ends inside a segment"));
            }
            if marker == 0xDA {
                return Ok(i);
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
