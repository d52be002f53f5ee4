#!/usr/bin/env python3
"""The virtual environment of the Python baseline and of the corpus generator.

  setup_venv.py            create it if needed (pinned, from PyPI) and print its python's path

It holds exactly benches/baseline/requirements.txt, lives in $ATTUNE_HOME/venvs/ (default
.attune/venvs/) under a name keyed by the requirements' hash, as scripts/setup.py names its export
environment, and is marked complete only once pip succeeded, so an interrupted install is redone.
Other scripts call `reexec_in_venv()` first thing, so they can be started with any python3.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"


def requirements() -> list[str]:
    return [l.split("#")[0].strip() for l in REQUIREMENTS.read_text().splitlines() if l.split("#")[0].strip()]


def venv_dir() -> Path:
    home = Path(os.environ.get("ATTUNE_HOME", ROOT / ".attune"))
    key = hashlib.sha256("\n".join(sorted(requirements())).encode()).hexdigest()[:12]
    return home / "venvs" / f"baseline-{key}"


def ensure() -> Path:
    """The venv's python, creating the venv first when it is missing or incomplete."""
    venv = venv_dir()
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return python
    if venv.exists():
        shutil.rmtree(venv)
    reqs = requirements()
    print(f"setup_venv: creating {venv} ({', '.join(reqs)})", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--only-binary=:all:", *reqs], check=True)
    (venv / ".complete").touch()
    return python


def reexec_in_venv() -> None:
    """Run the calling script again under the venv's python, unless it already is."""
    venv = venv_dir()
    if Path(sys.prefix).resolve() == venv.resolve():
        return
    python = ensure()
    os.execv(str(python), [str(python), *sys.argv])


if __name__ == "__main__":
    print(ensure())
