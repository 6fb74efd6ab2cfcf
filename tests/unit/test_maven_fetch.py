"""`metering kafka fetch` runs Maven quietly: no output on success (no stray colour codes),
Maven's own errors, cleaned of control codes, when it fails. A stand-in `mvn` on PATH
plays Maven, so these tests need neither Maven nor the network."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from services.infra import kafka_broker

# Writes what Debian's Maven 3.8 writes even with -q -B: a reset code on each stream.
FAKE_MVN = """#!{python}
import sys
from pathlib import Path
Path({record!r}).write_text("\\n".join(sys.argv[1:]))
sys.stdout.write("\\x1b[0m\\x1b[0m")
sys.stderr.write("\\x1b[0m\\x1b[0m")
if {fail!r}:
    sys.stdout.write("[\\x1b[1;31mERROR\\x1b[m] No plugin found for prefix 'dependency'\\n")
    sys.exit(1)
out = next(a for a in sys.argv if a.startswith("-DoutputDirectory=")).split("=", 1)[1]
Path(out, "kafka_2.13-3.9.1.jar").write_text("jar")
"""


def _fake_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: bool) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "mvn-args"
    script = bin_dir / "mvn"
    script.write_text(FAKE_MVN.format(python=sys.executable, record=str(record), fail=fail))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("METERING_CACHE_DIR", str(tmp_path / "cache"))
    return record


def test_the_maven_call_is_quiet_batch_and_colourless() -> None:
    command = kafka_broker.maven_command(Path("/out"))
    assert command[0] == "mvn"
    for flag in ("-q", "-B", "--no-transfer-progress", "-Dstyle.color=never"):
        assert flag in command
    assert command[command.index("-f") + 1] == str(kafka_broker.POM)
    assert "-DoutputDirectory=/out" in command


def test_a_successful_fetch_prints_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    record = _fake_mvn(tmp_path, monkeypatch, fail=False)
    libs = kafka_broker.fetch_jars()
    assert libs == tmp_path / "cache" / "kafka" / kafka_broker.KAFKA_VERSION / "libs"
    assert (libs / "kafka_2.13-3.9.1.jar").exists() and (libs / ".complete").exists()
    assert "-Dstyle.color=never" in record.read_text().splitlines()
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_a_failed_fetch_raises_with_mavens_error_and_no_control_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    _fake_mvn(tmp_path, monkeypatch, fail=True)
    with pytest.raises(RuntimeError) as raised:
        kafka_broker.fetch_jars()
    message = str(raised.value)
    assert "exit code 1" in message
    assert "[ERROR] No plugin found for prefix 'dependency'" in message
    assert "\x1b" not in message
    assert not kafka_broker.libs_dir().exists()  # nothing half-fetched counts as cached
    assert capfd.readouterr() == ("", "")
