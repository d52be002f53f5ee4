//! The command line around the pipeline: which commands may create a store, and how each
//! command ends (exit codes a scheduler can act on, one-line errors).

use crate::common;
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
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: not one line: {err}");
        assert!(err.contains("does not exist"), "{args:?}: {err}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "{args:?} created {left:?}");
    }
}

fn chat(id: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","user_id":"u1","country":"US","product":"assistant","captured_at":"2026-04-01T10:00:00Z","kind":"text","text":"any tips for a first sailing trip on a small dinghy?"}}"#
    )
}

fn photo(id: &str, media: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","user_id":"u1","country":"US","product":"glasses","captured_at":"2026-04-01T10:00:00Z","kind":"image","media":"{media}"}}"#
    )
}

/// `attune run MANIFEST --store STORE --report REPORT ARGS…`: exit code, stderr, and the report
/// when one was written.
fn run(manifest: &Path, store: &Path, args: &[&str]) -> (Option<i32>, String, Option<serde_json::Value>) {
    let report = store.with_extension("report.json");
    let _ = std::fs::remove_file(&report);
    let out = common::attune_run(manifest, store).arg("--report").arg(&report).args(args).output().unwrap();
    let report = std::fs::read_to_string(&report).ok().map(|r| serde_json::from_str(&r).unwrap());
    (out.status.code(), stderr(&out), report)
}

/// The models installed for the tests, less those whose folder name starts with one of `leave_out`.
fn models_without(dir: &Path, leave_out: &[&str]) -> std::path::PathBuf {
    let installed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.attune/models");
    let models = dir.join("models");
    std::fs::create_dir(&models).unwrap();
    for entry in std::fs::read_dir(&installed).unwrap() {
        let entry = entry.unwrap();
        if !leave_out.iter().any(|l| entry.file_name().to_string_lossy().starts_with(l)) {
            std::os::unix::fs::symlink(entry.path(), models.join(entry.file_name())).unwrap();
        }
    }
    models
}

/// 0 when every event is accounted for without failures, 3 when some failed, 4 when all did
/// (a manifest of broken lines used to end with 0).
#[test]
fn a_finished_run_says_whether_events_failed() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.sqlite");
    let good = dir.path().join("good.jsonl");
    std::fs::write(&good, chat("c1")).unwrap();
    let (code, err, report) = run(&good, &store, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report.unwrap()["processed"], 1);

    let mixed = dir.path().join("mixed.jsonl");
    std::fs::write(&mixed, [chat("c2"), "{not json".into(), chat("c3")].join("\n")).unwrap();
    let (code, err, report) = run(&mixed, &store, &[]);
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(report.unwrap()["failed"].as_array().unwrap().len(), 1);

    let garbage = dir.path().join("garbage.jsonl");
    std::fs::write(&garbage, "{not json\nnull\n\u{1}\u{2}\n[1,2]\n").unwrap();
    let (code, err, report) = run(&garbage, &store, &[]);
    assert_eq!(code, Some(4), "every event failed, yet: {err}");
    let report = report.unwrap();
    assert_eq!(report["events"], 4);
    assert_eq!(report["failed"].as_array().unwrap().len(), 4);
}

/// A run that cannot start ends with 2, in one line, and creates no store.
#[test]
fn a_run_that_cannot_start_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.sqlite");
    let manifest = dir.path().join("m.jsonl");
    std::fs::write(&manifest, chat("c1")).unwrap();
    let cases: [(&Path, &[&str], &str); 3] = [
        (&dir.path().join("no-such-manifest.jsonl"), &[], "cannot read manifest"),
        (&manifest, &["--policy", "/nonexistent/policy.toml"], "policy"),
        (&manifest, &["--threads", "many"], "invalid value"),
    ];
    for (manifest, args, says) in cases {
        let (code, err, report) = run(manifest, &store, args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(report.is_none());
        assert!(!store.exists(), "{args:?} created the store");
    }
    let (code, err, _) = run(&manifest, &store, &["--policy", "/nonexistent/policy.toml"]);
    assert_eq!((code, err.trim_end().lines().count()), (Some(2), 1), "{err}");
}

/// Without the image and speech models, a photo fails and the run says so (3); with
/// `--require-models` it does not start (2) and creates nothing.
#[test]
fn require_models_refuses_to_start_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let models = models_without(dir.path(), &["efficientnet", "whisper"]);
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/images");
    std::fs::copy(photos.join("chelsea.png"), dir.path().join("cat.png")).unwrap();
    let manifest = dir.path().join("m.jsonl");
    std::fs::write(&manifest, [chat("c1"), photo("p1", "cat.png")].join("\n")).unwrap();
    let models_arg = ["--models", models.to_str().unwrap()];

    let store = dir.path().join("lenient.sqlite");
    let (code, err, report) = run(&manifest, &store, &models_arg);
    assert_eq!(code, Some(3), "{err}");
    let report = report.unwrap();
    assert_eq!(report["processed"], 1);
    assert!(report["failed"][0]["message"].as_str().unwrap().contains("image model"), "{report}");
    let (code, err, _) = run(&manifest, &store, &[&models_arg[..], &["--require-models", "text"]].concat());
    assert_eq!(code, Some(3), "{err}");

    for (required, says) in [("image", "image model"), ("speech", "speech model"), ("text,all", "image model")] {
        let store = dir.path().join(format!("strict-{required}.sqlite"));
        let (code, err, report) = run(&manifest, &store, &[&models_arg[..], &["--require-models", required]].concat());
        assert_eq!(code, Some(2), "--require-models {required}: {err}");
        assert!(err.contains(says) && err.contains("required"), "{err}");
        assert_eq!(err.trim_end().lines().filter(|l| l.starts_with("attune:")).count(), 1, "{err}");
        assert!(report.is_none() && !store.exists(), "--require-models {required} left a store or report");
    }
}

/// In a scheduler's log (standard error not a terminal) the run writes progress lines with the
/// manifest's total and an estimate of the time left; `--progress-every 0` after every batch.
#[test]
fn progress_lines_give_a_total_and_the_time_left() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.jsonl");
    let lines: Vec<String> = (0..6).map(|i| chat(&format!("p{i}"))).collect();
    std::fs::write(&manifest, lines.join("\n\n") + "\n").unwrap();
    let (code, stderr, _) =
        run(&manifest, &dir.path().join("s.sqlite"), &["--progress-every", "0", "--batch-size", "2"]);
    assert_eq!(code, Some(0), "{stderr}");
    let progress: Vec<&str> = stderr.lines().filter(|l| l.starts_with("progress: ")).collect();
    assert!(!progress.is_empty(), "{stderr}");
    assert!(progress.iter().all(|l| l.contains(" of 6 events (") && l.contains("left")), "{progress:?}");
    assert!(progress.last().unwrap().starts_with("progress: 6 of 6 events (100%)"), "{progress:?}");
    // The default (30 s) writes the first line only, on a run this short.
    let (_, stderr, _) = run(&manifest, &dir.path().join("t.sqlite"), &[]);
    assert_eq!(stderr.lines().filter(|l| l.starts_with("progress: ")).count(), 1, "{stderr}");
}

/// `export --since T` sends again only the profiles a run changed after T (an incremental
/// feed), `--user U` one user's; together, those of the users that changed.
#[test]
fn incremental_and_per_user_exports() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.sqlite");
    let line = |id: &str, user: &str| chat(id).replace(r#""user_id":"u1""#, &format!(r#""user_id":"{user}""#));
    let first = dir.path().join("first.jsonl");
    std::fs::write(&first, [line("i1", "ana"), line("i2", "ben")].join("\n")).unwrap();
    assert_eq!(run(&first, &store, &[]).0, Some(0));
    std::thread::sleep(std::time::Duration::from_millis(20));
    let between = chrono::Utc::now().to_rfc3339();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = dir.path().join("second.jsonl");
    std::fs::write(&second, [line("i3", "ben"), line("i4", "cy")].join("\n")).unwrap();
    assert_eq!(run(&second, &store, &[]).0, Some(0));
    let users = |args: &[&str]| -> Vec<String> {
        export(&store, args).iter().map(|p| p["user_id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(users(&[]), ["ana", "ben", "cy"]);
    assert_eq!(users(&["--since", &between]), ["ben", "cy"]);
    assert_eq!(users(&["--user", "ana"]), ["ana"]);
    assert_eq!(users(&["--user", "ana", "--user", "cy", "--since", &between]), ["cy"]);
    assert_eq!(users(&["--user", "nobody"]), Vec::<String>::new());
    // The profile of a user who changed is whole, not only the new evidence.
    let ben = &export(&store, &["--since", &between])[0];
    assert_eq!(ben["topics"][0]["evidence"], 2, "{ben}");
}

/// `attune eval ARGS` on a labelled set of `lines` (in `dir`), with no `ATTUNE_CONFIG` from outside.
fn eval_on(dir: &Path, lines: &[&str], args: &[&str]) -> Output {
    let labelled = dir.join("l.jsonl");
    std::fs::write(&labelled, lines.join("\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_attune"))
        .arg("eval")
        .args(args)
        .arg(&labelled)
        .env_remove("ATTUNE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    out
}

/// `attune eval` measures one text model (the first `--text-model`): items in languages it is
/// not calibrated for are skipped by its gate, and it says so and how to measure them.
#[test]
fn eval_says_which_languages_its_model_does_not_cover() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        r#"{"text":"¿Qué raqueta de pádel me compro si juego dos veces por semana?","expect":"ordinary","topics":["669"],"lang":"es"}"#,
        r#"{"text":"any tips for a first sailing trip on a small dinghy?","expect":"ordinary","topics":["660"],"lang":"en"}"#,
    ];
    let out = eval_on(dir.path(), &lines, &["--text-model", "minilm-l6-v2"]);
    let err = stderr(&out);
    assert!(err.contains("1 items are in languages minilm-l6-v2") && err.contains("(es 1)"), "{err}");
    assert!(err.contains("--text-model multilingual-e5-small"), "{err}");
}

/// `attune eval` measures any settings, and says of each whether `attune run` would take it (a
/// run may only tighten its calibration): the same config file is read by both.
#[test]
fn eval_says_whether_a_run_takes_its_settings() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        r#"{"text":"any tips for a first sailing trip on a small dinghy?","expect":"ordinary","topics":["660"],"lang":"en"}"#,
        r#"{"text":"Can you find a church near me with a Sunday mass in Spanish?","expect":"religious_belief","lang":"en"}"#,
    ];
    let eval = |args: &[&str]| String::from_utf8(eval_on(dir.path(), &lines, args).stdout).unwrap();
    let out = eval(&[]);
    assert!(out.contains("settings: the calibration's own"), "{out}");
    assert!(out.contains("sensitive items caught, by detector: "), "{out}");
    assert!(out.contains("ordinary items dropped as religious_belief "), "{out}");
    let config = dir.path().join("attune.toml");
    std::fs::write(&config, "max-topics = 1\n").unwrap();
    let out = eval(&["--config", config.to_str().unwrap()]);
    assert!(out.contains("settings: `attune run` takes --max-topics 1: stricter"), "{out}");
    // Swept past the calibration's bar (0.12): the swept values are the numbers written, so
    // 0.12 itself is the calibration's.
    let out = eval(&["--json", "--sweep", "classifier_threshold=0.1:0.14:0.02"]);
    let runs: Vec<serde_json::Value> =
        serde_json::Deserializer::from_str(&out).into_iter().map(Result::unwrap).collect();
    let takes: Vec<&serde_json::Value> = runs.iter().map(|r| &r["run"]["takes"]).collect();
    assert_eq!(takes, [true, true, false], "{out}");
    let says = runs[2]["run"]["says"].as_str().unwrap();
    assert!(says.contains("refuses --classifier-threshold 0.14"), "{says}");
    let cell = &runs[0]["kept_out_by_category_and_language"]["religious_belief"]["en"];
    assert_eq!(cell[1], 1, "{out}");
}

/// Settings come from flags, ATTUNE_* variables and a `--config` TOML file, in that order.
#[test]
fn settings_from_a_config_file_and_variables_give_way_to_flags() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.jsonl");
    std::fs::write(&manifest, (0..4).map(|i| chat(&format!("c{i}"))).collect::<Vec<_>>().join("\n")).unwrap();
    let config = dir.path().join("attune.toml");
    std::fs::write(&config, "progress-every = 0\nbatch-size = 1\nrequire-models = [\"text\"]\n").unwrap();
    let lines = |out: &Output| stderr(out).lines().filter(|l| l.starts_with("progress: ")).count();
    let attune = |store: &str, args: &[&str], env: &[(&str, &str)]| {
        common::attune_run(&manifest, &dir.path().join(store)).args(args).envs(env.iter().copied()).output().unwrap()
    };
    let config_arg = config.to_str().unwrap();
    // The file: a batch per event, a line after each.
    let out = attune("a.sqlite", &["--config", config_arg], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(lines(&out) >= 4, "{}", stderr(&out));
    // The same file named by ATTUNE_CONFIG; a variable beats the file…
    let out = attune("b.sqlite", &[], &[("ATTUNE_CONFIG", config_arg), ("ATTUNE_PROGRESS_EVERY", "3600")]);
    assert_eq!(lines(&out), 1, "{}", stderr(&out));
    // …and a flag beats both.
    let out = attune("c.sqlite", &["--config", config_arg, "--progress-every", "3600"], &[]);
    assert_eq!(lines(&out), 1, "{}", stderr(&out));
    // A name that is no flag's stops the run before it starts.
    std::fs::write(&config, "batch-sise = 1\n").unwrap();
    let out = attune("d.sqlite", &["--config", config_arg], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown setting `batch-sise`"), "{}", stderr(&out));
    assert!(!dir.path().join("d.sqlite").exists());
}

/// A run takes the tagger's settings only where they keep out at least what its calibration
/// keeps out: a looser bar, as a flag or in a config file, stops it before it starts; stricter
/// ones drop everything the calibrated run drops, and more, and write no more topics an event.
#[test]
fn a_run_may_tighten_its_calibration_and_never_loosen_it() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.jsonl");
    let texts = [
        "any tips for a first sailing trip on a small dinghy?",
        "I need a lightweight tent and sleeping bag for a trip in the mountains.",
        // "symptoms" is a lexicon term with everyday uses: a match waits for the classifier.
        "what symptoms of altitude sickness should I watch for on a hiking trip?",
        "best budget mechanical keyboard for coding, and which switches are quiet?",
    ];
    let lines: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({"event_id": format!("c{i}"), "user_id": format!("u{i}"), "country": "US",
                "product": "assistant", "captured_at": "2026-04-01T10:00:00Z", "kind": "text", "text": t})
            .to_string()
        })
        .collect();
    std::fs::write(&manifest, lines.join("\n")).unwrap();
    let users: Vec<String> = (0..texts.len()).map(|i| format!("u{i}")).collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let reports = std::cell::RefCell::new(std::collections::BTreeMap::new());
    let run_with = |name: &str, args: &[&str]| {
        let store = dir.path().join(name);
        let (code, err, report) = run(&manifest, &store, args);
        reports.borrow_mut().insert(name.to_string(), report);
        (code, err, store)
    };
    // What each run's report says it was given: the bars it ran with, by name.
    let tagger_settings = |name: &str| reports.borrow()[name].as_ref().map(|r| r["tagger_settings"].clone());
    let dropped = |store: &Path| -> std::collections::BTreeSet<String> {
        common::ledger(store).into_iter().filter(|(_, o)| o == "dropped").map(|(e, _)| e).collect()
    };

    let (code, err, base) = run_with("base.sqlite", &[]);
    assert_eq!(code, Some(0), "{err}");
    let base_dropped = dropped(&base);
    assert!(!base_dropped.contains("c0") && !base_dropped.contains("c1"), "{base_dropped:?}");

    // Looser: refused by name, nothing created.
    let (code, err, store) = run_with("looser.sqlite", &["--classifier-threshold", "0.9"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--classifier-threshold 0.9 would keep out less"), "{err}");
    assert!(!store.exists());
    let config = dir.path().join("attune.toml");
    std::fs::write(&config, "topic-threshold = 0.1\n").unwrap();
    let (code, err, store) = run_with("looser-config.sqlite", &["--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--topic-threshold 0.1"), "{err}");
    assert!(!store.exists());

    // Every lexicon match drops unconfirmed: the altitude-sickness question goes too.
    let (code, err, store) = run_with("lexicon.sqlite", &["--lexicon-confirmation", "0"]);
    assert_eq!(code, Some(0), "{err}");
    let lexicon_dropped = dropped(&store);
    assert!(lexicon_dropped.is_superset(&base_dropped) && lexicon_dropped.contains("c2"), "{lexicon_dropped:?}");

    // A classifier bar of 0: every text reaches it.
    let (code, err, store) = run_with("all.sqlite", &["--classifier-threshold", "0"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(dropped(&store).len(), texts.len());

    // One topic at most an event, the same drops.
    let (code, err, store) = run_with("one-topic.sqlite", &["--max-topics", "1"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("tagger bars tightened from the calibration's: max_topics 1"), "{err}");
    assert_eq!(tagger_settings("one-topic.sqlite"), Some(serde_json::json!({"max_topics": "1"})));
    assert_eq!(tagger_settings("base.sqlite"), Some(serde_json::json!({})));
    assert_eq!(tagger_settings("looser.sqlite"), None, "a run refused writes no report");
    assert_eq!(dropped(&store), base_dropped);
    let (base_topics, one_topic) = (common::evidence(&base, &users), common::evidence(&store, &users));
    assert!(one_topic.values().all(|t| t.len() == 1), "{one_topic:?}");
    for (event, topics) in &one_topic {
        assert!(base_topics[event].contains(&topics[0]), "{event}: {topics:?} not among {:?}", base_topics[event]);
    }
}

#[test]
fn help_lists_the_exit_codes() {
    for args in [&["--help"][..], &["run", "--help"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_attune")).args(args).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Exit codes:") && help.contains("could not start"), "{help}");
    }
}

fn export(store: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_attune")).arg("export").arg("--store").arg(store).args(args).output();
    let out = out.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// `--as-of` is a point in time (later evidence is left out); topics that decayed to 0.0000 are
/// not exported, in either format; `--min-score` and `--top-k` trim the rest.
#[test]
fn export_as_of_min_score_and_top_k() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.jsonl");
    let line = |id: &str, at: &str, text: &str| {
        serde_json::json!({"event_id": id, "user_id": "u1", "country": "US", "product": "assistant",
            "captured_at": at, "kind": "text", "text": text})
        .to_string()
    };
    std::fs::write(
        &manifest,
        [
            line("april", "2026-04-01T10:00:00Z", "any tips for a first sailing trip on a small dinghy?"),
            line("june", "2026-06-01T10:00:00Z", "which tent and sleeping bag should I take camping in Yosemite?"),
            line("june2", "2026-06-02T10:00:00Z", "what is a good beginner recipe for sourdough bread at home?"),
        ]
        .join("\n"),
    )
    .unwrap();
    let store = dir.path().join("s.sqlite");
    let (code, err, report) = run(&manifest, &store, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report.unwrap()["processed"], 3);
    let topics = |p: &serde_json::Value| p["topics"].as_array().unwrap().clone();

    let june = export(&store, &["--as-of", "2026-06-10T00:00:00Z"]);
    assert_eq!(june.len(), 1);
    let all_topics = topics(&june[0]);
    assert!(all_topics.len() >= 2, "{}", june[0]);

    // As of May, June's chats were not known yet.
    let may = export(&store, &["--as-of", "2026-05-01T00:00:00Z"]);
    assert_eq!(may.len(), 1);
    assert_eq!(may[0]["updated_at"], "2026-04-01T10:00:00Z");
    for t in topics(&may[0]) {
        assert_eq!(t["evidence"], 1, "{t}");
        assert_eq!(t["last_seen"], "2026-04-01T10:00:00Z", "{t}");
    }
    assert!(topics(&may[0]).len() < all_topics.len());
    assert!(export(&store, &["--as-of", "2026-03-01T00:00:00Z"]).is_empty(), "nothing was known in March");

    // Ten years on, every topic has decayed to 0.0000: nothing is exported, not even as OpenRTB.
    let decade = ["--as-of", "2036-06-01T00:00:00Z"];
    assert!(export(&store, &decade).is_empty());
    assert!(export(&store, &[&decade[..], &["--format", "openrtb"]].concat()).is_empty());
    let zeros = export(&store, &[&decade[..], &["--min-score", "0"]].concat());
    assert!(topics(&zeros[0]).iter().all(|t| t["score"] == 0.0));

    let top = export(&store, &["--as-of", "2026-06-10T00:00:00Z", "--top-k", "1"]);
    assert_eq!(topics(&top[0]), all_topics[..1]);
    let weakest = all_topics.last().unwrap()["score"].as_f64().unwrap();
    let strongest = all_topics[0]["score"].as_f64().unwrap();
    assert!(weakest < strongest, "{all_topics:?}");
    let above = export(&store, &["--as-of", "2026-06-10T00:00:00Z", "--min-score", &(weakest + 0.0001).to_string()]);
    assert!(topics(&above[0]).iter().all(|t| t["score"].as_f64().unwrap() > weakest));
    let rtb = export(&store, &["--as-of", "2026-06-10T00:00:00Z", "--format", "openrtb", "--top-k", "1"]);
    assert_eq!(rtb[0]["user"]["data"][0]["segment"].as_array().unwrap().len(), 1);

    // OpenRTB `user.id`: a keyed hash by default, never the internal id; the provider named by
    // the caller.
    let when = ["--as-of", "2026-06-10T00:00:00Z", "--format", "openrtb"];
    let hashed = export(&store, &when)[0]["user"].clone();
    let id = hashed["id"].as_str().unwrap();
    assert!(id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{hashed}");
    assert_eq!(hashed["data"][0]["name"], "attune");
    let keyed = |key: &str| export(&store, &[&when[..], &["--user-id-key", key]].concat())[0]["user"]["id"].clone();
    let (k1, k2) = ("00112233445566778899aabbccddeeff", "ffeeddccbbaa99887766554433221100");
    assert_eq!(keyed(k1), keyed(k1), "the same key hashes a user alike");
    assert_ne!(keyed(k1), keyed(k2));
    assert_ne!(keyed(k1), hashed["id"]);
    let args = [&when[..], &["--openrtb-user-id", "internal", "--openrtb-provider", "example.com"]].concat();
    let internal = export(&store, &args)[0]["user"].clone();
    assert_eq!(internal["id"], "u1");
    assert_eq!(internal["data"][0]["name"], "example.com");
    let none = export(&store, &[&when[..], &["--openrtb-user-id", "none"]].concat())[0]["user"].clone();
    assert!(none.get("id").is_none(), "{none}");

    // `explain --json`: each topic exported, with the events behind it, as one JSON object.
    let out = Command::new(env!("CARGO_BIN_EXE_attune"))
        .args(["explain", "u1", "--json", "--as-of", "2026-06-10T00:00:00Z", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let explained: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(explained["user_id"], "u1");
    let explained_topics = explained["topics"].as_array().unwrap();
    assert_eq!(explained_topics.len(), all_topics.len());
    for (t, exported) in explained_topics.iter().zip(&all_topics) {
        assert_eq!(t["id"], exported["id"]);
        assert!(!t["events"].as_array().unwrap().is_empty(), "{t}");
    }

    for bad in
        [&["--min-score", "1.5"][..], &["--top-k", "0"], &["--user-id-key", "not-hex"], &["--user-id-key", "abcd"]]
    {
        let out =
            Command::new(env!("CARGO_BIN_EXE_attune")).arg("export").arg("--store").arg(&store).args(bad).output();
        assert_eq!(out.unwrap().status.code(), Some(2), "{bad:?}");
    }
}

/// A report path that cannot be written is found before the run (exit 2, nothing created), not
/// after all its work.
#[test]
fn an_unwritable_report_path_stops_the_run_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.jsonl");
    std::fs::write(&manifest, chat("c1")).unwrap();
    let store = dir.path().join("s.sqlite");
    let folder = dir.path().join("a-folder");
    std::fs::create_dir(&folder).unwrap();
    for report in [dir.path().join("no/such/folder/report.json"), folder] {
        let out = common::attune_run(&manifest, &store).arg("--report").arg(&report).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("cannot be written"), "{err}");
        assert!(!store.exists(), "the run started anyway");
    }
    let (code, err, written) = run(&manifest, &store, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(written.is_some());
}

/// Logs: `RUST_LOG` is honoured (`ATTUNE_LOG` first), JSON lines with `ATTUNE_LOG_FORMAT=json`,
/// and no colour codes when stderr is not a terminal.
#[test]
fn logs_follow_rust_log_and_can_be_json() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.jsonl");
    std::fs::write(&manifest, chat("c1")).unwrap();
    let run = |envs: &[(&str, &str)], store: &str| {
        let mut cmd = common::attune_run(&manifest, &dir.path().join(store));
        cmd.env_remove("ATTUNE_LOG");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stderr(&out)
    };
    let quiet = run(&[], "a.sqlite");
    assert!(!quiet.contains(" INFO "), "{quiet}");
    let info = run(&[("RUST_LOG", "info")], "b.sqlite");
    assert!(info.contains("INFO"), "{info}");
    assert!(!info.contains('\u{1b}'), "colour codes on a pipe: {info}");
    let json = run(&[("RUST_LOG", "info"), ("ATTUNE_LOG_FORMAT", "json")], "c.sqlite");
    let lines: Vec<serde_json::Value> = json.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(lines.iter().any(|l| l["level"] == "INFO"), "{json}");
}

/// Models are chosen by the names `attune models` lists; a model named for a task it does not
/// do (a text encoder as the image model, an image classifier as the text model, a speech model
/// reading pictures) stops the run before anything is read or stored (exit 2), saying what it is.
#[test]
fn models_are_listed_and_a_model_of_another_task_does_not_start_a_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_attune")).arg("models").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listed = String::from_utf8(out.stdout).unwrap();
    for (name, task) in [
        ("minilm-l6-v2", "text-embedding"),
        ("multilingual-e5-small", "text-embedding"),
        ("efficientnet-lite0", "image-classification"),
        ("whisper-base", "speech-to-text"),
        ("whisper-tiny-en", "speech-to-text"),
        ("ppocr-v4", "text-in-pictures"),
    ] {
        assert!(listed.lines().any(|l| l.starts_with(name) && l.contains(task)), "{name}:\n{listed}");
    }

    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.jsonl");
    std::fs::write(&manifest, chat("c1")).unwrap();
    for (flag, model, says) in [
        ("--image-model", "minilm-l6-v2", "is a model for text-embedding, not for image-classification"),
        ("--text-model", "efficientnet-lite0", "is a model for image-classification, not for text-embedding"),
        ("--text-in-pictures-model", "whisper-base", "is a model for speech-to-text, not for text-in-pictures"),
        ("--speech-model", "ppocr-v4", "is a model for text-in-pictures, not for speech-to-text"),
    ] {
        let store = dir.path().join(format!("{}.sqlite", &flag[2..]));
        let (code, err, report) = run(&manifest, &store, &[flag, model]);
        assert_eq!(code, Some(2), "{flag} {model}: {err}");
        assert!(err.contains(says), "{flag} {model}: {err}");
        assert!(report.is_none() && !store.exists(), "{flag} {model}: the run started");
    }
    // A name that is not installed at all: the first text model is required, so no start either,
    // and the message lists what is.
    let store = dir.path().join("absent.sqlite");
    let (code, err, _) = run(&manifest, &store, &["--text-model", "no-such-model"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("installed text-embedding models: minilm-l6-v2, multilingual-e5-small"), "{err}");
}

/// Speech sessions are made when the first recording needs one, but the speech model's
/// installation is checked when the run starts: a manifest that disagrees with the crate's audio
/// front end stops the run (exit 2) before a store exists, instead of failing every recording.
#[test]
fn a_broken_speech_installation_stops_the_run_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let models = models_without(dir.path(), &["whisper-base"]);
    let installed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.attune/models/whisper-base");
    let broken = models.join("whisper-base");
    std::fs::create_dir(&broken).unwrap();
    for entry in std::fs::read_dir(&installed).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "model.toml" {
            std::os::unix::fs::symlink(entry.path(), broken.join(entry.file_name())).unwrap();
        }
    }
    let toml = std::fs::read_to_string(installed.join("model.toml")).unwrap();
    assert!(toml.contains("\nn_mels = 80\n"), "the installed manifest changed shape");
    std::fs::write(broken.join("model.toml"), toml.replace("\nn_mels = 80\n", "\nn_mels = 128\n")).unwrap();

    let manifest = dir.path().join("m.jsonl");
    std::fs::write(&manifest, chat("c1")).unwrap();
    let store = dir.path().join("p.sqlite");
    let (code, err, report) = run(&manifest, &store, &["--models", models.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("n_mels = 128"), "{err}");
    assert!(report.is_none() && !store.exists(), "the run started: {err}");
}

/// The same check holds for what the environment asks of the model: an int8 encoder or decoder
/// that the named model does not have stops the run before it starts, rather than running
/// float32 unsaid; so does a precision that is not one.
#[test]
fn an_int8_graph_asked_of_a_speech_model_without_one_stops_the_run_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.jsonl");
    std::fs::write(&manifest, chat("c1")).unwrap();
    let store = dir.path().join("p.sqlite");
    for (variable, value, message) in [
        ("ATTUNE_WHISPER_ENCODER", "int8", "whisper-tiny-en has none (no encoder_int8)"),
        ("ATTUNE_WHISPER_DECODER", "int8", "whisper-tiny-en has none (no decoder_int8)"),
        ("ATTUNE_WHISPER_DECODER", "int4", "ATTUNE_WHISPER_DECODER=int4: expected float32 or int8"),
    ] {
        let out = common::attune_run(&manifest, &store)
            .args(["--speech-model", "whisper-tiny-en"])
            .env(variable, value)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{variable}={value}: {err}");
        assert!(err.contains(message), "{variable}={value}: {err}");
        assert!(!store.exists(), "the run started: {err}");
    }
}
