//! Compiles in every file of `data/references/` (the shipped models' reference embeddings, made
//! by `just references`) as `(file name, bytes)`: replacing the folder's files is all it takes.

use std::fmt::Write;

fn main() {
    let dir = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("data/references");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("reference-") && n.ends_with(".bin"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut table = String::from("&[\n");
    for name in &names {
        println!("cargo:rerun-if-changed={}", dir.join(name).display());
        writeln!(table, "    ({name:?}, include_bytes!({:?})),", dir.join(name).display().to_string()).unwrap();
    }
    table.push(']');
    let out = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("shipped_references.rs");
    std::fs::write(out, table).unwrap();
}
