//! Videos to a few sampled frames and a 16 kHz mono audio track, through FFmpeg (ffmpeg-next).
//!
//! - **Only local MP4/MOV and WebM/MKV.** The container is sniffed from the bytes before FFmpeg
//!   sees the file, FFmpeg is opened with `protocol_whitelist=file` and a `format_whitelist`, so a
//!   playlist, a concat list or a URL that points elsewhere is refused, never followed.
//! - **Limits before decoding:** file size, the duration the container claims, the coded width and
//!   height; then again on every decoded frame (timestamps and sizes) for files that lie.
//! - **Sampling that fits the file** ([`Sampling`]): when keyframes are frequent enough, only
//!   keyframes are decoded; otherwise every frame is decoded and one per interval is kept. The
//!   keyframe positions come from the demuxer's index before anything is decoded. Frames are
//!   picked by timestamp, never by frame count, so variable frame rates sample correctly.
//! - The RGB scaler is built from the first decoded frame (building it from stream parameters
//!   aborts the process when the pixel format is unknown) and rebuilt when the size changes.
//! - Corrupt packets are skipped and counted; a stream that stops well before the duration its
//!   container claims is reported as truncated.
//! - The audio track is downmixed and resampled to 16 kHz by swresample.

use attune_decode_audio::{Pcm, TARGET_RATE};
use attune_decode_image::RgbImage;
use ff::{codec, format, media, software, Dictionary, Rational};
use ffmpeg_next as ff;
use std::path::Path;
use std::sync::Once;

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("cannot read the video: {0}")]
    Io(#[from] std::io::Error),
    #[error("empty file")]
    Empty,
    #[error("file is {bytes} bytes, over the {limit}-byte limit")]
    FileTooLarge { bytes: u64, limit: u64 },
    #[error("not an allowed container ({0}); videos must be MP4/MOV or WebM/MKV files")]
    NotAllowedContainer(String),
    #[error("cannot open the video: {0}")]
    Open(String),
    #[error("video is {seconds:.0} s long, over the {limit:.0} s limit")]
    TooLong { seconds: f64, limit: f64 },
    #[error("video is {width}x{height}, over the {limit} limit")]
    TooLarge { width: u32, height: u32, limit: String },
    #[error("no video or audio stream")]
    NoStreams,
    #[error("no decoder for {0} in this FFmpeg")]
    NoDecoder(String),
    #[error("nothing could be decoded ({corrupt_packets} corrupt packets)")]
    NothingDecoded { corrupt_packets: u64 },
    #[error("stream stops early: decoded up to {decoded:.1} s of the {claimed:.1} s the container claims")]
    Truncated { decoded: f64, claimed: f64 },
    #[error("{0}")]
    Ffmpeg(String),
}

impl From<ff::Error> for VideoError {
    fn from(e: ff::Error) -> Self {
        VideoError::Ffmpeg(e.to_string())
    }
}

/// Bounds on untrusted videos.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoLimits {
    pub max_file_bytes: u64,
    pub max_seconds: f64,
    pub max_width: u32,
    pub max_height: u32,
    /// Frames handed to the image model per video; longer videos get a wider interval.
    pub max_frames: usize,
}

impl Default for VideoLimits {
    fn default() -> Self {
        // Glasses clips and feed videos are seconds to minutes; 8K is the largest sensor in use.
        VideoLimits { max_file_bytes: 2 << 30, max_seconds: 3600.0, max_width: 8192, max_height: 8192, max_frames: 32 }
    }
}

/// How frames are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampling {
    /// Keyframes only when the longest gap between keyframes is at most 1.5 intervals,
    /// otherwise every frame.
    Auto,
    /// Decode keyframes only (skip every other packet): cheapest, but a file with one keyframe
    /// every 10 s gives one frame every 10 s.
    Keyframes,
    /// Decode every frame and keep the first at or after each interval mark.
    EveryFrame,
}

impl Sampling {
    pub const ALL: [Sampling; 3] = [Sampling::Auto, Sampling::Keyframes, Sampling::EveryFrame];

    /// The name `--video-sampling` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Sampling::Auto => "auto",
            Sampling::Keyframes => "keyframes",
            Sampling::EveryFrame => "every-frame",
        }
    }
}

impl std::str::FromStr for Sampling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Sampling::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown sampling {s:?} (auto, keyframes, every-frame)"))
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoOptions {
    pub limits: VideoLimits,
    pub sampling: Sampling,
    /// Seconds between sampled frames (before the `max_frames` cap widens it).
    pub interval_s: f64,
    /// Frames are scaled so their shorter side is this (never enlarged): what the image model needs.
    pub frame_short_side: u32,
    /// Decoder threads; 0 lets FFmpeg choose one per core.
    pub threads: usize,
    /// Also decode the audio track.
    pub audio: bool,
    /// Decoding every frame, skip the frames no other frame refers to while they are shown
    /// before the next sampling mark (the frames kept are the same; see `skip_unwanted_frames`).
    pub skip_unreferenced: bool,
}

impl Default for VideoOptions {
    fn default() -> Self {
        VideoOptions {
            limits: VideoLimits::default(),
            sampling: Sampling::Auto,
            interval_s: 1.0,
            frame_short_side: 256,
            threads: 0,
            audio: true,
            skip_unreferenced: true,
        }
    }
}

/// A frame picked by the sampler.
#[derive(Debug, Clone)]
pub struct SampledFrame {
    /// Seconds from the start of the stream.
    pub at_s: f64,
    pub image: RgbImage,
}

/// The strategy a file was decoded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Keyframes,
    EveryFrame,
    /// The file has no video stream.
    AudioOnly,
}

/// A decoded video: sampled frames, the audio track, and how they were obtained.
#[derive(Debug, Clone)]
pub struct Video {
    pub frames: Vec<SampledFrame>,
    /// 16 kHz mono; `None` when the file has no audio stream or audio was not asked for.
    pub audio: Option<Pcm>,
    pub duration_s: f64,
    pub strategy: Strategy,
    /// The longest gap between keyframes, from the demuxer's index (`None`: no index).
    pub keyframe_gap_s: Option<f64>,
    /// Video frames that went through the decoder.
    pub decoded_frames: u64,
    pub corrupt_packets: u64,
}

/// Containers the demuxer may be: FFmpeg's names for the ISO-BMFF and Matroska families.
const ALLOWED_FORMATS: &str = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm";

/// The container family, from the first bytes. Anything else is refused before FFmpeg probes it
/// (FFmpeg would happily open a concat list, an HLS playlist or an image sequence).
fn sniff(head: &[u8]) -> Result<&'static str, VideoError> {
    const ISO_BOXES: [&[u8; 4]; 6] = [b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"];
    match head {
        [0x1A, 0x45, 0xDF, 0xA3, ..] => Ok("matroska/webm"),
        [_, _, _, _, a, b, c, d, ..] if ISO_BOXES.contains(&&[*a, *b, *c, *d]) => Ok("mp4/mov"),
        _ => {
            let what = if head.starts_with(b"ffconcat") {
                "an FFmpeg concat list".to_string()
            } else if head.starts_with(b"#EXTM3U") {
                "an M3U/HLS playlist".to_string()
            } else if head.iter().take(64).all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()) && !head.is_empty()
            {
                "a text file".to_string()
            } else {
                "unrecognised bytes".to_string()
            };
            Err(VideoError::NotAllowedContainer(what))
        }
    }
}

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = ff::init();
        // Hostile files make FFmpeg print a line per corrupt packet; they are counted instead.
        ff::util::log::set_level(ff::util::log::Level::Fatal);
    });
}

fn seconds(ts: i64, tb: Rational) -> f64 {
    ts as f64 * tb.numerator() as f64 / tb.denominator().max(1) as f64
}

const NO_PTS: i64 = i64::MIN; // AV_NOPTS_VALUE

/// Decode a video file: sampled frames and the audio track.
pub fn decode_file(path: &Path, options: &VideoOptions) -> Result<Video, VideoError> {
    let limits = &options.limits;
    let bytes = std::fs::metadata(path)?.len();
    if bytes == 0 {
        return Err(VideoError::Empty);
    }
    if bytes > limits.max_file_bytes {
        return Err(VideoError::FileTooLarge { bytes, limit: limits.max_file_bytes });
    }
    let mut head = [0u8; 64];
    let n = std::io::Read::read(&mut std::fs::File::open(path)?, &mut head)?;
    sniff(&head[..n])?;

    init();
    let mut dict = Dictionary::new();
    dict.set("protocol_whitelist", "file");
    dict.set("format_whitelist", ALLOWED_FORMATS);
    // `file:` so that a name like `concat:…` or `subfile,…` is never read as a protocol.
    let url = format!("file:{}", path.display());
    let mut input = format::input_with_dictionary(&url, dict).map_err(|e| VideoError::Open(e.to_string()))?;
    let format_name = input.format().name().to_string();
    if !format_name.split(',').any(|f| ALLOWED_FORMATS.split(',').any(|a| a == f)) {
        return Err(VideoError::NotAllowedContainer(format_name));
    }

    let claimed_s = match input.duration() {
        d if d > 0 => Some(d as f64 / 1e6),
        _ => None,
    };
    if let Some(s) = claimed_s {
        if s > limits.max_seconds {
            return Err(VideoError::TooLong { seconds: s, limit: limits.max_seconds });
        }
    }

    let video_index = input.streams().best(media::Type::Video).map(|s| s.index());
    let audio_index = if options.audio { input.streams().best(media::Type::Audio).map(|s| s.index()) } else { None };
    if video_index.is_none() && audio_index.is_none() {
        return Err(VideoError::NoStreams);
    }

    let mut video = match video_index {
        Some(i) => Some(VideoTrack::open(&input, i, options, claimed_s)?),
        None => None,
    };
    let mut audio = match audio_index {
        Some(i) => AudioTrack::open(&input, i, options).ok(),
        None => None,
    };

    let mut corrupt_packets = 0u64;
    for (stream, packet) in input.packets() {
        let index = stream.index();
        if let Some(v) = video.as_mut().filter(|v| v.index == index) {
            // How far the file's data goes, whether or not this packet is decoded.
            if let Some(pts) = packet.pts().filter(|&t| t != NO_PTS) {
                let at_s = seconds(pts - v.start, v.time_base);
                v.last_s = Some(v.last_s.map_or(at_s, |l| l.max(at_s)));
            }
            if v.done {
                continue;
            }
            if v.strategy == Strategy::Keyframes && !packet.is_key() {
                continue;
            }
            if v.strategy == Strategy::EveryFrame && options.skip_unreferenced {
                v.skip_unwanted_frames(&packet);
            }
            if v.decoder.send_packet(&packet).is_err() {
                corrupt_packets += 1;
                continue;
            }
            v.receive(options)?;
        } else if let Some(a) = audio.as_mut().filter(|a| a.index == index) {
            if a.decoder.send_packet(&packet).is_err() {
                corrupt_packets += 1;
                continue;
            }
            a.receive(limits)?;
        }
    }
    if let Some(v) = video.as_mut() {
        let _ = v.decoder.send_eof();
        v.receive(options)?;
    }
    if let Some(a) = audio.as_mut() {
        let _ = a.decoder.send_eof();
        a.receive(limits)?;
        a.flush()?;
    }

    let audio_pcm = audio.and_then(|a| a.finish(corrupt_packets));
    let (frames, strategy, keyframe_gap_s, decoded_frames, last_packet_s) = match video {
        Some(v) => (v.frames, v.strategy, v.keyframe_gap_s, v.decoded, v.last_s),
        None => (Vec::new(), Strategy::AudioOnly, None, 0, None),
    };
    if frames.is_empty() && audio_pcm.is_none() {
        return Err(VideoError::NothingDecoded { corrupt_packets });
    }
    // Truncation: the last video packet (or audio sample) must come near the claimed end.
    let extent = last_packet_s.unwrap_or(0.0).max(audio_pcm.as_ref().map_or(0.0, Pcm::seconds));
    if let Some(claimed) = claimed_s {
        if extent + 1.0 < claimed * 0.9 {
            return Err(VideoError::Truncated { decoded: extent, claimed });
        }
    }
    Ok(Video {
        frames,
        audio: audio_pcm,
        duration_s: claimed_s.unwrap_or(extent),
        strategy,
        keyframe_gap_s,
        decoded_frames,
        corrupt_packets,
    })
}

/// The video stream's decoder, sampler and scaler.
struct VideoTrack {
    index: usize,
    decoder: ff::decoder::Video,
    time_base: Rational,
    start: i64,
    strategy: Strategy,
    keyframe_gap_s: Option<f64>,
    interval_s: f64,
    next_due_s: f64,
    rotation: Rotation,
    scaler: Option<(software::scaling::Context, (ff::format::Pixel, u32, u32))>,
    frames: Vec<SampledFrame>,
    decoded: u64,
    /// Timestamp of the last video packet demuxed, decoded or not.
    last_s: Option<f64>,
    limits: VideoLimits,
    /// The frame cap was reached: the rest of the stream is not decoded.
    done: bool,
    /// The decoder is set to skip frames no other frame refers to (see `skip_unwanted_frames`).
    skipping_unreferenced: bool,
}

impl VideoTrack {
    fn open(
        input: &format::context::Input,
        index: usize,
        options: &VideoOptions,
        claimed_s: Option<f64>,
    ) -> Result<VideoTrack, VideoError> {
        let limits = options.limits;
        let stream = input.stream(index).ok_or(VideoError::NoStreams)?;
        let params = stream.parameters();
        // SAFETY: reading plain fields of the stream's codec parameters, owned by `input`.
        let (width, height) = unsafe { ((*params.as_ptr()).width, (*params.as_ptr()).height) };
        check_size(width.max(0) as u32, height.max(0) as u32, &limits)?;
        let codec_id = params.id();
        let mut context = codec::context::Context::from_parameters(params)?;
        context.set_threading(ff::threading::Config {
            kind: ff::threading::Type::Frame,
            count: options.threads,
            ..Default::default()
        });
        let keyframe_gap_s = keyframe_gap(&stream, claimed_s);
        let strategy = match options.sampling {
            Sampling::Keyframes => Strategy::Keyframes,
            Sampling::EveryFrame => Strategy::EveryFrame,
            Sampling::Auto => match keyframe_gap_s {
                Some(gap) if gap <= options.interval_s * 1.5 => Strategy::Keyframes,
                _ => Strategy::EveryFrame,
            },
        };
        let mut decoder = context.decoder();
        if strategy == Strategy::Keyframes {
            decoder.skip_frame(ff::Discard::NonKey);
        }
        let decoder = decoder.video().map_err(|_| VideoError::NoDecoder(format!("{codec_id:?}")))?;
        // Longer videos get a wider interval, so the frame cap spreads over the whole video.
        let interval_s = match claimed_s {
            Some(d) => options.interval_s.max(d / limits.max_frames.max(1) as f64),
            None => options.interval_s,
        };
        Ok(VideoTrack {
            index,
            decoder,
            time_base: stream.time_base(),
            start: if stream.start_time() == NO_PTS { 0 } else { stream.start_time() },
            strategy,
            keyframe_gap_s,
            interval_s,
            next_due_s: 0.0,
            rotation: Rotation::of(&stream),
            scaler: None,
            frames: Vec::new(),
            decoded: 0,
            last_s: None,
            limits,
            done: false,
            skipping_unreferenced: false,
        })
    }

    /// Decoding every frame, a frame that nothing refers to (most B-frames) need not be decoded
    /// when it is shown before the next sampling mark: it can be neither sampled nor needed to
    /// decode another frame. `next_due_s` lags behind (frames leave the decoder late), which only
    /// makes this skip fewer frames, so the frames kept are exactly those of decoding them all.
    fn skip_unwanted_frames(&mut self, packet: &ff::Packet) {
        let early = packet
            .pts()
            .filter(|&t| t != NO_PTS)
            .is_some_and(|t| seconds(t - self.start, self.time_base).max(0.0) + 1e-6 < self.next_due_s);
        if early != self.skipping_unreferenced {
            self.decoder.skip_frame(if early { ff::Discard::NonReference } else { ff::Discard::Default });
            self.skipping_unreferenced = early;
        }
    }

    /// Drain decoded frames: check them, keep the ones the sampler wants.
    fn receive(&mut self, options: &VideoOptions) -> Result<(), VideoError> {
        let mut frame = ff::frame::Video::empty();
        while self.decoder.receive_frame(&mut frame).is_ok() {
            self.decoded += 1;
            if self.done {
                continue;
            }
            let Some(ts) = frame.timestamp().filter(|&t| t != NO_PTS) else { continue };
            let at_s = seconds(ts - self.start, self.time_base).max(0.0);
            if at_s > self.limits.max_seconds {
                return Err(VideoError::TooLong { seconds: at_s, limit: self.limits.max_seconds });
            }
            if at_s + 1e-6 < self.next_due_s {
                continue;
            }
            let image = self.scale_to_rgb(&frame, options.frame_short_side)?;
            let Some(image) = image else { continue };
            self.frames.push(SampledFrame { at_s, image: self.rotation.apply(image) });
            self.next_due_s = ((at_s / self.interval_s).floor() + 1.0) * self.interval_s;
            if self.frames.len() >= self.limits.max_frames {
                self.done = true;
            }
        }
        Ok(())
    }

    /// Scale one decoded frame to RGB with the requested shorter side. `None` for a frame that
    /// cannot be scaled (no pixel format or no size): it is skipped, not fatal.
    fn scale_to_rgb(&mut self, frame: &ff::frame::Video, short_side: u32) -> Result<Option<RgbImage>, VideoError> {
        let (fmt, w, h) = (frame.format(), frame.width(), frame.height());
        if fmt == ff::format::Pixel::None || w == 0 || h == 0 {
            return Ok(None);
        }
        check_size(w, h, &self.limits)?;
        if self.scaler.as_ref().map(|(_, key)| *key) != Some((fmt, w, h)) {
            let (ow, oh) = scaled_size(w, h, short_side);
            let scaler = software::scaling::Context::get(
                fmt,
                w,
                h,
                ff::format::Pixel::RGB24,
                ow,
                oh,
                software::scaling::Flags::AREA,
            )?;
            self.scaler = Some((scaler, (fmt, w, h)));
        }
        let (scaler, _) = self.scaler.as_mut().expect("built above");
        let mut rgb = ff::frame::Video::empty();
        scaler.run(frame, &mut rgb)?;
        let (ow, oh) = (rgb.width(), rgb.height());
        let stride = rgb.stride(0);
        let row = ow as usize * 3;
        let plane = rgb.data(0);
        let mut data = Vec::with_capacity(row * oh as usize);
        for y in 0..oh as usize {
            data.extend_from_slice(&plane[y * stride..y * stride + row]);
        }
        Ok(Some(RgbImage { width: ow, height: oh, data }))
    }
}

fn check_size(width: u32, height: u32, limits: &VideoLimits) -> Result<(), VideoError> {
    if width > limits.max_width || height > limits.max_height {
        return Err(VideoError::TooLarge {
            width,
            height,
            limit: format!("{}x{}", limits.max_width, limits.max_height),
        });
    }
    Ok(())
}

/// Output size with the shorter side `short_side`, never enlarging; even sides are not needed for RGB.
fn scaled_size(w: u32, h: u32, short_side: u32) -> (u32, u32) {
    let short = w.min(h);
    if short <= short_side || short_side == 0 {
        return (w, h);
    }
    let scale = short_side as f64 / short as f64;
    (((w as f64 * scale).round() as u32).max(1), ((h as f64 * scale).round() as u32).max(1))
}

/// The longest gap between keyframes (and from the last one to the end), from the demuxer's
/// index: MP4 lists every sample there, Matroska only its cues. Every indexed keyframe is a real
/// one, so this is an upper bound on the true gap (exact for MP4). `None` without an index.
fn keyframe_gap(stream: &format::stream::Stream, claimed_s: Option<f64>) -> Option<f64> {
    let tb = stream.time_base();
    let mut keyframes = Vec::new();
    // SAFETY: the index belongs to the open input, which outlives this call; entries are read
    // one at a time without calling anything else on the stream in between.
    unsafe {
        let st = stream.as_ptr() as *mut ff::ffi::AVStream;
        let count = ff::ffi::avformat_index_get_entries_count(st);
        for i in 0..count {
            let entry = ff::ffi::avformat_index_get_entry(st, i);
            if entry.is_null() {
                continue;
            }
            if (*entry).flags() & ff::ffi::AVINDEX_KEYFRAME != 0 && (*entry).timestamp != NO_PTS {
                keyframes.push(seconds((*entry).timestamp, tb));
            }
        }
    }
    if keyframes.is_empty() {
        return None;
    }
    keyframes.sort_by(f64::total_cmp);
    let end = claimed_s.unwrap_or(*keyframes.last().expect("non-empty"));
    let mut gap = (end - keyframes.last().expect("non-empty")).max(0.0);
    for w in keyframes.windows(2) {
        gap = gap.max(w[1] - w[0]);
    }
    Some(gap)
}

/// The display rotation a phone or glasses app records in the stream's side data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rotation {
    None,
    Clockwise90,
    Half,
    Clockwise270,
}

impl Rotation {
    fn of(stream: &format::stream::Stream) -> Rotation {
        for side in stream.side_data() {
            if side.kind() == ff::codec::packet::side_data::Type::DisplayMatrix && side.data().len() >= 36 {
                let mut m = [0i32; 9];
                for (i, v) in m.iter_mut().enumerate() {
                    *v = i32::from_ne_bytes(side.data()[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
                }
                // SAFETY: a 3×3 i32 matrix, as av_display_rotation_get expects.
                let ccw = unsafe { ff::ffi::av_display_rotation_get(m.as_ptr()) };
                if ccw.is_nan() {
                    return Rotation::None;
                }
                // FFmpeg gives the counter-clockwise angle the frame was rotated by; undo it.
                let cw = ((-ccw).rem_euclid(360.0) / 90.0).round() as i32 % 4;
                return match cw {
                    1 => Rotation::Clockwise90,
                    2 => Rotation::Half,
                    3 => Rotation::Clockwise270,
                    _ => Rotation::None,
                };
            }
        }
        Rotation::None
    }

    fn apply(self, img: RgbImage) -> RgbImage {
        if self == Rotation::None {
            return img;
        }
        let (w, h) = (img.width as usize, img.height as usize);
        let (ow, oh) = if self == Rotation::Half { (w, h) } else { (h, w) };
        let mut out = vec![0u8; img.data.len()];
        for y in 0..h {
            for x in 0..w {
                let (nx, ny) = match self {
                    Rotation::Clockwise90 => (h - 1 - y, x),
                    Rotation::Half => (w - 1 - x, h - 1 - y),
                    Rotation::Clockwise270 => (y, w - 1 - x),
                    Rotation::None => unreachable!(),
                };
                let (src, dst) = ((y * w + x) * 3, (ny * ow + nx) * 3);
                out[dst..dst + 3].copy_from_slice(&img.data[src..src + 3]);
            }
        }
        RgbImage { width: ow as u32, height: oh as u32, data: out }
    }
}

/// The audio stream's decoder and swresample context (to 16 kHz mono f32).
struct AudioTrack {
    index: usize,
    decoder: ff::decoder::Audio,
    resampler: Option<(software::resampling::Context, (ff::format::Sample, u64, u32))>,
    samples: Vec<f32>,
    max_samples: usize,
    source_rate: u32,
    source_channels: usize,
}

impl AudioTrack {
    fn open(input: &format::context::Input, index: usize, options: &VideoOptions) -> Result<AudioTrack, VideoError> {
        let stream = input.stream(index).ok_or(VideoError::NoStreams)?;
        let context = codec::context::Context::from_parameters(stream.parameters())?;
        let decoder = context.decoder().audio()?;
        Ok(AudioTrack {
            index,
            decoder,
            resampler: None,
            samples: Vec::new(),
            max_samples: (options.limits.max_seconds * TARGET_RATE as f64) as usize,
            source_rate: 0,
            source_channels: 0,
        })
    }

    fn receive(&mut self, limits: &VideoLimits) -> Result<(), VideoError> {
        let mut frame = ff::frame::Audio::empty();
        while self.decoder.receive_frame(&mut frame).is_ok() {
            let (fmt, rate, channels) = (frame.format(), frame.rate(), frame.channels());
            if rate == 0 || channels == 0 || frame.samples() == 0 {
                continue;
            }
            let layout = match frame.channel_layout().bits() {
                0 => ff::ChannelLayout::default(channels as i32),
                _ => frame.channel_layout(),
            };
            let key = (fmt, layout.bits(), rate);
            if self.resampler.as_ref().map(|(_, k)| *k) != Some(key) {
                self.flush()?;
                let ctx = software::resampling::Context::get(
                    fmt,
                    layout,
                    rate,
                    ff::format::Sample::F32(ff::format::sample::Type::Packed),
                    ff::ChannelLayout::MONO,
                    TARGET_RATE,
                )?;
                self.resampler = Some((ctx, key));
                self.source_rate = rate;
                self.source_channels = channels as usize;
            }
            let (ctx, _) = self.resampler.as_mut().expect("built above");
            // SAFETY: the input planes are the decoded frame's own; the output buffer is sized
            // by swr_get_out_samples for this call.
            unsafe {
                let s = ctx.as_mut_ptr();
                let room = ff::ffi::swr_get_out_samples(s, frame.samples() as i32).max(0) as usize;
                let at = self.samples.len();
                self.samples.resize(at + room, 0.0);
                let mut out = self.samples[at..].as_mut_ptr() as *mut u8;
                let input = (*frame.as_ptr()).extended_data as *mut *const u8;
                let n = ff::ffi::swr_convert(s, &mut out, room as i32, input, frame.samples() as i32);
                self.samples.truncate(at + n.max(0) as usize);
            }
            if self.samples.len() > self.max_samples {
                return Err(VideoError::TooLong {
                    seconds: self.samples.len() as f64 / TARGET_RATE as f64,
                    limit: limits.max_seconds,
                });
            }
        }
        Ok(())
    }

    /// Drain what swresample still holds.
    fn flush(&mut self) -> Result<(), VideoError> {
        let Some((ctx, _)) = self.resampler.as_mut() else { return Ok(()) };
        // SAFETY: flushing with a null input; output sized by swr_get_out_samples.
        unsafe {
            let s = ctx.as_mut_ptr();
            let room = ff::ffi::swr_get_out_samples(s, 0).max(0) as usize;
            if room > 0 {
                let at = self.samples.len();
                self.samples.resize(at + room, 0.0);
                let mut out = self.samples[at..].as_mut_ptr() as *mut u8;
                let n = ff::ffi::swr_convert(s, &mut out, room as i32, std::ptr::null_mut(), 0);
                self.samples.truncate(at + n.max(0) as usize);
            }
        }
        Ok(())
    }

    fn finish(self, corrupt_packets: u64) -> Option<Pcm> {
        (!self.samples.is_empty()).then_some(Pcm {
            samples: self.samples,
            source_rate: self.source_rate,
            source_channels: self.source_channels,
            corrupt_packets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_allows_only_iso_bmff_and_matroska() {
        assert!(sniff(b"\0\0\0\x20ftypisom\0\0\x02\0").is_ok());
        assert!(sniff(b"\0\0\0\x08wide\0\0\0\0mdat").is_ok());
        assert!(sniff(&[0x1A, 0x45, 0xDF, 0xA3, 0x9F]).is_ok());
        for bad in [&b"ffconcat version 1.0\nfile '/etc/passwd'"[..], b"#EXTM3U\n#EXTINF:10,\n../x.ts", b"RIFF", b""] {
            assert!(
                matches!(sniff(bad), Err(VideoError::NotAllowedContainer(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn scaled_size_keeps_aspect_and_never_enlarges() {
        assert_eq!(scaled_size(1920, 1080, 256), (455, 256));
        assert_eq!(scaled_size(1080, 1920, 256), (256, 455));
        assert_eq!(scaled_size(320, 240, 256), (320, 240));
    }

    #[test]
    fn rotation_moves_pixels_clockwise() {
        // 2×1: red, green. Rotated 90° clockwise: 1×2, red on top.
        let img = RgbImage { width: 2, height: 1, data: vec![255, 0, 0, 0, 255, 0] };
        let r = Rotation::Clockwise90.apply(img.clone());
        assert_eq!((r.width, r.height), (1, 2));
        assert_eq!(r.data, vec![255, 0, 0, 0, 255, 0]);
        let r = Rotation::Clockwise270.apply(img.clone());
        assert_eq!(r.data, vec![0, 255, 0, 255, 0, 0]);
        let r = Rotation::Half.apply(img);
        assert_eq!(r.data, vec![0, 255, 0, 255, 0, 0]);
    }
}
