"""`metering up` in the foreground: ready on /readyz, clean stop on SIGTERM, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from services.infra.cores import available_cores
from services.infra.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _command(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_metering_up_becomes_ready_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "METERING_HTTP_PORT": str(port),
        "METERING_AGGREGATOR_PORT": str(free_port()),
        "METERING_RATER_PORT": str(free_port()),
        "METERING_API_KEY": "up-test-key",
        "METERING_DATA_DIR": str(tmp_path / "data"),
        "METERING_CONSUMER_GROUP_PREFIX": f"up{port}",
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # it must start its own broker
    env.pop("CLICKHOUSE_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "services.cli", "up"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        ready = False
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    ready = True
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert ready, "metering up never became ready"
        descendants = _children(process.pid)
        assert len(descendants) == 4  # broker JVM + ingest + aggregator + rater
        # The ingest service is a group of METERING_INGEST_PROCESSES' default, the CPUs.
        (ingest,) = (pid for pid in descendants if _command(pid).endswith(b"services.cli\0ingest\0"))
        workers = {pid for pid in _children(ingest) if b"spawn_main" in _command(pid)}
        assert len(workers) == (available_cores() if available_cores() > 1 else 0)
        descendants |= workers
        response = httpx.post(f"http://127.0.0.1:{port}/measurements", json={}, timeout=5)
        assert response.status_code == 401
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0
        for pid in descendants:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if process.poll() is None:
            process.kill()
