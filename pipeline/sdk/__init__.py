"""Tracer SDK for agent runtimes: batches spans per run and sends them and frames to Kafka.

    from pipeline.sdk import Tracer

    tracer = Tracer()
    with tracer.run("shopper") as run:
        with run.step() as step:
            with step.span("llm", "plan the order") as span:
                span.set_model("openai", "gpt-4o")
                span.set_usage(usage)
    tracer.close()
"""

from pipeline.sdk.run import FRAME_KINDS, SPAN_KINDS, SPAN_STATUSES, Run, Span, Step
from pipeline.sdk.tracer import Tracer, TracerStats

__all__ = [
    "FRAME_KINDS",
    "SPAN_KINDS",
    "SPAN_STATUSES",
    "Run",
    "Span",
    "Step",
    "Tracer",
    "TracerStats",
]
