"""Record a message an agent reads or sends as an `inbox` span with two frames.

The frames are the raw message (`message/rfc822`, byte for byte) and a rendered view
(`text/html`: headers and the plain-text body, escaped, no scripts or remote content), both
linked to the span so a replay shows what the agent saw.
"""

from __future__ import annotations

import email
import email.policy
import html
import json
import logging
from email.message import EmailMessage, Message
from html.parser import HTMLParser
from typing import Any

from pipeline.sdk.browser import RedactionRules
from pipeline.sdk.run import Run, Step

logger = logging.getLogger(__name__)

DIRECTIONS = ("read", "sent")
_SHOWN_HEADERS = ("From", "To", "Cc", "Date", "Subject")


def record_message(
    run: Run,
    message: bytes | Message,
    *,
    direction: str = "read",
    step: Step | None = None,
    redaction: RedactionRules | None = None,
    capture_raw: bool = True,
) -> str:
    """Record one message as an inbox span with its raw and rendered frames; return the span id.

    Redaction masks the span's attributes and the rendered view. The raw frame keeps the exact
    bytes, so pass capture_raw=False when the message itself must not leave the process.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} is not one of {DIRECTIONS}")
    raw = message if isinstance(message, bytes) else message.as_bytes(policy=email.policy.SMTP)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    rules = redaction or RedactionRules()
    subject = str(parsed.get("Subject", ""))
    headers = {name.lower(): rules.redact(str(parsed.get(name))) for name in _SHOWN_HEADERS if parsed.get(name) is not None}
    step = step or run.step()
    with step.span(
        "inbox",
        rules.redact(f"{direction} message: {subject}" if subject else f"{direction} message"),
        tool_name=f"inbox.{direction}",
        tool_args=json.dumps({"direction": direction, **headers}, ensure_ascii=False),
        attributes={
            "inbox.direction": direction,
            "inbox.size_bytes": len(raw),
            "inbox.message_id": rules.redact(str(parsed.get("Message-ID", ""))),
            **{f"inbox.{name}": value for name, value in headers.items()},
        },
    ) as span:
        if capture_raw:
            step.frame(raw, content_type="message/rfc822", kind="inbox")
        step.frame(render_message_html(parsed, rules).encode("utf-8"), content_type="text/html", kind="inbox")
    return span.span_id


def render_message_html(message: EmailMessage | Message, redaction: RedactionRules | None = None) -> str:
    """Return a self-contained HTML view of a message: escaped headers and its text body."""
    rules = redaction or RedactionRules()
    rows = "".join(
        f"<tr><th>{name}</th><td>{html.escape(rules.redact(str(message.get(name))))}</td></tr>"
        for name in _SHOWN_HEADERS
        if message.get(name) is not None
    )
    body = rules.redact(_body_text(message))
    return (
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>message</title>"
        "<style>body{font:14px sans-serif;margin:16px}th{text-align:left;padding-right:12px;color:#555}"
        "pre{white-space:pre-wrap;border-top:1px solid #ccc;padding-top:12px}</style></head><body>"
        f"<table>{rows}</table><pre>{html.escape(body)}</pre></body></html>"
    )


def _body_text(message: Message) -> str:
    if isinstance(message, EmailMessage):
        part = message.get_body(preferencelist=("plain", "html"))
        if part is None:
            return ""
        content = part.get_content()
        return _html_to_text(content) if part.get_content_subtype() == "html" else str(content)
    payload = message.get_payload(decode=True)
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        if tag in ("p", "br", "div", "tr", "li"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _html_to_text(markup: str) -> str:
    extractor = _TextExtractor()
    extractor.feed(markup)
    return "".join(extractor.parts).strip()
