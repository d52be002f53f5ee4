//! Decoding: an admitted event's payload into what a model takes.
//!
//! Every entry point takes an [`Admitted`] event, so nothing the policy excluded is ever opened,
//! let alone decoded. Only media are decoded (an event's words need no decoding); media paths
//! are resolved inside the manifest's folder first. Images go through `attune-decode-image`, voice recordings through `attune-decode-audio`,
//! videos through `attune-decode-video` (sampled frames and the audio track).

use attune_decode_audio::{AudioError, AudioLimits, Pcm};
use attune_decode_image::{ImageError, ImageLimits, RgbImage};
use attune_decode_video::{Video, VideoError, VideoOptions};
use attune_event::{Event, EventError, Kind};
use attune_policy::Admitted;
use std::path::Path;

pub use attune_decode_audio as audio;
pub use attune_decode_image as image;
pub use attune_decode_video as video;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Media(#[from] EventError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error(transparent)]
    Video(#[from] VideoError),
    #[error("no {0} decoder in this build yet")]
    NoDecoder(&'static str),
    #[error("the event has no media to decode")]
    NoMedia,
}

/// A decoded media file, ready for a model.
#[derive(Debug, Clone)]
pub enum Decoded {
    Image(RgbImage),
    /// 16 kHz mono.
    Audio(Pcm),
    /// Sampled frames (already at the image model's size) and the audio track.
    Video(Video),
}

impl Decoded {
    /// Bytes the payload holds in memory, for batch budgets.
    pub fn bytes(&self) -> usize {
        let pcm = |p: &Pcm| p.samples.len() * std::mem::size_of::<f32>();
        match self {
            Decoded::Image(img) => img.data.len(),
            Decoded::Audio(p) => pcm(p),
            Decoded::Video(v) => {
                v.frames.iter().map(|f| f.image.data.len()).sum::<usize>() + v.audio.as_ref().map_or(0, pcm)
            }
        }
    }
}

/// What the decoders need to know about the models downstream, and the limits on input.
/// (Serializable: a decoder process gets them with each request.)
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeOptions {
    pub image_limits: ImageLimits,
    pub audio_limits: AudioLimits,
    /// The shorter side the image model needs; larger images are decoded at a reduced scale
    /// (JPEG) or shrunk right after decoding, so a batch of pending images stays small.
    pub image_short_side: u32,
    pub video: VideoOptions,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            image_limits: ImageLimits::default(),
            audio_limits: AudioLimits::default(),
            image_short_side: 256,
            video: VideoOptions::default(),
        }
    }
}

/// Decode an admitted event's media. The result stays [`Admitted`]: it comes from an admitted
/// event.
pub fn decode(event: &Admitted<Event>, options: &DecodeOptions) -> Result<Admitted<Decoded>, DecodeError> {
    event.as_ref().try_map(|e| match &e.media {
        None => Err(DecodeError::NoMedia),
        // Resolve first: a path that leaves the folder or a missing file is reported as such.
        Some(media) => decode_file(media.kind, &media.path.resolve()?, options),
    })
}

/// Decode a media file already resolved inside its manifest's folder. The pipeline's decoder
/// processes call this with the files of admitted events, which is all they are ever sent
/// (`attune_pipeline::isolate`); everything else goes through [`decode`].
pub fn decode_file(kind: Kind, file: &Path, options: &DecodeOptions) -> Result<Decoded, DecodeError> {
    match kind {
        Kind::Image => {
            let img = attune_decode_image::decode_file(file, &options.image_limits, options.image_short_side)?;
            Ok(Decoded::Image(attune_decode_image::shrink(img, options.image_short_side * 2)))
        }
        Kind::Audio => Ok(Decoded::Audio(attune_decode_audio::decode_file(file, &options.audio_limits)?)),
        Kind::Video => Ok(Decoded::Video(attune_decode_video::decode_file(file, &options.video)?)),
        Kind::Text => Err(DecodeError::NoDecoder("text file")),
    }
}
