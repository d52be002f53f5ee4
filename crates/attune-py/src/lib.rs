//! `attune._native`: the Rust pipeline as a Python class. `Worker(flags)` loads the models and
//! opens the store as `attune run FLAGS…` would; `Worker.process(records, media_root)` runs one
//! batch of JSON Lines records through the whole pipeline (gate, decode in worker processes,
//! models, tagging, one store transaction per pipeline batch) and returns the batch's report as
//! JSON: counts, failure reasons and ids, never content. The Python package (`python/attune`)
//! wraps it; its Ray Data driver runs one `Worker` per actor.

use attune_cli::EmbeddedRun;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::Mutex;

/// One pipeline with its models, decoder processes and store connection.
#[pyclass(module = "attune._native")]
struct Worker {
    run: Mutex<EmbeddedRun>,
}

fn error(e: anyhow::Error) -> PyErr {
    PyRuntimeError::new_err(format!("{e:#}"))
}

#[pymethods]
impl Worker {
    /// `flags`: `attune run`'s flags (`--store postgresql://…`, `--models DIR`, `--threads 1` …).
    #[new]
    fn new(py: Python<'_>, flags: Vec<String>) -> PyResult<Worker> {
        let run = py.detach(|| EmbeddedRun::new(&flags)).map_err(error)?;
        Ok(Worker { run: Mutex::new(run) })
    }

    /// Run one batch (JSON Lines bytes); media paths resolve, confined, under `media_root`.
    /// Returns the batch's report as a JSON string. The GIL is released meanwhile.
    fn process(&self, py: Python<'_>, records: Vec<u8>, media_root: PathBuf) -> PyResult<String> {
        py.detach(|| {
            let mut run = self.run.lock().map_err(|_| anyhow::anyhow!("an earlier batch panicked"))?;
            let report = run.process(records, &media_root)?;
            Ok(serde_json::to_string(&report)?)
        })
        .map_err(error)
    }

    /// The model set the profiles record (`taxonomy`, `model_set`).
    fn provenance(&self) -> PyResult<(String, String)> {
        let run = self.run.lock().map_err(|_| PyRuntimeError::new_err("an earlier batch panicked"))?;
        let p = run.provenance();
        Ok((p.taxonomy.clone(), p.model_set.clone()))
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Worker>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
