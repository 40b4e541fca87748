"""`spanline otlp kafka|serve`: the OTLP converter worker and the OTLP/HTTP receiver."""

from __future__ import annotations

import argparse
import logging
import os

from pipeline.config import OTLP_CONVERTER_WEB_PORT, OTLP_HTTP_PORT, Settings

log = logging.getLogger(__name__)

# The converter's /metrics, /healthz and /readyz port, after the span, frame and runs workers'
# 16066 to 16068, so all of them run on one machine.
CONVERTER_WEB_PORT = OTLP_CONVERTER_WEB_PORT
ENCODING_ENV = "SPANLINE_OTLP_ENCODING"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the `kafka` and `serve` subcommands to `parser`."""
    subparsers = parser.add_subparsers(dest="otlp_command", metavar="SUBCOMMAND", required=True)

    kafka = subparsers.add_parser(
        "kafka", help="convert OTLP exports from the Collector's Kafka topic into span batches",
        description="Consume the OTLP topic (settings.otlp_topic) and publish span batches to the spans topic.",
    )
    kafka.add_argument(
        "--encoding", choices=("otlp_proto", "otlp_json"), default=os.environ.get(ENCODING_ENV, "otlp_proto"),
        help=f"encoding the Collector's Kafka exporter writes (default otlp_proto, or ${ENCODING_ENV})",
    )
    kafka.add_argument("--web-host", default="127.0.0.1", help="address of /metrics, /healthz, /readyz (default 127.0.0.1)")
    kafka.add_argument("--web-port", type=int, default=CONVERTER_WEB_PORT, help=f"port of that server (default {CONVERTER_WEB_PORT})")
    kafka.set_defaults(handler=run_kafka_converter)

    serve = subparsers.add_parser(
        "serve", help="receive OTLP/HTTP traces on POST /v1/traces",
        description="Serve OTLP/HTTP (protobuf and JSON, optionally gzip) and publish span batches to Kafka.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=OTLP_HTTP_PORT, help=f"listen port (default {OTLP_HTTP_PORT})")
    serve.set_defaults(handler=run_receiver)


def run_kafka_converter(args: argparse.Namespace) -> int:
    """Run the converter worker until SIGTERM or SIGINT."""
    import faust

    from pipeline.otel.kafka_agent import attach_otlp_agent, consumer_group, create_otlp_app

    settings = Settings.from_env()
    app = create_otlp_app(settings, args.web_host, args.web_port)
    attach_otlp_agent(app, settings, args.encoding)
    log.info(
        "starting OTLP converter group=%s topic=%s encoding=%s bootstrap=%s web=%s:%d",
        consumer_group(settings), settings.otlp_topic, args.encoding, settings.kafka_bootstrap,
        args.web_host, args.web_port,
    )
    worker = faust.Worker(app, loglevel="DEBUG" if getattr(args, "verbose", False) else "INFO")
    worker.execute_from_commandline()
    return 0


def run_receiver(args: argparse.Namespace) -> int:
    """Serve OTLP/HTTP until interrupted."""
    from pipeline.otel.receiver import serve

    serve(Settings.from_env(), args.host, args.port)
    return 0
