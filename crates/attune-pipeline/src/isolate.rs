//! Media decoding in child processes, so a decoder that aborts, segfaults, loops or eats memory
//! costs one event instead of the run.
//!
//! The parent ([`WorkerDecoder`]) starts `attune decode-worker` (any program that calls
//! [`serve`]) with a memory limit, sends it one request per admitted media event — the kind and the
//! file, already resolved inside the manifest's folder — and reads back the decoded payload in a
//! compact binary form (raw RGB and f32 samples, no re-encoding). A reply that does not come within
//! the time limit kills the worker; a worker that dies is replaced before the next event. Either way
//! the event fails with the reason: `timeout`, `crashed (SIGSEGV)`, `out of memory` …
//!
//! Privacy: a request can only be built from an [`Admitted`] event ([`WorkerDecoder::decode`]
//! takes nothing else), so a worker never hears of an excluded user's file.

use crate::MediaDecoder;
use attune_decode::audio::Pcm;
use attune_decode::image::RgbImage;
use attune_decode::video::{SampledFrame, Strategy, Video};
use attune_decode::{DecodeOptions, Decoded};
use attune_event::{Event, Kind};
use attune_policy::Admitted;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

/// Replies larger than this are refused (a worker is ours, but bounded anyway): 32 frames of
/// 512×910 RGB plus two hours of 16 kHz audio fit with room to spare.
const MAX_REPLY_BYTES: u64 = 1 << 30;

/// How the parent runs its workers.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The program and arguments that start a worker (`attune decode-worker …`).
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Wall-clock limit for one event.
    pub timeout: Duration,
    /// How to decode: sent with each request, so a worker decodes as the run does without
    /// being told it by arguments.
    pub options: DecodeOptions,
}

/// One child process and the thread that reads its replies.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    replies: crossbeam_channel::Receiver<std::io::Result<Reply>>,
    /// Ends when the worker's stderr closes, with its last lines.
    stderr_tail: std::thread::JoinHandle<Vec<String>>,
}

/// A decoder that runs each request in a worker process.
pub struct WorkerDecoder {
    config: WorkerConfig,
    worker: Option<Worker>,
}

type Reply = Result<Decoded, String>;

impl WorkerDecoder {
    pub fn new(config: WorkerConfig) -> WorkerDecoder {
        WorkerDecoder { config, worker: None }
    }

    fn spawn(&self) -> std::io::Result<Worker> {
        let mut child = Command::new(&self.config.program)
            .args(&self.config.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let stderr = child.stderr.take().expect("piped");
        let (tx, replies) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || loop {
            let reply = read_reply(&mut stdout);
            let eof = reply.is_err();
            if tx.send(reply).is_err() || eof {
                break;
            }
        });
        // The last lines a worker printed say why it died (Rust's "memory allocation … failed").
        let stderr_tail = std::thread::spawn(move || {
            let mut tail = std::collections::VecDeque::with_capacity(8);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tail.len() == 8 {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            Vec::from(tail)
        });
        Ok(Worker { child, stdin, replies, stderr_tail })
    }

    /// Kill the worker (if still running) and say why it is gone.
    fn bury(&mut self, timed_out: bool) -> String {
        let Some(mut w) = self.worker.take() else { return "no worker".into() };
        if timed_out {
            let _ = w.child.kill();
        }
        let status = w.child.wait();
        let tail = w.stderr_tail.join().unwrap_or_default().join(" | ");
        if timed_out {
            return format!("timeout: no result within {} s (the decoder was stopped)", self.config.timeout.as_secs());
        }
        let out_of_memory = tail.contains("memory allocation") || tail.contains("out of memory");
        let how = match status {
            Ok(s) => describe_exit(s),
            Err(e) => format!("could not be waited for: {e}"),
        };
        if out_of_memory {
            format!("too large: the decoder ran out of its memory limit and {how}")
        } else if tail.is_empty() {
            format!("crashed: the decoder process {how}")
        } else {
            format!("crashed: the decoder process {how} ({tail})")
        }
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(sig) => {
            let name = match sig {
                libc::SIGSEGV => "SIGSEGV".to_string(),
                libc::SIGABRT => "SIGABRT".to_string(),
                libc::SIGBUS => "SIGBUS".to_string(),
                libc::SIGILL => "SIGILL".to_string(),
                libc::SIGFPE => "SIGFPE".to_string(),
                libc::SIGKILL => "SIGKILL".to_string(),
                n => format!("signal {n}"),
            };
            format!("was killed by {name}")
        }
        None => format!("exited with {}", status.code().unwrap_or(-1)),
    }
}

impl MediaDecoder for WorkerDecoder {
    fn decode(&mut self, event: &Admitted<Event>) -> Result<Admitted<Decoded>, String> {
        let (kind, path) = match &event.get().media {
            None => return Err("the event has no media to decode".into()),
            Some(media) => (media.kind, media.path.resolve().map_err(|e| e.to_string())?),
        };
        if self.worker.is_none() {
            self.worker = Some(self.spawn().map_err(|e| format!("cannot start a decoder process: {e}"))?);
        }
        let w = self.worker.as_mut().expect("spawned above");
        let request = serde_json::json!({ "kind": kind.as_str(), "file": path, "options": self.config.options });
        if writeln!(w.stdin, "{request}").and_then(|_| w.stdin.flush()).is_err() {
            // The previous event left it dead; say so, then replace it for the next event.
            return Err(self.bury(false));
        }
        match w.replies.recv_timeout(self.config.timeout) {
            Ok(Ok(Ok(decoded))) => Ok(event.as_ref().map(|_| decoded)),
            Ok(Ok(Err(message))) => Err(message),
            Ok(Err(_)) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Err(self.bury(false)),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(self.bury(true)),
        }
    }
}

impl Drop for WorkerDecoder {
    fn drop(&mut self) {
        if let Some(mut w) = self.worker.take() {
            drop(w.stdin); // EOF: the worker exits on its own
            let _ = w.child.wait();
        }
    }
}

/// The worker's side: read requests from `input` until it closes, decode each, write replies to
/// `output`, each request decoded with the options it carries. Called by `attune decode-worker`
/// after it has set its memory limit.
pub fn serve(input: impl BufRead, mut output: impl Write) -> std::io::Result<()> {
    for line in input.lines() {
        let line = line?;
        let reply = decode_request(&line);
        write_reply(&mut output, &reply)?;
        output.flush()?;
    }
    Ok(())
}

/// One line of the parent's: what to decode, and how.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    kind: String,
    file: PathBuf,
    options: DecodeOptions,
}

fn decode_request(line: &str) -> Reply {
    let request: Request = serde_json::from_str(line).map_err(|e| format!("bad request: {e}"))?;
    let kind = match request.kind.as_str() {
        "image" => Kind::Image,
        "audio" => Kind::Audio,
        "video" => Kind::Video,
        other => return Err(format!("bad request: kind {other:?}")),
    };
    fault_injection(&request.file);
    attune_decode::decode_file(kind, &request.file, &request.options).map_err(|e| e.to_string())
}

/// Without the `fault-injection` feature (release builds): nothing.
#[cfg(not(feature = "fault-injection"))]
fn fault_injection(_file: &Path) {}

/// Without the `fault-injection` feature (release builds): nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn crash_before_commit() {}

/// The effectively-once tests (`crates/attune-py/tests`) kill a worker with its batch decoded
/// and tagged but not committed: with `ATTUNE_FAULT_CRASH_BEFORE_COMMIT=FILE`, the first process
/// to get here creates FILE and dies at once; later ones find it and go on. Only in builds with
/// the `fault-injection` feature.
#[cfg(feature = "fault-injection")]
pub(crate) fn crash_before_commit() {
    let Some(marker) = std::env::var_os("ATTUNE_FAULT_CRASH_BEFORE_COMMIT") else { return };
    // `create_new`: exactly one process, once, whatever else runs at the same time.
    if std::fs::OpenOptions::new().write(true).create_new(true).open(&marker).is_ok() {
        eprintln!("fault injection: exiting before the store commit");
        std::process::abort();
    }
}

/// Tests of the isolation itself need a decoder that crashes, hangs or eats memory on demand;
/// real decoders do that only on inputs nobody can name in advance. Only in builds with the
/// `fault-injection` feature (`just test`), only with `ATTUNE_WORKER_FAULTS=1` in the worker's
/// environment, and only for files that start with `ATTUNE-FAULT:`.
#[cfg(feature = "fault-injection")]
fn fault_injection(file: &Path) {
    if std::env::var_os("ATTUNE_WORKER_FAULTS").as_deref() != Some("1".as_ref()) {
        return;
    }
    let mut head = [0u8; 32];
    let n = std::fs::File::open(file).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    match head[..n].strip_prefix(b"ATTUNE-FAULT:") {
        Some(rest) if rest.starts_with(b"abort") => std::process::abort(),
        // A real invalid write, as a C decoder would make (raise() alone is absorbed by Rust's
        // stack-overflow handler).
        Some(rest) if rest.starts_with(b"segv") => unsafe {
            std::ptr::null_mut::<u8>().write_volatile(1);
        },
        Some(rest) if rest.starts_with(b"hang") => loop {
            std::thread::sleep(Duration::from_secs(1));
        },
        Some(rest) if rest.starts_with(b"oom") => {
            let mut hog: Vec<Vec<u8>> = Vec::new();
            loop {
                hog.push(vec![1u8; 64 << 20]);
            }
        }
        _ => {}
    }
}

// The reply format: a tag byte, then little-endian fields. Lengths are checked against
// MAX_REPLY_BYTES before anything is allocated.
const OK_IMAGE: u8 = 1;
const OK_AUDIO: u8 = 2;
const OK_VIDEO: u8 = 3;
const ERR: u8 = 0xEE;

fn write_reply(out: &mut impl Write, reply: &Reply) -> std::io::Result<()> {
    match reply {
        Err(message) => {
            out.write_all(&[ERR])?;
            write_bytes(out, message.as_bytes())
        }
        Ok(Decoded::Image(img)) => {
            out.write_all(&[OK_IMAGE])?;
            write_image(out, img)
        }
        Ok(Decoded::Audio(pcm)) => {
            out.write_all(&[OK_AUDIO])?;
            write_pcm(out, pcm)
        }
        Ok(Decoded::Video(v)) => {
            out.write_all(&[OK_VIDEO])?;
            out.write_all(&v.duration_s.to_le_bytes())?;
            out.write_all(&[match v.strategy {
                Strategy::Keyframes => 0,
                Strategy::EveryFrame => 1,
                Strategy::AudioOnly => 2,
            }])?;
            out.write_all(&v.keyframe_gap_s.unwrap_or(-1.0).to_le_bytes())?;
            out.write_all(&v.decoded_frames.to_le_bytes())?;
            out.write_all(&v.corrupt_packets.to_le_bytes())?;
            out.write_all(&(v.frames.len() as u64).to_le_bytes())?;
            for f in &v.frames {
                out.write_all(&f.at_s.to_le_bytes())?;
                write_image(out, &f.image)?;
            }
            match &v.audio {
                Some(pcm) => {
                    out.write_all(&[1])?;
                    write_pcm(out, pcm)
                }
                None => out.write_all(&[0]),
            }
        }
    }
}

fn write_bytes(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(&(bytes.len() as u64).to_le_bytes())?;
    out.write_all(bytes)
}

fn write_image(out: &mut impl Write, img: &RgbImage) -> std::io::Result<()> {
    out.write_all(&img.width.to_le_bytes())?;
    out.write_all(&img.height.to_le_bytes())?;
    write_bytes(out, &img.data)
}

fn write_pcm(out: &mut impl Write, pcm: &Pcm) -> std::io::Result<()> {
    out.write_all(&pcm.source_rate.to_le_bytes())?;
    out.write_all(&(pcm.source_channels as u64).to_le_bytes())?;
    out.write_all(&pcm.corrupt_packets.to_le_bytes())?;
    out.write_all(&(pcm.samples.len() as u64).to_le_bytes())?;
    // f32 samples as raw little-endian bytes, in chunks to keep the copy small.
    for chunk in pcm.samples.chunks(16 * 1024) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
        out.write_all(&bytes)?;
    }
    Ok(())
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad reply from the decoder process: {what}"))
}

fn read_array<const N: usize>(r: &mut impl Read) -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

fn read_u32(r: &mut impl Read) -> std::io::Result<u32> {
    Ok(u32::from_le_bytes(read_array(r)?))
}

fn read_u64(r: &mut impl Read) -> std::io::Result<u64> {
    Ok(u64::from_le_bytes(read_array(r)?))
}

fn read_f64(r: &mut impl Read) -> std::io::Result<f64> {
    Ok(f64::from_le_bytes(read_array(r)?))
}

fn read_len(r: &mut impl Read) -> std::io::Result<usize> {
    let n = read_u64(r)?;
    if n > MAX_REPLY_BYTES {
        return Err(bad("length over the limit"));
    }
    Ok(n as usize)
}

fn read_bytes(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let n = read_len(r)?;
    let mut v = vec![0u8; n];
    r.read_exact(&mut v)?;
    Ok(v)
}

fn read_image(r: &mut impl Read) -> std::io::Result<RgbImage> {
    let (width, height) = (read_u32(r)?, read_u32(r)?);
    let data = read_bytes(r)?;
    if data.len() as u64 != width as u64 * height as u64 * 3 {
        return Err(bad("image size does not match its pixels"));
    }
    Ok(RgbImage { width, height, data })
}

fn read_pcm(r: &mut impl Read) -> std::io::Result<Pcm> {
    let source_rate = read_u32(r)?;
    let source_channels = read_u64(r)? as usize;
    let corrupt_packets = read_u64(r)?;
    let n = read_len(r)?;
    if n as u64 * 4 > MAX_REPLY_BYTES {
        return Err(bad("too many samples"));
    }
    let mut raw = vec![0u8; n * 4];
    r.read_exact(&mut raw)?;
    let samples = raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok(Pcm { samples, source_rate, source_channels, corrupt_packets })
}

/// One reply; an I/O error (EOF included) means the worker is gone.
fn read_reply(r: &mut impl Read) -> std::io::Result<Reply> {
    let [tag] = read_array::<1>(r)?;
    Ok(match tag {
        ERR => Err(String::from_utf8_lossy(&read_bytes(r)?).into_owned()),
        OK_IMAGE => Ok(Decoded::Image(read_image(r)?)),
        OK_AUDIO => Ok(Decoded::Audio(read_pcm(r)?)),
        OK_VIDEO => {
            let duration_s = read_f64(r)?;
            let [strategy] = read_array::<1>(r)?;
            let strategy = match strategy {
                0 => Strategy::Keyframes,
                1 => Strategy::EveryFrame,
                2 => Strategy::AudioOnly,
                _ => return Err(bad("unknown strategy")),
            };
            let gap = read_f64(r)?;
            let decoded_frames = read_u64(r)?;
            let corrupt_packets = read_u64(r)?;
            let n = read_u64(r)?;
            if n > 4096 {
                return Err(bad("too many frames"));
            }
            let mut frames = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let at_s = read_f64(r)?;
                frames.push(SampledFrame { at_s, image: read_image(r)? });
            }
            let audio = match read_array::<1>(r)? {
                [0] => None,
                [1] => Some(read_pcm(r)?),
                _ => return Err(bad("audio flag")),
            };
            Ok(Decoded::Video(Video {
                frames,
                audio,
                duration_s,
                strategy,
                keyframe_gap_s: (gap >= 0.0).then_some(gap),
                decoded_frames,
                corrupt_packets,
            }))
        }
        _ => return Err(bad("unknown reply")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_round_trip() {
        let img = RgbImage { width: 2, height: 1, data: vec![1, 2, 3, 4, 5, 6] };
        let pcm = Pcm { samples: vec![0.5, -0.25, 1.0], source_rate: 44_100, source_channels: 2, corrupt_packets: 1 };
        let video = Video {
            frames: vec![SampledFrame { at_s: 1.5, image: img.clone() }],
            audio: Some(pcm.clone()),
            duration_s: 6.2,
            strategy: Strategy::Keyframes,
            keyframe_gap_s: Some(1.0),
            decoded_frames: 7,
            corrupt_packets: 2,
        };
        for reply in [Ok(Decoded::Image(img)), Ok(Decoded::Audio(pcm)), Ok(Decoded::Video(video)), Err("no".into())] {
            let mut buf = Vec::new();
            write_reply(&mut buf, &reply).unwrap();
            let back = read_reply(&mut buf.as_slice()).unwrap();
            assert_eq!(format!("{back:?}"), format!("{reply:?}"));
        }
    }

    #[test]
    fn a_lying_reply_is_refused_without_allocating_it() {
        let mut buf = vec![OK_IMAGE];
        buf.extend(2u32.to_le_bytes());
        buf.extend(1u32.to_le_bytes());
        buf.extend(u64::MAX.to_le_bytes());
        assert!(read_reply(&mut buf.as_slice()).is_err());
        let mut buf = vec![OK_IMAGE];
        buf.extend(2u32.to_le_bytes());
        buf.extend(2u32.to_le_bytes());
        buf.extend(3u64.to_le_bytes());
        buf.extend([0, 0, 0]);
        assert!(read_reply(&mut buf.as_slice()).is_err(), "3 bytes for 2×2 pixels");
    }
}
