//! End to end with the real model on `fixtures/sample/manifest.jsonl` (made by
//! `fixtures/make_sample.py`): topics found, sensitive and excluded items absent, idempotent
//! reruns, halves in either order, forget.

use crate::common::{self, root};
use attune_profile::{ProfileStore, SqliteStore};
use attune_taxonomy::Taxonomy;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const AS_OF: &str = "2026-12-01T00:00:00Z";

/// `attune ARGS…` from the repository root; its exit code, stdout and stderr.
fn attune_status(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_attune")).args(args).current_dir(root()).output().unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn attune(args: &[&str]) -> (String, String) {
    let (code, stdout, stderr) = attune_status(args);
    assert_eq!(code, Some(0), "attune {args:?} failed:\n{stderr}");
    (stdout, stderr)
}

/// A run of the sample manifest: its malformed lines fail, so it ends with exit code 3 (some
/// events failed); a manifest without failures ends with 0.
fn run(manifest: &Path, store: &Path, report: &Path) -> Value {
    let policy = root().join("fixtures/sample/policy.toml");
    let (code, _, stderr) = attune_status(&[
        "run",
        manifest.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    let expected = if report["failed"].as_array().unwrap().is_empty() { 0 } else { 3 };
    assert_eq!(code, Some(expected), "attune run {}:\n{stderr}", manifest.display());
    report
}

fn export(store: &Path, format: &str) -> String {
    attune(&["export", "--store", store.to_str().unwrap(), "--format", format, "--as-of", AS_OF]).0
}

/// A Parquet export read back with the Arrow reader, each row as the JSON profile it stands for.
fn parquet_profiles(path: &Path) -> Vec<Value> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
    use arrow_array::Array;
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    let time = |a: &dyn Array, i: usize| -> Value {
        let ms = a.as_primitive::<TimestampMillisecondType>().value(i);
        let t = chrono::DateTime::from_timestamp_millis(ms).unwrap();
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into()
    };
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let col = |name: &str| batch.column_by_name(name).unwrap().clone();
        let text = |name: &str, i: usize| -> Value { col(name).as_string::<i32>().value(i).into() };
        for i in 0..batch.num_rows() {
            let topics = col("topics").as_list::<i32>().value(i);
            let topics = topics.as_struct();
            let field = |name: &str| topics.column_by_name(name).unwrap().clone();
            let topics: Vec<Value> = (0..topics.len())
                .map(|t| {
                    let products = field("products").as_list::<i32>().value(t);
                    let products: Vec<Value> = products.as_string::<i32>().iter().map(|p| p.unwrap().into()).collect();
                    serde_json::json!({
                        "id": field("id").as_string::<i32>().value(t),
                        "name": field("name").as_string::<i32>().value(t),
                        "score": field("score").as_primitive::<Float64Type>().value(t),
                        "evidence": field("evidence").as_primitive::<Int64Type>().value(t),
                        "first_seen": time(&field("first_seen"), t),
                        "last_seen": time(&field("last_seen"), t),
                        "products": products,
                    })
                })
                .collect();
            rows.push(serde_json::json!({
                "schema": text("schema", i),
                "user_id": text("user_id", i),
                "updated_at": time(&col("updated_at"), i),
                "scored_at": time(&col("scored_at"), i),
                "half_life_days": col("half_life_days").as_primitive::<Float64Type>().value(i),
                "taxonomy": text("taxonomy", i),
                "model_set": text("model_set", i),
                "topics": topics,
            }));
        }
    }
    rows
}

struct Line {
    event_id: Option<String>,
    user_id: Option<String>,
    outcome: Option<String>,
    topics: Vec<u32>,
}

fn sample() -> (PathBuf, Vec<String>, Vec<Line>) {
    let path = root().join("fixtures/sample/manifest.jsonl");
    let raw: Vec<String> = std::fs::read_to_string(&path).unwrap().lines().map(String::from).collect();
    let lines = raw
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or(Value::Null);
            let expect = v.get("expect");
            Line {
                event_id: v.get("event_id").and_then(Value::as_str).map(String::from),
                user_id: v.get("user_id").and_then(Value::as_str).map(String::from),
                outcome: expect.and_then(|e| e["outcome"].as_str()).map(String::from),
                topics: expect
                    .and_then(|e| e.get("topics"))
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|t| t.as_str()?.parse().ok()).collect())
                    .unwrap_or_default(),
            }
        })
        .collect();
    (path, raw, lines)
}

/// `schemas/attune.profile.v1.json` as a validator (draft 2020-12, formats checked).
fn profile_validator() -> jsonschema::Validator {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("schemas/attune.profile.v1.json")).unwrap()).unwrap();
    assert_eq!(schema["$id"], "attune.profile.v1");
    jsonschema::draft202012::options().should_validate_formats(true).build(&schema).unwrap()
}

/// Every line of a profile export is valid against the schema.
fn assert_valid_export(validator: &jsonschema::Validator, export: &str) {
    for line in export.lines() {
        let profile: Value = serde_json::from_str(line).unwrap();
        let errors: Vec<String> =
            validator.iter_errors(&profile).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "export breaks the schema: {errors:?}\n{line}");
    }
}

fn count(lines: &[Line], outcome: &str) -> u64 {
    lines.iter().filter(|l| l.outcome.as_deref() == Some(outcome)).count() as u64
}

fn related(a: u32, b: u32) -> bool {
    let t = Taxonomy::get();
    let parent = |x: u32| t.node(x).and_then(|n| n.parent);
    a == b || parent(a) == Some(b) || parent(b) == Some(a)
}

#[test]
fn sample_manifest_end_to_end() {
    let (manifest, raw, lines) = sample();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("profiles.sqlite");
    let report = run(&manifest, &store, &dir.path().join("report.json"));

    // Every line accounted for, each in its expected bucket.
    assert_eq!(report["events"], raw.len() as u64);
    let skipped = &report["skipped"];
    for reason in ["jurisdiction", "effective_date", "opt_out", "duplicate"] {
        assert_eq!(skipped[reason], count(&lines, reason), "{reason}");
    }
    let malformed = lines.iter().filter(|l| l.outcome.is_none()).count();
    assert_eq!(report["failed"].as_array().unwrap().len(), malformed);
    // Kept out of profiles: dropped as sensitive, or skipped by the language gate (a short line
    // it cannot identify with confidence). Every sensitive chat is among them (the store check
    // below shows none reached a profile); the rest are ordinary chats lost.
    let expected_sensitive = count(&lines, "sensitive");
    let unsupported = skipped["unsupported_language"].as_u64().unwrap();
    let kept_out = skipped["sensitive"].as_u64().unwrap() + unsupported;
    assert!(kept_out >= expected_sensitive);
    let ordinary = count(&lines, "processed");
    let ordinary_lost = kept_out - expected_sensitive;
    // The gate skips short English lines lingua cannot place with confidence ("books like Project
    // Hail Mary?": 1 of the sample's 162 since the word frequencies confirm the rest, 7 before):
    // at most 5 %, on top of at most 3 % dropped as sensitive.
    assert!(unsupported * 100 <= ordinary * 5, "{unsupported} of {ordinary} chats skipped by the language gate");
    assert!(ordinary_lost * 100 <= ordinary * 8, "{ordinary_lost} of {ordinary} ordinary items dropped or skipped");
    assert_eq!(report["processed"].as_u64().unwrap(), ordinary - ordinary_lost);

    // What the store holds: evidence only from processed events, never a sensitive topic.
    let db = SqliteStore::open(&store).unwrap();
    let exported = export(&store, "profile");
    assert_valid_export(&profile_validator(), &exported);
    let profiles: Vec<Value> = exported.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!profiles.is_empty());
    let mut topics_of_event: HashMap<String, Vec<u32>> = HashMap::new();
    for p in &profiles {
        assert_eq!(p["schema"], "attune.profile.v1");
        for t in p["topics"].as_array().unwrap() {
            let id: u32 = t["id"].as_str().unwrap().parse().unwrap();
            assert!(Taxonomy::get().node(id).unwrap().sensitive.is_none(), "sensitive topic {id} exported");
        }
        for topic in db.explain(p["user_id"].as_str().unwrap()).unwrap() {
            for e in topic.events {
                topics_of_event.entry(e.event_id).or_default().push(topic.topic_id.parse().unwrap());
            }
        }
    }
    // The first line with an id is the event; a later one with the same id is its duplicate.
    let mut by_id: HashMap<&str, &Line> = HashMap::new();
    for l in &lines {
        if let Some(id) = l.event_id.as_deref() {
            by_id.entry(id).or_insert(l);
        }
    }
    for event_id in topics_of_event.keys() {
        let line = by_id[event_id.as_str()];
        assert_eq!(line.outcome.as_deref(), Some("processed"), "{event_id} has evidence");
    }
    // Topic hit rate on the ordinary conversations: at least one expected topic (or its parent
    // or child) among those found. Measured 0.81 on this set; bound below it.
    let with_topics: Vec<&Line> =
        lines.iter().filter(|l| l.outcome.as_deref() == Some("processed") && !l.topics.is_empty()).collect();
    let hits = with_topics
        .iter()
        .filter(|l| {
            topics_of_event
                .get(l.event_id.as_deref().unwrap())
                .is_some_and(|got| got.iter().any(|g| l.topics.iter().any(|e| related(*g, *e))))
        })
        .count();
    let hit_rate = hits as f64 / with_topics.len() as f64;
    assert!(hit_rate >= 0.7, "topic hit rate {hit_rate:.3}");

    // OpenRTB export: same users, segtax 4, ids as strings.
    let rtb: Vec<Value> = export(&store, "openrtb").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rtb.len(), profiles.len());
    let data = &rtb[0]["user"]["data"][0];
    assert_eq!(data["ext"]["segtax"], 4);
    assert!(data["segment"][0]["id"].is_string());

    // Parquet: the same profiles, field by field; `--output` writes what stdout would.
    let parquet = dir.path().join("profiles.parquet");
    let store_arg = store.to_str().unwrap();
    let out_arg = |path: &Path| path.to_str().unwrap().to_string();
    attune(&["export", "--store", store_arg, "--format", "parquet", "--as-of", AS_OF, "-o", &out_arg(&parquet)]);
    assert_eq!(parquet_profiles(&parquet), profiles);
    let lines = dir.path().join("profiles.jsonl");
    attune(&["export", "--store", store_arg, "--as-of", AS_OF, "--output", &out_arg(&lines)]);
    assert_eq!(std::fs::read_to_string(&lines).unwrap(), exported);
    // An output that cannot be written is found before anything is exported (exit 2).
    let nowhere = dir.path().join("no-such-dir/profiles.parquet");
    let (code, _, err) =
        attune_status(&["export", "--store", store_arg, "--format", "parquet", "-o", &out_arg(&nowhere)]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--output"), "{err}");

    // Idempotent: the same manifest again changes nothing.
    let before = export(&store, "profile");
    let again = run(&manifest, &store, &dir.path().join("again.json"));
    assert_eq!(again["processed"], 0);
    assert!(export(&store, "profile") == before, "a rerun changed the profiles");
    let first_run_seen =
        report["processed"].as_u64().unwrap() + kept_out + report["skipped"]["duplicate"].as_u64().unwrap();
    assert_eq!(again["skipped"]["duplicate"].as_u64().unwrap(), first_run_seen);

    // Halves in either order give the same profiles as the whole.
    let (a, b) = raw.split_at(raw.len() / 2);
    let half_a = dir.path().join("a.jsonl");
    let half_b = dir.path().join("b.jsonl");
    std::fs::write(&half_a, a.join("\n")).unwrap();
    std::fs::write(&half_b, b.join("\n")).unwrap();
    let ab = dir.path().join("ab.sqlite");
    let ba = dir.path().join("ba.sqlite");
    run(&half_a, &ab, &dir.path().join("r1.json"));
    run(&half_b, &ab, &dir.path().join("r2.json"));
    run(&half_b, &ba, &dir.path().join("r3.json"));
    run(&half_a, &ba, &dir.path().join("r4.json"));
    assert!(export(&ab, "profile") == before, "first half then second differs from the whole");
    assert!(export(&ba, "profile") == before, "second half then first differs from the whole");

    // Forget: the user disappears from exports and explanations.
    let user = profiles[0]["user_id"].as_str().unwrap().to_string();
    let (_, msg) = attune(&["forget", &user, "--store", store.to_str().unwrap()]);
    assert!(msg.contains("forgot"));
    let after: HashSet<String> = export(&store, "profile")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["user_id"].as_str().unwrap().to_string())
        .collect();
    assert!(!after.contains(&user));
    assert_eq!(after.len(), profiles.len() - 1);
    assert!(SqliteStore::open(&store).unwrap().explain(&user).unwrap().is_empty());
}

/// 80 chats on one topic: the export is still valid against the schema (the score was `1.0`,
/// which `exclusiveMaximum: 1` forbids), in both formats.
#[test]
fn eighty_chats_on_one_topic_export_within_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("camping.jsonl");
    let places = ["Yosemite", "the Lake District", "Big Sur", "the Rockies", "Patagonia", "Banff", "Zion", "the Alps"];
    let asks = [
        "what gear do i need for a first tent camping trip in",
        "which sleeping bag and tent should I pack for camping in",
        "tips for a family campsite weekend with a campfire in",
        "how do I pick a campsite for a camping trip with an RV in",
        "checklist of camping gear for three nights under canvas in",
        "is glamping or tent camping better for a first trip to",
        "how cold does it get at night when camping in a tent in",
        "what food to cook on a camp stove for a camping week in",
        "best lightweight tent for backcountry camping in",
        "can you plan a camping trip with campfires and hikes in",
    ];
    let lines: Vec<String> = (0..80)
        .map(|i| {
            serde_json::json!({
                "event_id": format!("camp-{i:02}"), "user_id": "camper", "country": "US", "product": "assistant",
                "captured_at": format!("2026-11-{:02}T10:{:02}:00Z", 20 + i % 10, i % 60), "kind": "text",
                "text": format!("{} {}?", asks[i % asks.len()], places[i / asks.len()]),
            })
            .to_string()
        })
        .collect();
    std::fs::write(&manifest, lines.join("\n")).unwrap();
    let store = dir.path().join("camping.sqlite");
    let report = run(&manifest, &store, &dir.path().join("report.json"));
    // A few may be dropped as sensitive (the detectors are cautious); the rest are Camping.
    assert!(report["processed"].as_u64().unwrap() >= 70, "{report}");
    let exported = export(&store, "profile");
    assert_valid_export(&profile_validator(), &exported);
    let profile: Value = serde_json::from_str(exported.lines().next().unwrap()).unwrap();
    let camping = profile["topics"].as_array().unwrap().iter().find(|t| t["id"] == "725").expect("Camping");
    assert!(camping["evidence"].as_u64().unwrap() >= 60, "{camping}");
    let score = camping["score"].as_f64().unwrap();
    assert!(score > 0.99 && score < 1.0, "{score}");
    let rtb: Value = serde_json::from_str(export(&store, "openrtb").lines().next().unwrap()).unwrap();
    for segment in rtb["user"]["data"][0]["segment"].as_array().unwrap() {
        let value: f64 = segment["value"].as_str().unwrap().parse().unwrap();
        assert!((0.0..1.0).contains(&value), "{segment}");
    }
}

/// Each exported profile line by user id.
fn profiles_by_user(store: &Path) -> HashMap<String, String> {
    export(store, "profile")
        .lines()
        .map(|l| (serde_json::from_str::<Value>(l).unwrap()["user_id"].as_str().unwrap().to_string(), l.to_string()))
        .collect()
}

fn accounted_for(report: &Value) {
    let skipped: u64 = report["skipped"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    let failed = report["failed"].as_array().unwrap().len() as u64;
    assert_eq!(report["events"].as_u64().unwrap(), report["processed"].as_u64().unwrap() + skipped + failed);
}

/// `forget` lasts: a rerun of the same manifest turns the user's events away at the gate
/// (`skipped.forgotten`) and gives them no profile, until `unforget`; then they are back.
#[test]
fn forget_lasts_until_unforget() {
    let (manifest, _, lines) = sample();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("profiles.sqlite");
    run(&manifest, &store, &dir.path().join("first.json"));
    let before = profiles_by_user(&store);
    // The user with a profile and the most lines in the manifest.
    let lines_of =
        |user: &str| lines.iter().filter(|l| l.user_id.as_deref() == Some(user) && l.outcome.is_some()).count() as u64;
    let user = before.keys().max_by_key(|u| (lines_of(u), std::cmp::Reverse(u.to_string()))).unwrap().clone();
    assert!(lines_of(&user) >= 2, "{user}");
    let s = store.to_str().unwrap();

    let (_, msg) = attune(&["forget", &user, "--store", s]);
    assert!(msg.contains("forgot"), "{msg}");
    let again = run(&manifest, &store, &dir.path().join("again.json"));
    accounted_for(&again);
    // Every well-formed line of theirs is turned away first, whatever else would skip it.
    assert_eq!(again["skipped"]["forgotten"], lines_of(&user), "{again}");
    let after = profiles_by_user(&store);
    assert!(!after.contains_key(&user), "{user} is back after a rerun");
    assert_eq!(after.len(), before.len() - 1);
    assert!(SqliteStore::open(&store).unwrap().explain(&user).unwrap().is_empty());

    let (_, msg) = attune(&["unforget", &user, "--store", s]);
    assert!(msg.contains("unforgot"), "{msg}");
    let third = run(&manifest, &store, &dir.path().join("third.json"));
    accounted_for(&third);
    assert_eq!(third["skipped"]["forgotten"], 0);
    assert_eq!(profiles_by_user(&store), before, "after unforget and a rerun the profiles are as they were");
}

/// The tagger's reference embeddings are kept in `$ATTUNE_CACHE/tagger/` and read back by the
/// next run, which then gives the same profiles as the run that wrote them (from the shipped
/// references); and the shipped references are what the default text model computes. Computing
/// all of e5's (~18,000 texts; what a run with `ATTUNE_CACHE=` does) took this test ~7 minutes of
/// CI's 2 cores; one text in 16, compared vector by vector, checks the same thing in seconds.
#[test]
fn a_run_from_the_reference_cache_gives_the_same_profiles() {
    let (manifest, _, _) = sample();
    let dir = tempfile::tempdir().unwrap();
    let policy = root().join("fixtures/sample/policy.toml");
    let run_with_cache = |cache: &Path, name: &str| {
        let store = dir.path().join(format!("{name}.sqlite"));
        let out = common::attune_run(&manifest, &store)
            .args(["--policy", policy.to_str().unwrap()])
            .env("ATTUNE_CACHE", cache)
            .current_dir(root())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
        export(&store, "profile")
    };
    let cache = dir.path().join("cache");
    let writing = run_with_cache(&cache, "writing");
    let files: Vec<_> = std::fs::read_dir(cache.join("tagger")).unwrap().map(|e| e.unwrap().file_name()).collect();
    // The default text model (e5) has two reference sets: the descriptions (nodes, categories)
    // and the example chats that move each node; one file each.
    assert_eq!(files.len(), 2, "one file per reference set of the one text model: {files:?}");
    let reading = run_with_cache(&cache, "reading");
    assert_eq!(reading, writing);

    let runtime = attune_infer::Runtime::new(2, attune_infer::Device::Cpu).unwrap();
    let mut embedder =
        attune_pipeline::load_text_model(attune_pipeline::DEFAULT_TEXT_MODELS[0], &runtime, None, 32).unwrap();
    let calibration = attune_tag::Calibration::for_model(embedder.id(), embedder.dimensions()).unwrap();
    let drift = attune_tag::TextTagger::reference_drift(embedder.as_mut(), &calibration, 16).unwrap();
    println!(
        "shipped reference embeddings: {} compared, computed now at most {:.2e} away",
        drift.compared, drift.largest
    );
    assert!(drift.compared > 1_000, "{drift:?}");
    // A cosine similarity moves by at most this much for it: a twentieth of the margin the
    // tests' decisions must clear (`margins::SCORE_MARGIN`). Measured here: ~1e-5 on the CPU
    // that made the files, and the example chats are kept in 16 bits (~1e-4).
    assert!(drift.largest < 2.5e-4, "the shipped references are not what the model computes: {drift:?}");
}

/// The sample through `--store postgresql://…` (a throwaway cluster on loopback, `just
/// setup-postgres`): the same exports, byte for byte, as through SQLite; a rerun changes
/// nothing; `forget` lasts; `--retry-failed` reads the failures PostgreSQL kept.
#[test]
fn the_sample_into_postgres_exports_what_sqlite_does() {
    let cluster = attune_profile::throwaway::ThrowawayCluster::start().expect("PostgreSQL (just setup-postgres)");
    let url = cluster.create_database("sample").unwrap();
    let (manifest, _, _) = sample();
    let dir = tempfile::tempdir().unwrap();
    let lite = dir.path().join("profiles.sqlite");
    let first = run(&manifest, &lite, &dir.path().join("lite.json"));
    let pg = run(&manifest, Path::new(&url), &dir.path().join("pg.json"));
    for key in ["events", "processed", "skipped", "failed"] {
        assert_eq!(first[key], pg[key], "{key}");
    }
    let export_from = |store: &str, format: &str| {
        attune(&["export", "--store", store, "--format", format, "--as-of", AS_OF, "--openrtb-user-id", "internal"]).0
    };
    let lite = lite.to_str().unwrap();
    let profiles = export_from(&url, "profile");
    assert!(profiles.lines().count() > 10, "{profiles}");
    assert!(profiles == export_from(lite, "profile"), "PostgreSQL and SQLite exports differ");
    assert!(export_from(&url, "openrtb") == export_from(lite, "openrtb"));
    let again = run(&manifest, Path::new(&url), &dir.path().join("again.json"));
    assert_eq!(again["processed"], 0);
    assert!(export_from(&url, "profile") == profiles, "a rerun changed the profiles");

    // The same failures kept (those with an event id), retried from either store.
    let retry = |store: &str| {
        let (code, _, stderr) = attune_status(&["run", manifest.to_str().unwrap(), "--store", store, "--retry-failed"]);
        assert_eq!(code, Some(3), "{stderr}");
        stderr.lines().find(|l| l.starts_with("retrying")).unwrap().to_string()
    };
    let retried = retry(&url);
    assert_eq!(retried, retry(lite));
    assert!(!retried.starts_with("retrying 0 "), "{retried}");

    let user: String =
        serde_json::from_str::<Value>(profiles.lines().next().unwrap()).unwrap()["user_id"].as_str().unwrap().into();
    let (_, msg) = attune(&["forget", &user, "--store", &url]);
    assert!(msg.contains("forgot"), "{msg}");
    let rerun = run(&manifest, Path::new(&url), &dir.path().join("rerun.json"));
    assert!(rerun["skipped"]["forgotten"].as_u64().unwrap() > 0, "{rerun}");
    assert!(!export_from(&url, "profile").contains(&format!("\"user_id\":\"{user}\"")));
    let (code, _, stderr) = attune_status(&["explain", &user, "--store", &url]);
    assert_ne!(code, Some(0), "{stderr}");
}
