//! What the transcription tests share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `fixtures/<sub>`, which `fixtures/make_audio.py` must have made.
pub fn fixtures(sub: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(sub);
    assert!(p.join("texts.json").exists(), "run `python3 fixtures/make_audio.py` first");
    p
}

/// What each recording of a fixtures folder says (its `texts.json`, by media name, in name order).
pub fn texts<T: serde::de::DeserializeOwned>(dir: &Path) -> BTreeMap<String, T> {
    let path = dir.join("texts.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e} (remake it: `python3 fixtures/make_audio.py`)", path.display()))
}

/// Edit distance between two sequences over the reference's length (word or character error
/// rate, by what the sequences hold).
pub fn error_rate<T: PartialEq>(reference: &[T], hypothesis: &[T]) -> f64 {
    let (r, h) = (reference, hypothesis);
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rc) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hc) in h.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(rc != hc)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}
