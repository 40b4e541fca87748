"""Redaction rules and the inbox rendering, without a browser or Kafka."""

from __future__ import annotations

import json
import re
from email.message import EmailMessage
from typing import Any

from pipeline.sdk.browser import BrowserRecorder, RedactionRules
from pipeline.sdk.inbox import record_message, render_message_html
from pipeline.sdk.tracer import Tracer


class RecordingProducer:
    """Collects produced messages in memory; the tracer's transport only, not Kafka itself."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None, **kwargs: Any) -> None:
        self.messages.append((topic, value or b""))
        callback = kwargs.get("on_delivery")
        if callback:
            callback(None, None)

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0


def test_email_masked_by_default() -> None:
    rules = RedactionRules()
    assert rules.redact("write to ada@example.org now") == "write to [redacted] now"


def test_custom_pattern_masks_nested_values() -> None:
    rules = RedactionRules.from_patterns([r"\b\d{4}-\d{4}-\d{4}-\d{4}\b"], mask="***")
    value = {"card": "4111-1111-1111-1111", "items": ["ada@example.org", 3]}
    assert rules.redact(value) == {"card": "***", "items": ["***", 3]}


def test_email_rule_can_be_turned_off() -> None:
    rules = RedactionRules.from_patterns([r"secret"], include_email=False)
    assert rules.redact("ada@example.org secret") == "ada@example.org [redacted]"


class FakePage:
    """A page stand-in with the calls BrowserRecorder makes; no screenshots."""

    url = "http://127.0.0.1/form?contact=ada@example.org"
    viewport_size = {"width": 10, "height": 10}

    def __init__(self) -> None:
        self.filled: list[tuple[str, str]] = []

    def fill(self, selector: str, value: str) -> None:
        self.filled.append((selector, value))


def _decoded_spans(producer: RecordingProducer, tracer: Tracer) -> dict[str, list[Any]]:
    from pipeline.wire.spans import decode_span_batch

    batches = [value for topic, value in producer.messages if topic == tracer.settings.spans_topic]
    assert batches, "no span batch was produced"
    return decode_span_batch(batches[0]).columns


def test_fill_value_redacted_before_send() -> None:
    producer = RecordingProducer()
    tracer = Tracer(producer=producer)
    page = FakePage()
    with tracer.run("unit-agent", root_span=False) as run:
        recorder = BrowserRecorder(page, run, capture_frames=False)
        recorder.fill("#email", "ada@example.org")
    tracer.close()

    assert page.filled == [("#email", "ada@example.org")]
    columns = _decoded_spans(producer, tracer)
    assert columns["tool_name"] == ["fill"]
    assert json.loads(columns["tool_args"][0]) == {"selector": "#email", "value": "[redacted]"}
    attributes = json.loads(columns["attributes"][0])
    assert attributes["browser.value"] == "[redacted]"
    assert "ada@example.org" not in attributes["browser.page_url"]
    assert all(b"ada@example.org" not in value for _, value in producer.messages)


def test_inbox_message_records_two_linked_frames() -> None:
    from pipeline.wire.frames import decode_frame

    message = EmailMessage()
    message["From"] = "Ada <ada@example.org>"
    message["To"] = "desk@example.net"
    message["Subject"] = "Booking <b>confirmed</b>"
    message.set_content("Table for 2 at 19:30.\n<script>alert(1)</script>")

    producer = RecordingProducer()
    tracer = Tracer(producer=producer)
    with tracer.run("unit-agent", root_span=False) as run:
        span_id = record_message(run, message, direction="read")
    tracer.close()

    frames = [decode_frame(value) for topic, value in producer.messages if topic == tracer.settings.frames_topic]
    assert [frame.content_type for frame in frames] == ["message/rfc822", "text/html"]
    assert all(frame.span_id == span_id for frame in frames)
    assert all(frame.kind == "inbox" for frame in frames)
    rendered = frames[1].data.decode()
    assert "<script>" not in rendered
    assert "ada@example.org" not in rendered
    assert "Table for 2 at 19:30." in rendered
    columns = _decoded_spans(producer, tracer)
    assert columns["kind"] == ["inbox"]
    assert "ada@example.org" not in columns["attributes"][0]


def test_render_escapes_html_body() -> None:
    message = EmailMessage()
    message["Subject"] = "hi"
    message.add_alternative("<p>Hello <b>there</b></p><script>x()</script>", subtype="html")
    rendered = render_message_html(message)
    assert re.search(r"<pre>Hello there\s*</pre>", rendered)
