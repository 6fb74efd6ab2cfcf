"""The embedded engine returns freed memory at once unless the operator says otherwise
(services/infra/clickhouse_store.EMBEDDED_MALLOC_CONF)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services.infra.clickhouse_store import EMBEDDED_MALLOC_CONF

ROOT = Path(__file__).resolve().parents[2]
# chdb reads JE_MALLOC_CONF when it is loaded: only a fresh process shows what connect() set.
PROGRAM = """
import os, sys
from pathlib import Path
from services.infra.clickhouse_store import connect
from services.settings import Settings
client = connect(Settings(data_dir=Path(sys.argv[1])))
assert client.query("SELECT 1").result_rows == [(1,)]
print(os.environ.get("JE_MALLOC_CONF", ""))
"""


def _allocator_options(tmp_path: Path, environment: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "JE_MALLOC_CONF"} | environment
    done = subprocess.run([sys.executable, "-c", PROGRAM, str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_the_embedded_engine_gets_the_prompt_release_options(tmp_path: Path) -> None:
    assert _allocator_options(tmp_path, {}) == EMBEDDED_MALLOC_CONF


def test_an_operators_allocator_options_win(tmp_path: Path) -> None:
    assert _allocator_options(tmp_path, {"JE_MALLOC_CONF": "dirty_decay_ms:5000"}) == "dirty_decay_ms:5000"
