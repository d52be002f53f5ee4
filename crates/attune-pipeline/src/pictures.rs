//! Pictures: the image model's classes, and the text read in photos and video frames.

use crate::{ImageClassifier, Parts, Pending, Report, RgbFrame, TextInPictures};
use attune_decode::image::RgbImage;
use attune_decode::Decoded;
use attune_tag::ImageTagger;
use std::time::{Duration, Instant};

/// Whether a run reads the text in pictures.
pub enum PictureReading<'a> {
    Reader(&'a mut dyn TextInPictures),
    /// Asked not to (`--no-text-in-pictures`): a placard or a pharmacy label in a photo goes
    /// unchecked.
    Off,
    /// The model could not be had: photos and videos fail with this reason rather than be
    /// tagged with text in them unchecked.
    Unavailable(String),
}

/// The image model and its class table, when the run has one.
pub struct ImageStage<'a> {
    pub classifier: &'a mut dyn ImageClassifier,
    pub tagger: &'a ImageTagger,
}

/// What reading a batch's pictures found, applied to the batch once done.
pub(crate) struct PictureReadings {
    /// The text in each item's photo or video frames (each frame's lines, a line seen in
    /// several frames once).
    pub(crate) texts: Vec<Option<String>>,
    /// Items with a picture holding text that could not all be read: skipped as
    /// `unreadable_text`, since text of unknown content (a placard in a script the model does
    /// not know) cannot be vouched for.
    pub(crate) unreadable: Vec<bool>,
    pub(crate) failures: Vec<(usize, String)>,
    /// Pictures read, and the time it took.
    pub(crate) read: usize,
    pub(crate) busy: Duration,
}

/// Read the text in the pictures of the items still `open`.
pub(crate) fn read_pictures(reading: &mut PictureReading<'_>, work: &[Pending], open: &[bool]) -> PictureReadings {
    let t = Instant::now();
    let mut out = PictureReadings {
        texts: vec![None; work.len()],
        unreadable: vec![false; work.len()],
        failures: Vec::new(),
        read: 0,
        busy: Duration::ZERO,
    };
    let with_pictures = work
        .iter()
        .enumerate()
        .filter(|(i, p)| open[*i] && matches!(p.media(), Some(Decoded::Image(_) | Decoded::Video(_))));
    let reader = match reading {
        PictureReading::Reader(reader) => &mut **reader,
        PictureReading::Off => return out,
        PictureReading::Unavailable(reason) => {
            out.failures =
                with_pictures.map(|(i, _)| (i, format!("no text-in-pictures model in this run: {reason}"))).collect();
            return out;
        }
    };
    for (i, p) in with_pictures {
        let pictures: Vec<&RgbImage> = match p.media() {
            Some(Decoded::Image(img)) => vec![img],
            Some(Decoded::Video(video)) => video.frames.iter().map(|f| &f.image).collect(),
            _ => continue,
        };
        let mut lines: Vec<String> = Vec::new();
        for picture in pictures {
            out.read += 1;
            match reader.read(&frame(picture)) {
                // Once a line could not be read, the item is skipped: no need to read on.
                Ok(text) if text.unread > 0 => {
                    out.unreadable[i] = true;
                    break;
                }
                Ok(text) => {
                    for line in text.lines {
                        if !lines.contains(&line.text) {
                            lines.push(line.text);
                        }
                    }
                }
                Err(e) => {
                    out.failures.push((i, format!("reading the text in its pictures: {e}")));
                    break;
                }
            }
        }
        if !lines.is_empty() {
            out.texts[i] = Some(lines.join("\n"));
        }
    }
    out.busy = t.elapsed();
    out
}

/// A decoded picture as the image models take it.
fn frame(image: &RgbImage) -> RgbFrame<'_> {
    RgbFrame { width: image.width, height: image.height, data: &image.data }
}

/// Photos and video frames: classified in batches of the model's size, then tagged through
/// the class table.
pub(crate) fn tag_images(
    images: &mut Option<ImageStage<'_>>,
    work: &[Pending],
    parts: &mut Parts,
    report: &mut Report,
) {
    let items: Vec<(usize, &RgbImage)> = work
        .iter()
        .enumerate()
        .flat_map(|(i, p)| -> Vec<(usize, &RgbImage)> {
            match p.media() {
                Some(Decoded::Image(img)) => vec![(i, img)],
                Some(Decoded::Video(video)) => video.frames.iter().map(|f| (i, &f.image)).collect(),
                _ => Vec::new(),
            }
        })
        .filter(|(i, _)| parts.still_open(*i))
        .collect();
    if items.is_empty() {
        return;
    }
    let Some(stage) = images.as_mut() else {
        for (i, _) in items {
            parts.fail(i, &work[i], report, "no image model is loaded in this run".into());
        }
        return;
    };
    for (i, _) in &items {
        parts.expected[*i] += 1;
    }
    for chunk in items.chunks(stage.classifier.max_batch().max(1)) {
        let images: Vec<RgbFrame<'_>> = chunk.iter().map(|(_, img)| frame(img)).collect();
        match stage.classifier.classify(&images) {
            Ok(probabilities) if probabilities.len() == chunk.len() => {
                for ((i, _), p) in chunk.iter().zip(probabilities) {
                    parts.pictures[*i].push(stage.tagger.tag(&p));
                }
            }
            result => {
                let why = result.err().map_or_else(|| "wrong number of outputs".to_string(), |e| e.to_string());
                tracing::warn!("image batch of {} failed ({why}); retrying one by one", chunk.len());
                for (i, img) in chunk {
                    match stage.classifier.classify(&[frame(img)]) {
                        Ok(mut p) if p.len() == 1 => parts.pictures[*i].push(stage.tagger.tag(&p.remove(0))),
                        Ok(_) => parts.fail(*i, &work[*i], report, "image model gave no output".into()),
                        Err(e) => parts.fail(*i, &work[*i], report, e.to_string()),
                    }
                }
            }
        }
    }
}
