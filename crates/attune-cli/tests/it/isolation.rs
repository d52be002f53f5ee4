//! Decoders run in worker processes: a decoder that aborts, segfaults, hangs or eats memory fails
//! its own event with the reason, its worker is replaced, and every other event still lands.
//!
//! Real decoders do these things only on inputs nobody can name in advance, so the worker's fault
//! injection (`ATTUNE_WORKER_FAULTS=1`, files starting with `ATTUNE-FAULT:`) stands in for them.

/// The faults are compiled in only with the feature (`just test` passes it): without it this
/// file fails rather than pass without testing anything.
#[cfg(not(feature = "fault-injection"))]
#[test]
fn fault_injection_is_compiled_in() {
    panic!("tests/it/isolation.rs needs `--features attune-cli/fault-injection` (`just test` passes it)");
}

#[cfg(feature = "fault-injection")]
#[test]
fn a_crashing_hanging_or_bloating_decoder_costs_one_event() {
    use crate::common;
    use serde_json::json;
    use std::time::Instant;

    let photo = common::root().join("fixtures/images/coffee.png");
    assert!(photo.exists(), "run `python3 fixtures/make_images.py` first");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&photo, dir.path().join("coffee.png")).unwrap();
    let faults = [
        ("abort", "crashed: the decoder process was killed by SIGABRT"),
        ("segv", "crashed: the decoder process was killed by SIGSEGV"),
        ("hang", "timeout: no result within 10 s"),
        ("oom", "too large: the decoder ran out of its memory limit"),
    ];
    let mut lines = Vec::new();
    let mut good = Vec::new();
    for (i, (fault, _)) in faults.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{fault}.jpg")), format!("ATTUNE-FAULT:{fault}")).unwrap();
        for (id, media) in
            [(format!("fault-{fault}"), format!("{fault}.jpg")), (format!("good-{i}"), "coffee.png".into())]
        {
            if id.starts_with("good") {
                good.push(id.clone());
            }
            lines.push(
                json!({"event_id": id, "user_id": "u1", "country": "US", "product": "glasses",
                "captured_at": "2026-03-01T12:00:00Z", "kind": "image", "media": media})
                .to_string(),
            );
        }
    }
    let manifest = dir.path().join("manifest.jsonl");
    std::fs::write(&manifest, lines.join("\n") + "\n").unwrap();
    let store = dir.path().join("p.sqlite");
    let report_path = dir.path().join("report.json");
    let started = Instant::now();
    let out = common::attune_run(&manifest, &store)
        .args(["--report", report_path.to_str().unwrap()])
        .args(["--decoders", "1", "--decode-timeout", "10", "--decode-memory-mb", "1024"])
        .env("ATTUNE_WORKER_FAULTS", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "some events fail: {}", String::from_utf8_lossy(&out.stderr));
    eprintln!("{} events in {:.1} s", lines.len(), started.elapsed().as_secs_f64());
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let failed = common::failures(&report);
    for (fault, want) in faults {
        let message = failed.get(&format!("fault-{fault}")).unwrap_or_else(|| panic!("{fault} did not fail"));
        eprintln!("{fault}: {message}");
        assert!(message.contains(want), "{fault}: `{message}` does not say `{want}`");
    }
    assert_eq!(failed.len(), faults.len(), "{failed:?}");
    let evidence = common::evidence(&store, &["u1"]);
    for id in &good {
        assert_eq!(evidence.get(id).map(Vec::as_slice), Some(&["377".to_string()][..]), "{id}");
    }
}
