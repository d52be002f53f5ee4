//! `attune embed`: the text model's vectors for a labelled set, so that training scripts
//! (scripts/train_probe.py) use exactly the model and segmentation the tagger does instead of
//! re-implementing them. One JSON line out per segment: the input line's number, whether the
//! segment is a window of the whole text or one of its clauses, and the vector.

use anyhow::{Context, Result};
use attune_pipeline::TextEmbedder;
use attune_tag::Segments;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::Path;

#[derive(Deserialize)]
struct Line {
    text: String,
}

#[derive(Serialize)]
struct Vector<'a> {
    line: usize,
    segment: &'a str,
    vector: &'a [f32],
}

#[derive(Serialize)]
struct SegmentText<'a> {
    line: usize,
    segment: &'a str,
    text: &'a str,
}

/// A clause as a classifier that reads clauses in place reads it: characters `start..end` of
/// window `window` (counted in Unicode scalar values, as Python counts them).
#[derive(Serialize)]
struct InPlaceClause<'a> {
    line: usize,
    segment: &'a str,
    window: usize,
    start: usize,
    end: usize,
    text: &'a str,
}

/// The input's texts, blank lines skipped (numbered as `line` counts them: 1, 2, … over the
/// non-blank lines).
fn texts(path: &Path) -> Result<Vec<String>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    std::io::BufReader::new(file)
        .lines()
        .enumerate()
        .filter(|(_, l)| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
        .map(|(i, l)| -> Result<String> {
            let line: Line = serde_json::from_str(&l?).with_context(|| format!("line {}", i + 1))?;
            Ok(line.text)
        })
        .collect()
}

/// `--segments-only`: each text's windows and clauses, as the tagger cuts them: windows and
/// clauses encoded alone, then each clause a window holds as `in_place` (where a classifier
/// that reads clauses in place finds it).
pub fn segments(path: &Path) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (k, text) in texts(path)?.iter().enumerate() {
        let s = Segments::of(text);
        for (j, t) in s.texts.iter().enumerate() {
            let segment = if j < s.windows { "window" } else { "clause" };
            serde_json::to_writer(&mut out, &SegmentText { line: k + 1, segment, text: t })?;
            out.write_all(b"\n")?;
        }
        let placed = Segments::cut(text, 0, true);
        for c in &placed.in_place {
            let window = &placed.texts[c.window];
            let chars = |bytes: usize| window[..bytes].chars().count();
            let clause = InPlaceClause {
                line: k + 1,
                segment: "in_place",
                window: c.window,
                start: chars(c.range.start),
                end: chars(c.range.end),
                text: &window[c.range.clone()],
            };
            serde_json::to_writer(&mut out, &clause)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(())
}

pub fn run(path: &Path, embedder: &mut dyn TextEmbedder) -> Result<()> {
    let texts = texts(path)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (chunk_start, chunk) in texts.chunks(embedder.max_batch().max(1)).enumerate() {
        let segments: Vec<Segments> = chunk.iter().map(|t| Segments::of(t)).collect();
        let flat: Vec<String> = segments.iter().flat_map(|s| s.texts.iter().cloned()).collect();
        let vectors = embedder.run_batch(&flat)?;
        let mut at = 0;
        for (k, s) in segments.iter().enumerate() {
            for (j, vector) in vectors[at..at + s.texts.len()].iter().enumerate() {
                let segment = if j < s.windows { "window" } else { "clause" };
                let line = chunk_start * embedder.max_batch().max(1) + k + 1;
                serde_json::to_writer(&mut out, &Vector { line, segment, vector })?;
                out.write_all(b"\n")?;
            }
            at += s.texts.len();
        }
    }
    out.flush()?;
    Ok(())
}
