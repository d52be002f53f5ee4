//! Compiles in what `data/` holds per model, so adding a file is all it takes:
//! - every file of `data/references/` (the shipped models' reference embeddings, made by
//!   `just references`) as `(file name, bytes)`;
//! - every text model's calibration, `data/<model>/calibration.toml` with its `probe.tsv` and,
//!   where it has one, its `topic-head.tsv`, as `(model name, calibration, probe, topic head)`.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let data = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("data");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).to_path_buf();

    let dir = data.join("references");
    println!("cargo:rerun-if-changed={}", dir.display());
    let names = sorted_names(&dir, |n, _| n.starts_with("reference-") && n.ends_with(".bin"));
    let mut table = String::from("&[\n");
    for name in &names {
        println!("cargo:rerun-if-changed={}", dir.join(name).display());
        writeln!(table, "    ({name:?}, include_bytes!({:?})),", dir.join(name).display().to_string()).unwrap();
    }
    table.push(']');
    std::fs::write(out.join("shipped_references.rs"), table).unwrap();

    // A folder is a model's calibration when it has calibration.toml; its probe.tsv must be
    // beside it (a missing one fails the build here, not a run later).
    println!("cargo:rerun-if-changed={}", data.display());
    let models = sorted_names(&data, |_, path| path.join("calibration.toml").is_file());
    let mut table = String::from("&[\n");
    for model in &models {
        let (calibration, probe) = (data.join(model).join("calibration.toml"), data.join(model).join("probe.tsv"));
        let topic_head = data.join(model).join("topic-head.tsv");
        println!("cargo:rerun-if-changed={}", calibration.display());
        println!("cargo:rerun-if-changed={}", probe.display());
        println!("cargo:rerun-if-changed={}", topic_head.display());
        assert!(probe.is_file(), "{} has no probe.tsv beside its calibration.toml", data.join(model).display());
        let topic_head = if topic_head.is_file() {
            format!("Some(include_str!({:?}))", topic_head.display().to_string())
        } else {
            "None".to_string()
        };
        writeln!(
            table,
            "    ({model:?}, include_str!({:?}), include_str!({:?}), {topic_head}),",
            calibration.display().to_string(),
            probe.display().to_string()
        )
        .unwrap();
    }
    table.push(']');
    std::fs::write(out.join("shipped_calibrations.rs"), table).unwrap();
}

/// The names in `dir` that `keep` accepts, sorted.
fn sorted_names(dir: &Path, keep: impl Fn(&str, &Path) -> bool) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| {
                    let e = e.ok()?;
                    let name = e.file_name().into_string().ok()?;
                    keep(&name, &e.path()).then_some(name)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
