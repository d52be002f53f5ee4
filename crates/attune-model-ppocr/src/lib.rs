//! PP-OCRv4 through ONNX Runtime: the text in a photo or a video frame, line by line. Installed
//! by `just setup` from `models/ppocr-v4/model.toml` (ONNX graphs from PyPI `rapidocr-onnxruntime`).
//!
//! Three models, as PaddleOCR chains them: detection (DBNet) gives a map of where text is;
//! each region becomes a rotated rectangle, cut out upright; the angle model turns upside-down
//! lines around; recognition (CRNN, CTC) reads each line. A picture without text costs one
//! detection call: the other two run only on what detection found.
//!
//! What recognition can read is its character table's business (`models/ppocr-v4/model.toml`):
//! Latin letters with a few accents, digits, punctuation and Chinese characters; not Arabic,
//! Devanagari, Thai or kana. `PictureText::unread` counts the lines it found and could not read,
//! so a caller can tell a picture without text from one whose text it cannot check.

use attune_infer::{InferError, LoadOptions, Loader, ModelCrate, ModelDir, Runtime, TextInPictures};
pub use attune_infer::{PictureText, TextLine};
use fast_image_resize::images::{TypedImage, TypedImageRef};
use fast_image_resize::pixels::U8x3;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{GrayImage, Luma};
use imageproc::point::Point;
use ndarray::Array4;
use ort::session::Session;
use ort::value::TensorRef;

pub const MODEL_NAME: &str = "ppocr-v4";

pub use attune_infer::RgbFrame;

/// This crate as the model registry sees it: a text-in-pictures reader.
pub const MODEL_CRATE: ModelCrate =
    ModelCrate { name: env!("CARGO_PKG_NAME"), load: Loader::TextInPictures(load_text_in_pictures) };

fn load_text_in_pictures(
    runtime: &Runtime,
    dir: &ModelDir,
    _: &LoadOptions,
) -> Result<Box<dyn TextInPictures>, InferError> {
    Ok(Box::new(PpOcr::load(runtime, dir)?))
}

impl TextInPictures for PpOcr {
    fn id(&self) -> &str {
        PpOcr::id(self)
    }
    fn read(&mut self, image: &RgbFrame<'_>) -> Result<PictureText, InferError> {
        PpOcr::read(self, image)
    }
}

/// `[runtime]` of `model.toml`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    det: String,
    cls: String,
    rec: String,
    glance_side: u32,
    det_max_side: u32,
    det_threshold: f32,
    box_threshold: f32,
    unclip_ratio: f32,
    min_box_side: f32,
    cls_threshold: f32,
    rec_height: u32,
    rec_min_width: u32,
    rec_max_width: u32,
    text_score: f32,
    version: String,
}

/// The reading settings of the manifest.
#[derive(Debug, Clone, Copy)]
struct Settings {
    glance_side: u32,
    det_max_side: u32,
    det_threshold: f32,
    box_threshold: f32,
    unclip_ratio: f32,
    min_box_side: f32,
    cls_threshold: f32,
    rec_height: u32,
    rec_min_width: u32,
    rec_max_width: u32,
    text_score: f32,
}

/// Lines recognised per model call (rapidocr's batch).
const REC_BATCH: usize = 6;
/// The angle model's input width.
const CLS_WIDTH: u32 = 192;
/// A line of text is at least this much longer than it is tall (after growing; the shortest
/// line on the fixtures, "MENU", is 2.9). Rounder regions are things, not lines: a cup's rim
/// that recognition reads as "O" at 0.57-0.74 would otherwise count as text it could not read.
const MIN_LINE_ELONGATION: f32 = 1.5;
/// At most this many text regions are read per picture; a picture with more (a page of small
/// print, a texture) keeps its largest.
const MAX_LINES: usize = 200;

pub struct PpOcr {
    det: Session,
    cls: Session,
    rec: Session,
    /// Recognition's classes: index 0 is the CTC blank, then the table, then a space.
    characters: Vec<String>,
    settings: Settings,
    id: String,
}

impl PpOcr {
    pub fn load(runtime: &Runtime, dir: &ModelDir) -> Result<PpOcr, InferError> {
        let bad = |message: String| dir.invalid(message);
        let manifest: Manifest = dir.config()?;
        let settings = Settings {
            glance_side: manifest.glance_side,
            det_max_side: manifest.det_max_side,
            det_threshold: manifest.det_threshold,
            box_threshold: manifest.box_threshold,
            unclip_ratio: manifest.unclip_ratio,
            min_box_side: manifest.min_box_side,
            cls_threshold: manifest.cls_threshold,
            rec_height: manifest.rec_height,
            rec_min_width: manifest.rec_min_width,
            rec_max_width: manifest.rec_max_width,
            text_score: manifest.text_score,
        };
        if settings.det_max_side < 32 || settings.rec_height == 0 || settings.rec_max_width < settings.rec_min_width {
            return Err(bad(format!("implausible settings {settings:?}")));
        }
        let rec = runtime.session(MODEL_NAME, &dir.file(&manifest.rec)?)?;
        let table = rec
            .metadata()
            .map_err(|e| bad(format!("recognition model metadata: {e}")))?
            .custom("character")
            .ok_or_else(|| bad("the recognition model has no `character` table in its metadata".into()))?;
        let mut characters = vec![String::new()]; // the CTC blank
        characters.extend(table.split('\n').map(str::to_string));
        characters.push(" ".into());
        Ok(PpOcr {
            det: runtime.session(MODEL_NAME, &dir.file(&manifest.det)?)?,
            cls: runtime.session(MODEL_NAME, &dir.file(&manifest.cls)?)?,
            rec,
            characters,
            settings,
            id: format!("{MODEL_NAME}@{}", manifest.version),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Glance at pictures scaled to at most `side` (multiples of 32) before reading them in full.
    pub fn with_glance_side(mut self, side: u32) -> PpOcr {
        self.settings.glance_side = side.max(32);
        self
    }

    /// The characters recognition can output (the table, without the blank).
    pub fn characters(&self) -> impl Iterator<Item = &str> {
        self.characters[1..].iter().map(String::as_str)
    }

    fn err(&self, message: impl ToString) -> InferError {
        run_error(&self.id)(message)
    }

    /// Read the text of one picture.
    pub fn read(&mut self, image: &RgbFrame<'_>) -> Result<PictureText, InferError> {
        if image.width == 0 || image.height == 0 || image.data.len() != image.width as usize * image.height as usize * 3
        {
            return Err(InferError::Input {
                model: self.id.clone(),
                message: format!("{}x{} image with {} bytes", image.width, image.height, image.data.len()),
            });
        }
        if !self.may_hold_text(image)? {
            return Ok(PictureText::default());
        }
        let boxes = self.detect(image)?;
        if boxes.is_empty() {
            return Ok(PictureText::default());
        }
        let mut crops: Vec<Crop> = boxes.iter().map(|q| Crop::cut(image, q)).collect();
        self.turn_upside_down_lines(&mut crops)?;
        let read = self.recognize(&crops)?;
        let mut out = PictureText::default();
        for (corners, (text, score)) in boxes.into_iter().zip(read) {
            if score >= self.settings.text_score && !text.trim().is_empty() {
                out.lines.push(TextLine { text: text.trim().to_string(), score, corners });
            } else {
                out.unread += 1;
            }
        }
        Ok(out)
    }

    /// Whether the picture may hold text: detection on a small copy (a few ms), any pixel over
    /// the threshold. Only a picture that may is looked at in full.
    pub fn may_hold_text(&mut self, image: &RgbFrame<'_>) -> Result<bool, InferError> {
        Ok(self.glance_peak(image)? > self.settings.det_threshold)
    }

    /// The highest text probability detection gives any pixel of the glance's small copy. It is
    /// all or nothing: ~1.0 where detection sees text at that size, 0.000 elsewhere (the glance
    /// sizes of `examples/glance_cost.rs`), so a lower threshold would not let a smaller glance
    /// see small text.
    pub fn glance_peak(&mut self, image: &RgbFrame<'_>) -> Result<f32, InferError> {
        let (probability, _, _) = self.probability_map(image, self.settings.glance_side)?;
        Ok(probability.iter().copied().fold(0.0, f32::max))
    }

    /// Detection's text probability per pixel of the picture scaled to at most `max_side`
    /// (sides rounded to multiples of 32), with that size.
    fn probability_map(&mut self, image: &RgbFrame<'_>, max_side: u32) -> Result<(Vec<f32>, u32, u32), InferError> {
        let scale = (max_side as f32 / image.width.max(image.height) as f32).min(1.0);
        let side = |v: u32| (((v as f32 * scale) / 32.0).round() as u32).max(1) * 32;
        let (w, h) = (side(image.width), side(image.height));
        let pixels = resize_rgb(image, w, h).map_err(|e| self.err(e))?;
        let tensor = normalized(&pixels, w, h, w);
        let input = TensorRef::from_array_view(&tensor).map_err(|e| self.err(e))?;
        let outputs = self.det.run(ort::inputs![input]).map_err(run_error(&self.id))?;
        let map = outputs[0].try_extract_array::<f32>().map_err(run_error(&self.id))?;
        if map.shape() != [1, 1, h as usize, w as usize] {
            return Err(InferError::Run {
                model: self.id.clone(),
                message: format!("detection map of shape {:?} for a {w}x{h} input", map.shape()),
            });
        }
        Ok((map.iter().copied().collect(), w, h))
    }

    /// Every line detection finds, read, whatever the confidence (for looking into a picture:
    /// `examples/read_text.rs`).
    pub fn read_all(&mut self, image: &RgbFrame<'_>) -> Result<Vec<TextLine>, InferError> {
        let boxes = self.detect(image)?;
        let mut crops: Vec<Crop> = boxes.iter().map(|q| Crop::cut(image, q)).collect();
        self.turn_upside_down_lines(&mut crops)?;
        let read = self.recognize(&crops)?;
        Ok(read.into_iter().zip(boxes).map(|((text, score), corners)| TextLine { text, score, corners }).collect())
    }

    /// Where the text is: rotated rectangles in the picture's coordinates, in reading order.
    fn detect(&mut self, image: &RgbFrame<'_>) -> Result<Vec<[(f32, f32); 4]>, InferError> {
        let s = self.settings;
        let (probability, w, h) = self.probability_map(image, s.det_max_side)?;
        let mask = GrayImage::from_fn(w, h, |x, y| {
            Luma([u8::from(probability[(y * w + x) as usize] > s.det_threshold) * 255])
        });
        // Joins the strokes of a line (rapidocr dilates with a 2x2 kernel).
        let mask = imageproc::morphology::dilate(&mask, imageproc::distance_transform::Norm::LInf, 1);
        let labels = imageproc::region_labelling::connected_components(
            &mask,
            imageproc::region_labelling::Connectivity::Eight,
            Luma([0u8]),
        );
        let mut regions: Vec<(Vec<Point<i32>>, f32)> = Vec::new();
        for (x, y, label) in labels.enumerate_pixels() {
            let label = label[0] as usize;
            if label == 0 {
                continue;
            }
            if regions.len() < label {
                regions.resize_with(label, || (Vec::new(), 0.0));
            }
            let region = &mut regions[label - 1];
            region.0.push(Point::new(x as i32, y as i32));
            region.1 += probability[(y * w + x) as usize];
        }
        // The largest regions first, when a picture has more than can be read.
        regions.sort_by_key(|(points, _)| std::cmp::Reverse(points.len()));
        let (sx, sy) = (image.width as f32 / w as f32, image.height as f32 / h as f32);
        let mut boxes: Vec<[(f32, f32); 4]> = Vec::new();
        for (points, sum) in regions.into_iter().take(MAX_LINES) {
            if points.len() < 4 || sum / (points.len() as f32) < s.box_threshold {
                continue;
            }
            let rect = imageproc::geometry::min_area_rect(&points);
            let Some(quad) = unclip(rect, s.unclip_ratio, s.min_box_side) else { continue };
            let (bw, bh) = (distance(quad[0], quad[1]), distance(quad[1], quad[2]));
            if bw.max(bh) < MIN_LINE_ELONGATION * bw.min(bh) {
                continue; // a blob, not a line: a cup's rim read as "O"
            }
            boxes.push(quad.map(|(x, y)| {
                ((x * sx).clamp(0.0, image.width as f32 - 1.0), (y * sy).clamp(0.0, image.height as f32 - 1.0))
            }));
        }
        // Reading order: top to bottom; boxes whose tops are within 10 px are one row, left to right.
        boxes.sort_by(|a, b| a[0].1.total_cmp(&b[0].1).then(a[0].0.total_cmp(&b[0].0)));
        for i in 1..boxes.len() {
            let mut j = i;
            while j > 0 && (boxes[j][0].1 - boxes[j - 1][0].1).abs() < 10.0 && boxes[j][0].0 < boxes[j - 1][0].0 {
                boxes.swap(j, j - 1);
                j -= 1;
            }
        }
        Ok(boxes)
    }

    /// Lines the angle model finds upside down (with confidence) are turned around.
    fn turn_upside_down_lines(&mut self, crops: &mut [Crop]) -> Result<(), InferError> {
        let h = self.settings.rec_height;
        for chunk in crops.chunks_mut(REC_BATCH) {
            let mut batch = Array4::<f32>::zeros((chunk.len(), 3, h as usize, CLS_WIDTH as usize));
            for (i, crop) in chunk.iter().enumerate() {
                crop.write_into(&mut batch, i, h, CLS_WIDTH).map_err(|e| self.err(e))?;
            }
            let input = TensorRef::from_array_view(&batch).map_err(|e| self.err(e))?;
            let outputs = self.cls.run(ort::inputs![input]).map_err(run_error(&self.id))?;
            let p = outputs[0].try_extract_array::<f32>().map_err(run_error(&self.id))?;
            if p.shape() != [chunk.len(), 2] {
                return Err(InferError::Run {
                    model: self.id.clone(),
                    message: format!("angle output of shape {:?}", p.shape()),
                });
            }
            for (crop, row) in chunk.iter_mut().zip(p.outer_iter()) {
                if row[1] > row[0] && row[1] > self.settings.cls_threshold {
                    crop.turn_around();
                }
            }
        }
        Ok(())
    }

    /// Each line's text and confidence (CTC greedy decoding).
    fn recognize(&mut self, crops: &[Crop]) -> Result<Vec<(String, f32)>, InferError> {
        let s = self.settings;
        // Lines of similar width are batched together (less padding).
        let mut order: Vec<usize> = (0..crops.len()).collect();
        order.sort_by(|&a, &b| crops[a].ratio().total_cmp(&crops[b].ratio()));
        let mut out = vec![(String::new(), 0.0); crops.len()];
        for chunk in order.chunks(REC_BATCH) {
            let widest = chunk.iter().map(|&i| crops[i].ratio()).fold(0.0f32, f32::max);
            let width = ((widest * s.rec_height as f32).ceil() as u32).clamp(s.rec_min_width, s.rec_max_width);
            let mut batch = Array4::<f32>::zeros((chunk.len(), 3, s.rec_height as usize, width as usize));
            for (k, &i) in chunk.iter().enumerate() {
                crops[i].write_into(&mut batch, k, s.rec_height, width).map_err(|e| self.err(e))?;
            }
            let input = TensorRef::from_array_view(&batch).map_err(|e| self.err(e))?;
            let outputs = self.rec.run(ort::inputs![input]).map_err(run_error(&self.id))?;
            let p = outputs[0].try_extract_array::<f32>().map_err(run_error(&self.id))?;
            if p.ndim() != 3 || p.shape()[0] != chunk.len() || p.shape()[2] != self.characters.len() {
                return Err(InferError::Run {
                    model: self.id.clone(),
                    message: format!(
                        "recognition output of shape {:?} for {} classes",
                        p.shape(),
                        self.characters.len()
                    ),
                });
            }
            for (k, &i) in chunk.iter().enumerate() {
                let steps = p.index_axis(ndarray::Axis(0), k);
                let best = steps.outer_iter().map(|step| {
                    step.iter().copied().enumerate().fold((0, f32::MIN), |b, (c, v)| if v > b.1 { (c, v) } else { b })
                });
                out[i] = ctc_greedy(best, &self.characters);
            }
        }
        Ok(out)
    }
}

/// CTC greedy decoding: the best class at each step, blanks and repeats dropped. The score is
/// the mean probability of the characters kept (0 when none is).
fn ctc_greedy(best: impl Iterator<Item = (usize, f32)>, characters: &[String]) -> (String, f32) {
    let mut text = String::new();
    let (mut sum, mut kept, mut previous) = (0.0f32, 0usize, 0usize);
    for (class, p) in best {
        if class != 0 && class != previous {
            if let Some(c) = characters.get(class) {
                text.push_str(c);
                sum += p;
                kept += 1;
            }
        }
        previous = class;
    }
    (text, if kept == 0 { 0.0 } else { sum / kept as f32 })
}

/// An error of a model call, for `map_err` (a closure that holds only the id, so it can be
/// built while a session is borrowed).
fn run_error<E: ToString>(id: &str) -> impl Fn(E) -> InferError + '_ {
    move |e| InferError::Run { model: id.to_string(), message: e.to_string() }
}

/// The distance between two points.
fn distance(a: (f32, f32), b: (f32, f32)) -> f32 {
    ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt()
}

/// DBNet's regions hug the text's core; the box is grown by `area · ratio / perimeter` on every
/// side (PaddleOCR's unclip). Corners ordered top-left, top-right, bottom-right, bottom-left;
/// `None` for a box thinner than `min_side` (+2 after growing, as PaddleOCR has it).
fn unclip(rect: [Point<i32>; 4], ratio: f32, min_side: f32) -> Option<[(f32, f32); 4]> {
    let p: Vec<(f32, f32)> = rect.iter().map(|p| (p.x as f32, p.y as f32)).collect();
    let (w, h) = (distance(p[0], p[1]), distance(p[1], p[2]));
    // A region one pixel wide has a degenerate rectangle: count pixels, not distances between them.
    let (w, h) = (w + 1.0, h + 1.0);
    if w.min(h) < min_side {
        return None;
    }
    let d = w * h * ratio / (2.0 * (w + h));
    let centre = ((p[0].0 + p[2].0) / 2.0, (p[0].1 + p[2].1) / 2.0);
    let unit = |a: (f32, f32), b: (f32, f32)| {
        let l = distance(a, b).max(1e-6);
        ((b.0 - a.0) / l, (b.1 - a.1) / l)
    };
    let (u, v) = (unit(p[0], p[1]), unit(p[1], p[2]));
    let (hw, hh) = ((w + 2.0 * d) / 2.0, (h + 2.0 * d) / 2.0);
    if 2.0 * hw.min(hh) < min_side + 2.0 {
        return None;
    }
    let corner = |a: f32, b: f32| (centre.0 + a * u.0 + b * v.0, centre.1 + a * u.1 + b * v.1);
    let mut corners = [corner(-hw, -hh), corner(hw, -hh), corner(hw, hh), corner(-hw, hh)];
    // Top-left: of the two leftmost corners the upper; the rest follow around the box.
    let mut by_x = corners;
    by_x.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (left, right) = (&by_x[..2], &by_x[2..]);
    let pick = |pair: &[(f32, f32)], upper: bool| {
        if (pair[0].1 <= pair[1].1) == upper {
            pair[0]
        } else {
            pair[1]
        }
    };
    corners = [pick(left, true), pick(right, true), pick(right, false), pick(left, false)];
    Some(corners)
}

/// One line cut out of the picture, upright: 8-bit RGB.
struct Crop {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl Crop {
    /// Sample the rotated rectangle `q` (bilinear); a line much taller than wide is turned to lie
    /// flat (vertical text, or a sign turned 90°).
    fn cut(image: &RgbFrame<'_>, q: &[(f32, f32); 4]) -> Crop {
        let width = distance(q[0], q[1]).max(distance(q[3], q[2])).round().max(1.0) as u32;
        let height = distance(q[0], q[3]).max(distance(q[1], q[2])).round().max(1.0) as u32;
        let mut data = Vec::with_capacity((width * height * 3) as usize);
        for y in 0..height {
            let t = (y as f32 + 0.5) / height as f32;
            for x in 0..width {
                let s = (x as f32 + 0.5) / width as f32;
                // The point at (s, t) of the quad, top edge to bottom edge.
                let top = (q[0].0 + s * (q[1].0 - q[0].0), q[0].1 + s * (q[1].1 - q[0].1));
                let bottom = (q[3].0 + s * (q[2].0 - q[3].0), q[3].1 + s * (q[2].1 - q[3].1));
                let (px, py) = (top.0 + t * (bottom.0 - top.0), top.1 + t * (bottom.1 - top.1));
                data.extend_from_slice(&bilinear(image, px, py));
            }
        }
        let crop = Crop { width, height, data };
        if height as f32 >= 1.5 * width as f32 {
            crop.turned_a_quarter()
        } else {
            crop
        }
    }

    fn ratio(&self) -> f32 {
        self.width as f32 / self.height as f32
    }

    fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * self.width + x) * 3) as usize;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Rotated 90° anticlockwise (numpy's `rot90`, as PaddleOCR turns tall crops).
    fn turned_a_quarter(&self) -> Crop {
        let (width, height) = (self.height, self.width);
        let mut data = Vec::with_capacity(self.data.len());
        for y in 0..height {
            for x in 0..width {
                data.extend_from_slice(&self.pixel(self.width - 1 - y, x));
            }
        }
        Crop { width, height, data }
    }

    fn turn_around(&mut self) {
        let mut pixels: Vec<[u8; 3]> = self.data.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
        pixels.reverse();
        self.data = pixels.concat();
    }

    /// Resized to `height` (keeping its proportions, at most `width` wide), normalised to [-1, 1]
    /// and written at the left of row `i` of `batch`; the rest of the row stays 0.
    fn write_into(&self, batch: &mut Array4<f32>, i: usize, height: u32, width: u32) -> Result<(), String> {
        let w = ((height as f32 * self.ratio()).ceil() as u32).clamp(1, width);
        let frame = RgbFrame { width: self.width, height: self.height, data: &self.data };
        let pixels = resize_rgb(&frame, w, height)?;
        let plane = normalized(&pixels, w, height, width);
        let mut row = batch.index_axis_mut(ndarray::Axis(0), i);
        row.assign(&plane.index_axis(ndarray::Axis(0), 0));
        Ok(())
    }
}

fn bilinear(image: &RgbFrame<'_>, x: f32, y: f32) -> [u8; 3] {
    let (w, h) = (image.width as i64, image.height as i64);
    let (x, y) = (x - 0.5, y - 0.5);
    let (x0, y0) = (x.floor() as i64, y.floor() as i64);
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |xx: i64, yy: i64, c: usize| -> f32 {
        let (xx, yy) = (xx.clamp(0, w - 1), yy.clamp(0, h - 1));
        image.data[((yy * w + xx) * 3) as usize + c] as f32
    };
    let mut out = [0u8; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let top = at(x0, y0, c) * (1.0 - fx) + at(x0 + 1, y0, c) * fx;
        let bottom = at(x0, y0 + 1, c) * (1.0 - fx) + at(x0 + 1, y0 + 1, c) * fx;
        *o = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
    }
    out
}

/// `image` resized to `w`×`h` (bilinear convolution), 8-bit RGB. Typed to RGB8: the untyped
/// `Resizer::resize` instantiates the convolution for all 13 pixel formats, which was 84% of this
/// crate's compiled code and most of its build time.
fn resize_rgb(image: &RgbFrame<'_>, w: u32, h: u32) -> Result<Vec<u8>, String> {
    if (image.width, image.height) == (w, h) {
        return Ok(image.data.to_vec());
    }
    let src = TypedImageRef::<U8x3>::from_buffer(image.width, image.height, image.data).map_err(|e| e.to_string())?;
    let mut out = vec![0u8; w as usize * h as usize * 3];
    let mut dst = TypedImage::<U8x3>::from_buffer(w, h, &mut out).map_err(|e| e.to_string())?;
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new().resize_typed(&src, &mut dst, &options).map_err(|e| e.to_string())?;
    Ok(out)
}

/// `[1, 3, h, padded_w]`, `(x / 255 − 0.5) / 0.5`, the image at the left, zeros to its right.
fn normalized(pixels: &[u8], w: u32, h: u32, padded_w: u32) -> Array4<f32> {
    let mut t = Array4::<f32>::zeros((1, 3, h as usize, padded_w as usize));
    for y in 0..h as usize {
        for x in 0..w as usize {
            let i = (y * w as usize + x) * 3;
            for c in 0..3 {
                t[[0, c, y, x]] = (pixels[i + c] as f32 / 255.0 - 0.5) / 0.5;
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctc_drops_blanks_and_repeats_and_scores_what_it_keeps() {
        let chars: Vec<String> = ["", "a", "b", " "].iter().map(|s| s.to_string()).collect();
        let steps = [(1, 0.9), (1, 0.8), (0, 0.99), (1, 0.7), (3, 0.6), (2, 0.5), (2, 0.4)];
        let (text, score) = ctc_greedy(steps.into_iter(), &chars);
        assert_eq!(text, "aa b");
        assert!((score - (0.9 + 0.7 + 0.6 + 0.5) / 4.0).abs() < 1e-6);
        assert_eq!(ctc_greedy([(0, 0.9), (0, 0.9)].into_iter(), &chars), (String::new(), 0.0));
        // A class past the table (a model that does not match it) is skipped, not a panic.
        assert_eq!(ctc_greedy([(9, 0.9)].into_iter(), &chars).0, "");
    }

    #[test]
    fn unclip_grows_a_box_and_orders_its_corners() {
        let rect = [Point::new(10, 10), Point::new(109, 10), Point::new(109, 29), Point::new(10, 29)];
        let q = unclip(rect, 1.6, 3.0).unwrap();
        // 100 x 20 grows by 100·20·1.6 / 240 ≈ 13.3 on every side.
        assert!((q[0].0 - (10.0 - 13.33)).abs() < 0.6 && (q[0].1 - (10.0 - 13.33)).abs() < 0.6, "{q:?}");
        assert!(q[1].0 > q[0].0 && q[2].1 > q[1].1 && q[3].0 < q[2].0);
        // The same box listed from another corner comes out in the same order.
        let turned = [rect[2], rect[3], rect[0], rect[1]];
        let q2 = unclip(turned, 1.6, 3.0).unwrap();
        for (a, b) in q.iter().zip(&q2) {
            assert!((a.0 - b.0).abs() < 1e-3 && (a.1 - b.1).abs() < 1e-3, "{q:?} vs {q2:?}");
        }
        // A sliver is no line of text.
        assert!(unclip([Point::new(0, 0), Point::new(50, 0), Point::new(50, 0), Point::new(0, 0)], 1.6, 3.0).is_none());
    }

    #[test]
    fn tall_crops_are_laid_flat_and_upside_down_ones_turned() {
        // A 2 x 4 image, each pixel its own value.
        let data: Vec<u8> = (0..8u8).flat_map(|v| [v, v, v]).collect();
        let crop = Crop { width: 2, height: 4, data };
        let flat = crop.turned_a_quarter();
        assert_eq!((flat.width, flat.height), (4, 2));
        // numpy rot90: the top row of the result is the right column, top to bottom.
        assert_eq!((0..4).map(|x| flat.pixel(x, 0)[0]).collect::<Vec<_>>(), [1, 3, 5, 7]);
        let mut turned = Crop { width: 2, height: 1, data: vec![1, 1, 1, 2, 2, 2] };
        turned.turn_around();
        assert_eq!(turned.data, [2, 2, 2, 1, 1, 1]);
    }
}
