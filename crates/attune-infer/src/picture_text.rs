//! The text-in-pictures capability's output: what an OCR model crate reads in a picture.

/// One line of text found in a picture.
#[derive(Debug, Clone, PartialEq)]
pub struct TextLine {
    pub text: String,
    /// Recognition's confidence: the mean probability of the characters it kept.
    pub score: f32,
    /// The line's corners in the picture (top-left, top-right, bottom-right, bottom-left).
    pub corners: [(f32, f32); 4],
}

/// What a picture says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PictureText {
    /// The lines read with confidence, top to bottom, then left to right.
    pub lines: Vec<TextLine>,
    /// Lines found that could not be read with confidence (a script the model does not know,
    /// blur): text of unknown content, which the caller must not take for no text.
    pub unread: usize,
}

impl PictureText {
    /// The lines, one per line of text.
    pub fn text(&self) -> String {
        self.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n")
    }
}

/// Reads the text in pictures (photos, video frames): its lines, and how many it found but could
/// not read.
pub trait TextInPictures: Send {
    fn id(&self) -> &str;
    fn read(&mut self, image: &crate::RgbFrame<'_>) -> Result<PictureText, crate::InferError>;
}
