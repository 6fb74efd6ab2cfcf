"""A local, single-node Apache Kafka broker (KRaft) run from Maven Central jars.

The jars are fetched once by Maven into an ignored cache folder; the broker is a
plain `java -cp 'libs/*' kafka.Kafka server.properties`, exactly what Kafka's own
bin/ scripts run. The broker runs in its own process group so that stopping it
never leaves an orphan JVM behind, even if the Python parent dies first.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from services.infra.ports import free_port, wait_for_port
from services.infra.processes import spawn, terminate

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"
LOG4J = REPO_ROOT / "deploy" / "kafka" / "log4j.properties"
KAFKA_VERSION = "3.9.1"


def cache_dir() -> Path:
    return Path(os.environ.get("METERING_CACHE_DIR", REPO_ROOT / ".cache"))


def libs_dir() -> Path:
    return cache_dir() / "kafka" / KAFKA_VERSION / "libs"


def fetch_jars() -> Path:
    """Download the broker's jars with Maven unless they are already cached."""
    libs = libs_dir()
    marker = libs / ".complete"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is required to fetch the Kafka broker jars")
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log.info("fetching Apache Kafka %s jars from Maven Central into %s", KAFKA_VERSION, libs)
    run_quietly(maven_command(tmp))
    (tmp / ".complete").touch()
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    return libs


# Quiet, non-interactive, no download progress, no colour. Even so, Debian's Maven 3.8
# (jansi) writes a stray reset code (ESC[0m) to both streams, hence run_quietly.
MAVEN_QUIET = ("-q", "-B", "--no-transfer-progress", "-Dstyle.color=never")
_CONTROL_SEQUENCE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def maven_command(output_dir: Path) -> list[str]:
    """The Maven call that copies the broker's runtime jars into `output_dir`."""
    return [
        "mvn", *MAVEN_QUIET, "-f", str(POM), "dependency:copy-dependencies",
        f"-DoutputDirectory={output_dir}", "-DincludeScope=runtime",
    ]


def run_quietly(command: list[str]) -> None:
    """Run a build tool with its output captured: nothing shows when it succeeds; when it
    fails, its output (terminal control codes removed) is the error's message."""
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    if done.returncode != 0:
        output = _CONTROL_SEQUENCE.sub("", done.stdout + done.stderr).strip()
        raise RuntimeError(f"{command[0]} failed with exit code {done.returncode}:\n{output}")


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise RuntimeError("Java 17+ is required to run the local Kafka broker")
    return found


@dataclass
class LocalKafkaBroker:
    data_dir: Path
    port: int = 0
    heap: str = "512m"
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0, fresh: bool = True) -> LocalKafkaBroker:
        """Start the broker; `fresh=False` restarts it on its existing data and ports."""
        libs = fetch_jars()
        config = self.data_dir / "server.properties"
        classpath = f"{libs}/*"
        java = _java()
        base = [java, f"-Dlog4j.configuration=file:{LOG4J}", "-cp", classpath]
        if fresh or not config.exists():
            if self.port == 0:
                self.port = free_port()
            controller_port = free_port()
            shutil.rmtree(self.data_dir, ignore_errors=True)
            log_dir = self.data_dir / "kraft"
            log_dir.mkdir(parents=True)
            config.write_text(_server_properties(self.port, controller_port, log_dir))
            subprocess.run(
                [*base, "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(config)],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
        # Own process group (stop() signals the whole group, and the terminal's
        # Ctrl-C does not reach the JVM before we decide to stop it), and it dies
        # with its parent, so no orphan JVM survives a killed supervisor.
        # The JVM keeps its own copy of the log's descriptor; ours closes at once.
        with (self.data_dir / "broker.log").open("wb") as log_file:
            self.process = spawn(
                [java, f"-Xmx{self.heap}", "-Xms128m", "-XX:+UseSerialGC",
                 "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
                 *base[1:], "kafka.Kafka", str(config)],
                stdout=log_file.fileno(), stderr=subprocess.STDOUT,
            )
        if not wait_for_port("127.0.0.1", self.port, timeout) or self.process.poll() is not None:
            tail = (self.data_dir / "broker.log").read_text(errors="replace")[-3000:]
            self.stop()
            raise RuntimeError(f"Kafka broker did not start on port {self.port}:\n{tail}")
        log.info("Kafka broker ready at %s (pid %s)", self.bootstrap_servers, self.process.pid)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        process, self.process = self.process, None
        if process is not None:
            terminate(process, timeout)

    def __enter__(self) -> LocalKafkaBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cluster_id() -> str:
    # A KRaft cluster id is 16 random bytes in URL-safe base64 without padding; one
    # that starts with '-' would be read as an option by the storage tool.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _server_properties(port: int, controller_port: int, log_dir: Path) -> str:
    return f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={log_dir}
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=-1
log.cleaner.enable=true
"""

