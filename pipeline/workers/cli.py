"""`spanline worker spans|frames`: run one worker process until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging

from pipeline.config import (
    FRAME_WORKER_WEB_PORT,
    RUNS_WORKER_WEB_PORT,
    WORKER_WEB_PORT,
    Settings,
)

log = logging.getLogger(__name__)

_DEFAULT_PORTS = {
    "spans": WORKER_WEB_PORT,
    "frames": FRAME_WORKER_WEB_PORT,
    "runs": RUNS_WORKER_WEB_PORT,
}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("role", choices=sorted(_DEFAULT_PORTS), help="which records to store")
    parser.add_argument(
        "--web-host", default="127.0.0.1",
        help="address of the /metrics, /healthz and /readyz server (default 127.0.0.1)",
    )
    parser.add_argument(
        "--web-port", type=int, default=None,
        help=f"port of that server (default {WORKER_WEB_PORT} for spans, "
        f"{FRAME_WORKER_WEB_PORT} for frames, {RUNS_WORKER_WEB_PORT} for runs)",
    )
    parser.set_defaults(handler=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    import faust

    from pipeline.workers.app import create_app

    settings = Settings.from_env()
    web_port = args.web_port or _DEFAULT_PORTS[args.role]
    app = create_app(args.role, settings, args.web_host, web_port)
    if args.role == "spans":
        from pipeline.workers.spans import attach_span_agent

        attach_span_agent(app, settings)
    elif args.role == "frames":
        from pipeline.workers.frames import attach_frame_agent

        attach_frame_agent(app, settings)
    else:
        from pipeline.runs.worker import attach_runs_agent

        attach_runs_agent(
            app, settings, idle_timeout_s=settings.run_idle_timeout_s,
            retention_s=settings.run_state_retention_s,
        )
    log.info(
        "starting worker role=%s bootstrap=%s web=%s:%d",
        args.role, settings.kafka_bootstrap, args.web_host, web_port,
    )
    worker = faust.Worker(app, loglevel="INFO" if not args.verbose else "DEBUG")
    worker.execute_from_commandline()
    return 0
