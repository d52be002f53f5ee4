"""Fixtures of the Python package's tests: the attune binary, a throwaway PostgreSQL cluster on
loopback, and a 2-node Ray cluster on this machine. `just test-dist` builds what they need."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def assert_no_event_text(reports: object, manifest_lines: list) -> None:
    """No chat text of the manifest's first 50 lines appears in `reports` (ids, counts and reasons
    only); at least 20 texts are checked, so the check cannot pass by finding none."""
    text = json.dumps(reports)
    checked = 0
    for line in manifest_lines[:50]:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and isinstance(event.get("text"), str) and len(event["text"]) > 20:
            checked += 1
            assert event["text"] not in text
    assert checked > 20


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def attune_binary() -> str:
    binary = Path(os.environ.get("ATTUNE_BIN") or ROOT / "target/debug/attune")
    assert binary.is_file(), f"{binary}: build it first (just test-dist does)"
    return str(binary)


def _server_binaries() -> Path:
    if os.environ.get("ATTUNE_PG_BIN"):
        return Path(os.environ["ATTUNE_PG_BIN"])
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    assert found, "no PostgreSQL server binaries: run `just setup-postgres`"
    return Path(found).parent


class ThrowawayPostgres:
    """initdb into a temporary folder, a server on a free loopback port, stopped at the end (as
    attune_profile::throwaway::ThrowawayCluster does for the Rust tests)."""

    def __init__(self) -> None:
        self.bin = _server_binaries()
        self.dir = Path(tempfile.mkdtemp(prefix="attune-pg-"))
        self.as_postgres = os.geteuid() == 0  # the server refuses to run as root
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self._run("initdb", "--auth=trust", "--no-sync", "--username=postgres", "--encoding=UTF8", "-D", str(self.data))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "server.log"), "-w", "start")

    def _run(self, program: str, *args: str) -> None:
        cmd = [str(self.bin / program), *args]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        subprocess.run([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                        "-d", "postgres", "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    cluster = ThrowawayPostgres()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def ray_cluster():
    """Two Ray nodes on this machine (a head and a worker), each with 2 logical CPUs, on loopback;
    yields the address drivers connect to."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # As docs/distributed.md asks of a real cluster: token authentication on (the drivers the
    # tests start inherit the token), objects spilled to a private folder.
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    spill = tempfile.mkdtemp(prefix="attune-ray-spill-")  # mode 0700
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False,
                      head_node_args={"num_cpus": 2, "node_ip_address": "127.0.0.1", "include_dashboard": False,
                                      "_system_config": {"object_spilling_config": json.dumps(
                                          {"type": "filesystem", "params": {"directory_path": spill}})}})
    cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    try:
        yield cluster.address
    finally:
        cluster.shutdown()
        shutil.rmtree(spill, ignore_errors=True)
