//! Decoding: an admitted event's payload into what a model takes.
//!
//! Every entry point takes an [`Admitted`] event, so nothing the policy excluded is ever opened,
//! let alone decoded. Text passes through; media paths are resolved inside the manifest's folder
//! first. Audio, image and video decoders are the next stages to land (issues #3, #4, #5): until
//! they do, such events fail with an explicit reason instead of being silently dropped.

use attune_event::{Event, EventError, Kind, Payload};
use attune_policy::Admitted;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Media(#[from] EventError),
    #[error("no {0} decoder in this build yet")]
    NoDecoder(&'static str),
}

/// A decoded payload, ready for a model.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Text(String),
}

/// Decode an admitted event. The result stays [`Admitted`]: it comes from an admitted event.
pub fn decode(event: &Admitted<Event>) -> Result<Admitted<Decoded>, DecodeError> {
    event.as_ref().try_map(|e| match &e.payload {
        Payload::Text(text) => Ok(Decoded::Text(text.clone())),
        Payload::Media { kind, path } => {
            // Resolve first: a path that leaves the folder or a missing file is reported as such.
            path.resolve()?;
            Err(DecodeError::NoDecoder(match kind {
                Kind::Audio => "audio",
                Kind::Image => "image",
                Kind::Video => "video",
                Kind::Text => "text",
            }))
        }
    })
}
