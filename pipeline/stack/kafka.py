"""Apache Kafka for the local stack: one KRaft process that is both broker and controller.

The jars come from Maven Central through deploy/local/kafka-pom.xml and are kept in the cache
folder. Storage is formatted once per state folder; the broker listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import logging
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

from pipeline import config
from pipeline.config import Settings
from pipeline.stack.paths import StackPaths, repo_deploy_dir
from pipeline.stack.topics import FRAME_MESSAGE_MAX_BYTES

logger = logging.getLogger(__name__)

# Passed to Maven as -Dkafka.version, which overrides the pom's default, and names the jars folder.
KAFKA_VERSION = "4.3.2"
HEAP = "1g"
NODE_ID = 1


def render_server_properties(log_dir: Path, kafka_port: int, controller_port: int) -> str:
    """Render server.properties of a single-node combined broker and controller on 127.0.0.1."""
    lines = [
        "# Written by spanline stack up; edits are overwritten on the next start.",
        "process.roles=broker,controller",
        f"node.id={NODE_ID}",
        f"controller.quorum.voters={NODE_ID}@127.0.0.1:{controller_port}",
        f"listeners=PLAINTEXT://127.0.0.1:{kafka_port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{kafka_port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        f"log.dirs={log_dir}",
        "num.partitions=1",
        # Topics come only from pipeline.stack.topics, so a typo in a topic name fails loudly.
        "auto.create.topics.enable=false",
        f"message.max.bytes={FRAME_MESSAGE_MAX_BYTES}",
        f"replica.fetch.max.bytes={FRAME_MESSAGE_MAX_BYTES}",
        # One broker: internal topics cannot have more than one replica.
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "",
    ]
    return "\n".join(lines)


def render_log4j2_properties() -> str:
    """Render a Log4j 2 configuration that writes the broker log to standard output."""
    # NOTE: standard output goes to logs/kafka.log, which is never rotated; delete it while stopped.
    return "\n".join(
        [
            "status = warn",
            # Log4j's own shutdown hook would stop logging before the broker logs its shutdown.
            "shutdownHook = disable",
            "appender.console.type = Console",
            "appender.console.name = STDOUT",
            "appender.console.layout.type = PatternLayout",
            "appender.console.layout.pattern = [%d] %p %m (%c)%n",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.stdout.ref = STDOUT",
            # The request and state-change loggers repeat every request at INFO on a busy broker.
            "logger.request.name = kafka.request.logger",
            "logger.request.level = WARN",
            "logger.state.name = state.change.logger",
            "logger.state.level = WARN",
            "",
        ]
    )


def new_cluster_id() -> str:
    """Return a random cluster id in Kafka's format: 16 bytes, URL-safe base64, no padding."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        # Kafka's own generator avoids ids that start with '-', which look like options.
        if not cluster_id.startswith("-"):
            return cluster_id


def jars_dir(settings: Settings) -> Path:
    return settings.cache_dir / "kafka" / KAFKA_VERSION / "libs"


def install(settings: Settings) -> Path:
    """Copy the Kafka jars from Maven Central into the cache unless they are there; return the folder."""
    libs = jars_dir(settings)
    marker = libs.parent / "complete"
    if marker.exists():
        return libs

    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("Maven (mvn) was not found on PATH; install it with apt-get install maven")
    pom = repo_deploy_dir() / "kafka-pom.xml"
    logger.info("downloading Kafka jars version=%s into=%s", KAFKA_VERSION, libs)
    print(f"kafka: downloading Apache Kafka {KAFKA_VERSION} jars from Maven Central into {libs}", flush=True)
    if libs.exists():
        shutil.rmtree(libs)
    build_log = libs.parent / "mvn.log"
    build_log.parent.mkdir(parents=True, exist_ok=True)
    with open(build_log, "wb") as log:
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-Dstyle.color=never",
                f"-Dkafka.version={KAFKA_VERSION}",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={libs}",
                "-DincludeScope=runtime",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    if result.returncode != 0:
        raise RuntimeError(f"kafka: mvn dependency:copy-dependencies failed (exit {result.returncode}); read {build_log}")
    marker.write_text(KAFKA_VERSION + "\n")
    return libs


def java_argv(settings: Settings, paths: StackPaths, main_class: str, *args: str) -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("java was not found on PATH; install it with apt-get install openjdk-17-jre-headless")
    return [
        java,
        f"-Xms{HEAP}",
        f"-Xmx{HEAP}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={paths.kafka_dir / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={paths.logs_dir}",
        "-cp",
        str(jars_dir(settings)) + "/*",
        main_class,
        *args,
    ]


def prepare(settings: Settings, paths: StackPaths) -> None:
    """Write the broker configs and format the storage folder the first time."""
    data_dir = paths.kafka_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    properties = paths.kafka_dir / "server.properties"
    properties.write_text(
        render_server_properties(data_dir, config.KAFKA_PORT, config.KAFKA_CONTROLLER_PORT)
    )
    (paths.kafka_dir / "log4j2.properties").write_text(render_log4j2_properties())

    if (data_dir / "meta.properties").exists():
        return
    cluster_id = new_cluster_id()
    print(f"kafka: formatting storage in {data_dir} (cluster id {cluster_id})", flush=True)
    argv = java_argv(
        settings,
        paths,
        "kafka.tools.StorageTool",
        "format",
        "--cluster-id",
        cluster_id,
        "--config",
        str(properties),
        "--ignore-formatted",
    )
    with open(paths.log_file("kafka-format"), "ab") as log:
        result = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(
            f"kafka: formatting storage in {data_dir} failed (exit {result.returncode}); "
            f"read {paths.log_file('kafka-format')}"
        )


def server_argv(settings: Settings, paths: StackPaths) -> list[str]:
    """Return the argv of the broker process."""
    return java_argv(settings, paths, "kafka.Kafka", str(paths.kafka_dir / "server.properties"))


def check_health(bootstrap: str, timeout_s: float) -> str:
    """Return the broker count from a metadata request to `bootstrap`."""
    from confluent_kafka.admin import AdminClient

    # librdkafka prints every refused connection to stderr, so wait for the port with a plain socket.
    host, _, port = bootstrap.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=2.0):
        pass
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 2000})
    metadata = admin.list_topics(timeout=timeout_s)
    return f"{len(metadata.brokers)} broker(s)"
