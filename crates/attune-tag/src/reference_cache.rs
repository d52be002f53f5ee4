//! The tagger's reference embeddings (every taxonomy node, every category description, and for
//! e5 the ~15,600 labelled example chats that pull the nodes), kept on disk between runs: e5's are
//! minutes of a run's start-up on 2 cores, and change only with the model or the texts, which
//! together name the file. Example chats are kept as 16-bit floats ([`As::precision`]).
//!
//! A cache is only a shortcut: a file that is missing, truncated, altered or for other texts is
//! ignored and written anew, and a cache that cannot be written leaves the run as it was.
//!
//! The shipped models' reference embeddings are also compiled in ([`SHIPPED`], made by `just
//! references`), so that a fresh host (a new worker of a fleet, a CI machine) does not spend
//! its first minutes embedding e5's reference texts. They are files of the same name and
//! format, used only where a cache is in use (`ATTUNE_CACHE=` computes everything); when the
//! texts or the model change, their names no longer match and the references are computed as
//! before (a test says so before that ships). That the shipped vectors are what the model
//! computes is checked on a sample of them ([`shipped_drift`]; the end-to-end tests compare one
//! text in 16), computing all of e5's taking minutes.

use attune_infer::{InferError, TextEmbedder};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const MAGIC_F32: &[u8; 8] = b"ATREF01\n";
const MAGIC_F16: &[u8; 8] = b"ATREF16\n";
/// Larger than any reference set of any model we would run (1,100 × 4,096 dims is 18 MB).
const MAX_FILE_BYTES: u64 = 256 << 20;

/// The embeddings of `texts` by `embedder`: from `dir` when it holds them for this model and
/// these texts, else computed and written there for the next run.
pub(crate) fn embed<M>(embedder: &mut M, texts: &[String], dir: Option<&Path>) -> Result<Vec<Vec<f32>>, InferError>
where
    M: TextEmbedder + ?Sized,
{
    embed_as(embedder, texts, dir, As::Passages)
}

/// How reference texts are embedded: as references (descriptions), or as items (example chats,
/// which must land where the chats they stand for land; E5 prefixes the two differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum As {
    Passages,
    Items,
}

impl As {
    /// The name a reference set of this kind goes by for the model `model_id`: with the texts,
    /// what names its file.
    fn set_id(self, model_id: &str) -> String {
        match self {
            As::Passages => model_id.to_string(),
            As::Items => format!("{model_id} items"),
        }
    }

    /// Example chats are kept as 16-bit floats: there are ~15,000 of them (23 MB in f32, compiled
    /// in), and a similarity moves by ~1e-4 for it, under what one CPU's kernels move it from
    /// another's. Computed ones are rounded alike, so a run with a cache, with the shipped file
    /// or with neither reads the same vectors.
    fn precision(self) -> Precision {
        match self {
            As::Passages => Precision::F32,
            As::Items => Precision::F16,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precision {
    F32,
    F16,
}

impl Precision {
    fn magic(self) -> &'static [u8; 8] {
        match self {
            Precision::F32 => MAGIC_F32,
            Precision::F16 => MAGIC_F16,
        }
    }

    fn bytes_per_value(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }

    /// `vectors` as this precision stores them.
    fn round(self, vectors: &mut [Vec<f32>]) {
        if self == Precision::F16 {
            for v in vectors.iter_mut().flatten() {
                *v = half::f16::from_f32(*v).to_f32();
            }
        }
    }
}

pub(crate) fn embed_as<M>(
    embedder: &mut M,
    texts: &[String],
    dir: Option<&Path>,
    mode: As,
) -> Result<Vec<Vec<f32>>, InferError>
where
    M: TextEmbedder + ?Sized,
{
    let precision = mode.precision();
    let Some(dir) = dir else { return compute(embedder, texts, mode) };
    let path = file_for(dir, &mode.set_id(embedder.id()), texts);
    if let Some(vectors) = read(&path, texts.len(), precision) {
        return Ok(vectors);
    }
    // Kept in the cache as well, so that the cache holds every reference set a run used (what
    // `just references` collects).
    let vectors = match shipped(&path, texts.len(), precision) {
        Some(vectors) => vectors,
        None => compute(embedder, texts, mode)?,
    };
    if let Err(e) = write(&path, &vectors, precision) {
        tracing::info!("cannot keep the tagger's reference embeddings in {}: {e}", path.display());
    }
    Ok(vectors)
}

/// `texts` embedded by `embedder` as `mode` says, rounded as `mode` keeps them.
fn compute<M>(embedder: &mut M, texts: &[String], mode: As) -> Result<Vec<Vec<f32>>, InferError>
where
    M: TextEmbedder + ?Sized,
{
    let mut vectors = match mode {
        As::Passages => embedder.embed_passages(texts),
        As::Items => attune_infer::run_in_batches_by_size(embedder, texts, String::len),
    }?;
    mode.precision().round(&mut vectors);
    Ok(vectors)
}

/// How far `embedder` now puts every `stride`-th of `texts` from the compiled-in vectors for
/// them: (texts compared, the largest Euclidean distance between a vector computed now, rounded
/// as kept, and the shipped one). `None` when nothing is compiled in for these texts and model.
pub(crate) fn shipped_drift<M>(
    embedder: &mut M,
    texts: &[String],
    mode: As,
    stride: usize,
) -> Result<Option<(usize, f32)>, InferError>
where
    M: TextEmbedder + ?Sized,
{
    let path = file_for(Path::new(""), &mode.set_id(embedder.id()), texts);
    let Some(shipped) = shipped(&path, texts.len(), mode.precision()) else { return Ok(None) };
    let picked: Vec<usize> = (0..texts.len()).step_by(stride.max(1)).collect();
    let sample: Vec<String> = picked.iter().map(|&i| texts[i].clone()).collect();
    let now = compute(embedder, &sample, mode)?;
    if now.len() != sample.len() {
        return Err(InferError::Config(format!("{} vectors for {} texts", now.len(), sample.len())));
    }
    let largest = picked.iter().zip(&now).fold(0f32, |largest, (&i, now)| {
        let kept = &shipped[i];
        let distance = match now.len() == kept.len() {
            true => now.iter().zip(kept).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt(),
            false => f32::INFINITY,
        };
        // `f32::max` would pass over a NaN: a vector that is not finite is as far as can be.
        largest.max(if distance.is_nan() { f32::INFINITY } else { distance })
    });
    Ok(Some((sample.len(), largest)))
}

/// `DIR/reference-KEY.bin`, KEY a digest of the model's id and every text.
pub(crate) fn file_for(dir: &Path, model_id: &str, texts: &[String]) -> PathBuf {
    let mut h = Sha256::new();
    h.update(model_id.as_bytes());
    for text in texts {
        h.update((text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    let key: String = h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("reference-{key}.bin"))
}

/// The reference embeddings of the shipped models, by file name (`file_for`'s): every file of
/// `data/references/` (build.rs).
pub(crate) const SHIPPED: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/shipped_references.rs"));

/// The compiled-in vectors of the file `path` names, when there are `count` of them.
fn shipped(path: &Path, count: usize, precision: Precision) -> Option<Vec<Vec<f32>>> {
    let name = path.file_name()?.to_str()?;
    let (_, bytes) = SHIPPED.iter().find(|(n, _)| *n == name)?;
    parse(bytes, count, precision)
}

/// The vectors in `path` when it is a whole, unaltered file of `count` finite vectors.
fn read(path: &Path, count: usize, precision: Precision) -> Option<Vec<Vec<f32>>> {
    if std::fs::metadata(path).ok()?.len() > MAX_FILE_BYTES {
        return None;
    }
    parse(&std::fs::read(path).ok()?, count, precision)
}

/// The vectors of a cache file's bytes when they are whole, unaltered and `count` finite vectors.
fn parse(bytes: &[u8], count: usize, precision: Precision) -> Option<Vec<Vec<f32>>> {
    let (body, digest) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if Sha256::digest(body)[..] != digest[..] {
        return None;
    }
    let rest = body.strip_prefix(precision.magic())?;
    let (header, data) = rest.split_at_checked(8)?;
    let stored = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let dim = u32::from_le_bytes(header[4..].try_into().ok()?) as usize;
    let width = precision.bytes_per_value();
    if stored != count || dim == 0 || data.len() != count.checked_mul(dim)?.checked_mul(width)? {
        return None;
    }
    let values: Vec<f32> = match precision {
        Precision::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Precision::F16 => data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
    };
    if !values.iter().all(|v| v.is_finite()) {
        return None;
    }
    Some(values.chunks_exact(dim).map(<[f32]>::to_vec).collect())
}

/// Write through a temporary file and a rename, so a reader never sees half a file.
fn write(path: &Path, vectors: &[Vec<f32>], precision: Precision) -> std::io::Result<()> {
    let dim = vectors.first().map_or(0, Vec::len);
    if dim == 0 || vectors.iter().any(|v| v.len() != dim) {
        return Err(std::io::Error::other("vectors of differing lengths"));
    }
    let magic = precision.magic();
    let mut bytes = Vec::with_capacity(magic.len() + 8 + vectors.len() * dim * precision.bytes_per_value() + 32);
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&(vectors.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&(dim as u32).to_le_bytes());
    for &v in vectors.iter().flatten() {
        match precision {
            Precision::F32 => bytes.extend_from_slice(&v.to_le_bytes()),
            Precision::F16 => bytes.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
        }
    }
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temporary =
        dir.join(format!(".{}.{}", path.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
    std::fs::write(&temporary, &bytes)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_testkit::ScriptedEmbedder;

    /// A text's length and word count as its vector; counts what it embeds.
    fn counting() -> ScriptedEmbedder {
        ScriptedEmbedder::new("counting@1", 3, |t| vec![t.len() as f32, t.split_whitespace().count() as f32, 0.5])
    }

    fn texts() -> Vec<String> {
        ["hiking boots", "a", "banana bread recipe for the weekend", "tents"].map(String::from).to_vec()
    }

    #[test]
    fn the_second_build_reads_what_the_first_computed() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = counting();
        let first = embed(&mut model, &texts(), Some(dir.path())).unwrap();
        assert_eq!(model.embedded(), 4);
        let second = embed(&mut model, &texts(), Some(dir.path())).unwrap();
        assert_eq!(model.embedded(), 4, "read, not computed");
        assert_eq!(first, second);
        assert_eq!(first, embed(&mut model, &texts(), None).unwrap());
    }

    #[test]
    fn another_model_or_other_texts_name_another_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = file_for(dir.path(), "counting@1", &texts());
        assert_ne!(a, file_for(dir.path(), "counting@2", &texts()));
        let mut other = texts();
        other[1].push('b');
        assert_ne!(a, file_for(dir.path(), "counting@1", &other));
        // Boundaries count: ["ab", "c"] is not ["a", "bc"].
        let split = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_ne!(file_for(dir.path(), "m", &split(&["ab", "c"])), file_for(dir.path(), "m", &split(&["a", "bc"])));
    }

    #[test]
    fn a_damaged_file_is_computed_and_written_anew() {
        let dir = tempfile::tempdir().unwrap();
        let mut model = counting();
        let want = embed(&mut model, &texts(), Some(dir.path())).unwrap();
        let path = file_for(dir.path(), "counting@1", &texts());
        let whole = std::fs::read(&path).unwrap();
        let mut flipped = whole.clone();
        flipped[20] ^= 1;
        for damaged in [whole[..whole.len() - 1].to_vec(), flipped, Vec::new(), b"ATREF01\n".to_vec()] {
            std::fs::write(&path, damaged).unwrap();
            let before = model.embedded();
            assert_eq!(embed(&mut model, &texts(), Some(dir.path())).unwrap(), want);
            assert_eq!(model.embedded(), before + 4, "computed again");
            assert_eq!(std::fs::read(&path).unwrap(), whole, "written anew");
        }
    }

    #[test]
    fn example_chats_are_kept_in_16_bits_and_read_alike_with_a_cache_or_without() {
        let dir = tempfile::tempdir().unwrap();
        // Values that 16 bits cannot hold exactly.
        let mut model = ScriptedEmbedder::new("thirds@1", 2, |t| vec![t.len() as f32 / 3.0, 0.1]);
        let texts = texts();
        let cached = embed_as(&mut model, &texts, Some(dir.path()), As::Items).unwrap();
        let uncached = embed_as(&mut model, &texts, None, As::Items).unwrap();
        assert_eq!(cached, uncached);
        assert_ne!(cached[0][1], 0.1, "rounded to 16 bits");
        assert!((cached[0][1] - 0.1).abs() < 1e-4);
        let path = file_for(dir.path(), "thirds@1 items", &texts);
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, 8 + 8 + texts.len() * 2 * 2 + 32);
        assert_eq!(embed_as(&mut model, &texts, Some(dir.path()), As::Items).unwrap(), cached, "read back alike");
        // A descriptions' file is not an example chats' file of the same name.
        let bytes = std::fs::read(&path).unwrap();
        assert!(parse(&bytes, texts.len(), Precision::F32).is_none());
    }

    #[test]
    fn a_cache_that_cannot_be_written_leaves_the_result_alone() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, b"x").unwrap();
        let mut model = counting();
        let got = embed(&mut model, &texts(), Some(&blocker.join("cache"))).unwrap();
        assert_eq!(got, embed(&mut model, &texts(), None).unwrap());
    }
}
