//! The command line around the pipeline: which commands may create a store, and how each
//! command ends (exit codes a scheduler can act on, one-line errors).

use std::path::Path;
use std::process::{Command, Output};

fn attune(args: &[&str], store: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_attune")).args(args).arg("--store").arg(store).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `export`, `explain`, `forget` and `unforget` on a mistyped store path fail in one line and
/// create nothing: only `run` makes a store.
#[test]
fn only_run_creates_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sqlite");
    for args in [&["export"][..], &["explain", "u1"], &["forget", "u1"], &["unforget", "u1"]] {
        let out = attune(args, &missing);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: not one line: {err}");
        assert!(err.contains("does not exist"), "{args:?}: {err}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "{args:?} created {left:?}");
    }
}
