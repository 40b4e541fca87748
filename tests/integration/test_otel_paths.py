"""OTLP on the live stack: Kafka topic (both encodings) and OTLP/HTTP, down to priced rows."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from pipeline.otel.samples import otlp_json_export, span_json, to_protobuf
from pipeline.workers.process import WorkerProcess
from tests.conftest import IsolatedPipeline, free_port
from tests.integration.helpers import start_worker, wait_for

pytestmark = pytest.mark.integration


class OtlpProcess(WorkerProcess):
    """`spanline otlp kafka` or `spanline otlp serve` as a child process with its own log."""

    def __init__(self, arguments: list[str], web_port: int, log_path, env) -> None:  # noqa: ANN001
        super().__init__("otlp", web_port, log_path, env)
        self.arguments = arguments

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "pipeline.cli", "otlp", *self.arguments],
                stdout=log_file, stderr=subprocess.STDOUT, env=self._env, start_new_session=True,
            )


@pytest.fixture
def otlp_pipeline(isolated: IsolatedPipeline) -> Iterator[IsolatedPipeline]:
    """Add a test-only OTLP topic and its dead-letter topic to the isolated pipeline."""
    otlp_topic = isolated.settings.spans_topic.replace(".spans", ".otlp")
    topics = [otlp_topic, f"{otlp_topic}.dlq"]
    admin = AdminClient({"bootstrap.servers": isolated.settings.kafka_bootstrap})
    for future in admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1) for name in topics]).values():
        future.result(timeout=30)
    settings = replace(isolated.settings, otlp_topic=otlp_topic)
    env = {**isolated.env, "SPANLINE_OTLP_TOPIC": otlp_topic}
    yield IsolatedPipeline(settings=settings, env=env, state_dir=isolated.state_dir)
    admin.delete_topics(topics, operation_timeout=30)


T_BASE = time.time_ns() - 60_000_000_000


def conversation_export(conversation: str, trace_id: str) -> dict:
    """Two LLM calls (current and legacy GenAI names), a tool call, one bad span."""
    spans = [
        span_json("invoke_agent shopper", trace_id, "a000000000000001", T_BASE, T_BASE + 9_000_000, {
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "shopper",
            "gen_ai.conversation.id": conversation,
        }),
        span_json("chat gpt-4o", trace_id, "a000000000000002", T_BASE + 1_000_000, T_BASE + 2_000_000, {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 100,
        }, parent_span_id="a000000000000001", kind=3),
        span_json("execute_tool search", trace_id, "a000000000000003", T_BASE + 3_000_000, T_BASE + 4_000_000, {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
            "gen_ai.tool.call.arguments": '{"q": "shoes"}',
        }, parent_span_id="a000000000000001"),
        span_json("chat gpt-4o-mini", trace_id, "a000000000000004", T_BASE + 5_000_000, T_BASE + 6_000_000, {
            "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.prompt_tokens": 2000, "gen_ai.usage.completion_tokens": 50,
        }, parent_span_id="a000000000000001", kind=3),
        # Seconds sent where nanoseconds belong: rejected, the rest of the export is stored.
        span_json("chat gpt-4o", trace_id, "a000000000000005", 1_700_000_000, 1_700_000_001, {
            "gen_ai.operation.name": "chat",
        }),
    ]
    return otlp_json_export(spans, resource={"service.name": "shop-service"})


def stored_spans(dsn: str, run_id: str) -> dict[str, tuple]:
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            "SELECT span_id, kind, step, model, input_tokens, output_tokens, cost_usd, pricing_status, "
            "tool_name, tool_args, agent, attributes FROM spans WHERE run_id = %s",
            (run_id,),
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def check_conversation(dsn: str, run_id: str) -> None:
    rows: dict[str, tuple] = {}

    def four_rows() -> bool:
        rows.update(stored_spans(dsn, run_id))
        return len(rows) == 4

    wait_for(four_rows, 60, f"4 OTLP spans of run {run_id} in TimescaleDB")
    kind, step, model, input_tokens, output_tokens, cost, status, *_ , agent, attributes = rows["a000000000000002"]
    assert (kind, step, model, input_tokens, output_tokens) == ("llm", 1, "gpt-4o", 1000, 100)
    assert status == "priced"
    assert cost == pytest.approx(1000 * 2.5e-6 + 100 * 10e-6, rel=1e-6)
    assert agent == "shopper"
    assert attributes["resource.service.name"] == "shop-service"
    legacy = rows["a000000000000004"]
    assert legacy[:5] == ("llm", 3, "gpt-4o-mini", 2000, 50)
    assert legacy[6] == "priced"
    assert legacy[5] == pytest.approx(2000 * 0.15e-6 + 50 * 0.6e-6, rel=1e-6)
    tool = rows["a000000000000003"]
    assert (tool[0], tool[1], tool[7], tool[8]) == ("tool", 2, "search", '{"q": "shoes"}')
    assert rows["a000000000000001"][0] == "agent"


def dead_letters(bootstrap: str, topic: str, expected: int) -> list:
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"test-dlq-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + 30
    while len(messages) < expected and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            messages.append(message)
    consumer.close()
    return messages


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_kafka_topic_to_priced_rows(otlp_pipeline: IsolatedPipeline, encoding: str):
    settings = otlp_pipeline.settings
    span_worker = start_worker(otlp_pipeline, "spans", "spans")
    converter = OtlpProcess(
        ["kafka", "--encoding", encoding, "--web-port", str(port := free_port())], port,
        otlp_pipeline.state_dir / "logs" / "otlp-kafka.log", otlp_pipeline.env,
    )
    try:
        converter.start()
        converter.wait_ready()
        run_id = f"conv-{encoding}-{uuid.uuid4().hex[:8]}"
        document = conversation_export(run_id, uuid.uuid4().hex)
        value = to_protobuf(document) if encoding == "otlp_proto" else json.dumps(document).encode()
        producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
        producer.produce(settings.otlp_topic, value=value)  # the Collector sends no key by default
        producer.produce(settings.otlp_topic, value=b"\x0a\xff garbage")
        assert producer.flush(30) == 0

        check_conversation(settings.database_dsn.reveal(), run_id)
        letters = dead_letters(settings.kafka_bootstrap, f"{settings.otlp_topic}.dlq", 2)
        reasons = sorted(dict(message.headers())["dlq.reason"].decode() for message in letters)
        assert reasons == ["otlp_decode", "timestamp_out_of_range"]
    finally:
        converter.stop()
        span_worker.stop()


def post(url: str, body: bytes, content_type: str, gzip_body: bool = False) -> tuple[int, bytes, dict]:
    headers = {"Content-Type": content_type}
    if gzip_body:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def test_http_receiver_to_priced_rows(otlp_pipeline: IsolatedPipeline):
    settings = otlp_pipeline.settings
    span_worker = start_worker(otlp_pipeline, "spans", "spans")
    port = free_port()
    receiver = OtlpProcess(
        ["serve", "--port", str(port)], port, otlp_pipeline.state_dir / "logs" / "otlp-serve.log", otlp_pipeline.env,
    )
    url = f"http://127.0.0.1:{port}/v1/traces"
    try:
        receiver.start()

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    return True
            except (urllib.error.URLError, ConnectionError):
                return False

        wait_for(healthy, 30, "the OTLP receiver's /healthz")
        proto_run = f"conv-http-proto-{uuid.uuid4().hex[:8]}"
        status, body, _ = post(url, to_protobuf(conversation_export(proto_run, uuid.uuid4().hex)),
                               "application/x-protobuf", gzip_body=True)
        assert status == 200
        response = ExportTraceServiceResponse.FromString(body)
        assert response.partial_success.rejected_spans == 1
        assert "timestamp_out_of_range=1" in response.partial_success.error_message

        json_run = f"conv-http-json-{uuid.uuid4().hex[:8]}"
        status, body, _ = post(url, json.dumps(conversation_export(json_run, uuid.uuid4().hex)).encode(),
                               "application/json")
        assert status == 200
        assert json.loads(body)["partialSuccess"]["rejectedSpans"] == "1"

        status, _, _ = post(url, b"\x0a\xff garbage", "application/x-protobuf")
        assert status == 400
        status, _, _ = post(url, b"{}", "text/plain")
        assert status == 415

        check_conversation(settings.database_dsn.reveal(), proto_run)
        check_conversation(settings.database_dsn.reveal(), json_run)
    finally:
        receiver.stop()
        span_worker.stop()


def test_import_command_reads_otlp_json(otlp_pipeline: IsolatedPipeline, tmp_path):
    settings = otlp_pipeline.settings
    span_worker = start_worker(otlp_pipeline, "spans", "spans")
    try:
        run_id = f"conv-import-{uuid.uuid4().hex[:8]}"
        path = tmp_path / "export.otlp.json"
        path.write_text(json.dumps(conversation_export(run_id, uuid.uuid4().hex)))
        import os

        completed = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "import", "--format", "otlp", str(path)],
            env={**os.environ, **otlp_pipeline.env}, capture_output=True, text=True, timeout=120,
        )
        assert completed.returncode == 0, completed.stderr
        assert "1 runs, 4 spans" in completed.stdout
        check_conversation(settings.database_dsn.reveal(), run_id)
    finally:
        span_worker.stop()
