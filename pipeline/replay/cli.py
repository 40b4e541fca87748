"""`spanline replay serve | verify RUN_ID | token RUN_ID`."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from pipeline.config import REPLAY_PORT, Settings

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    subparsers = parser.add_subparsers(dest="replay_command", metavar="SUBCOMMAND", required=True)

    serve = subparsers.add_parser("serve", help="serve the run viewer, its API and the replay WebSocket")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=REPLAY_PORT, help=f"TCP port (default {REPLAY_PORT})")
    serve.add_argument(
        "--print-links", action="store_true", help="print a runs-list link at start (signed with this process's secret)"
    )
    serve.set_defaults(handler=serve_command)

    verify = subparsers.add_parser("verify", help="check that every frame of a run is stored byte for byte")
    verify.add_argument("run_id", metavar="RUN_ID")
    verify.add_argument(
        "--gap-seconds", type=float, default=10.0, help="report capture-time gaps longer than this (seconds, default 10)"
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(handler=verify_command)

    token = subparsers.add_parser("token", help="print a signed viewer link for a run ('*' for the runs list)")
    token.add_argument("run_id", metavar="RUN_ID", help="run id, or '*' for a runs-list link")
    token.add_argument("--ttl", type=int, default=24 * 3600, help="validity in seconds (default 86400)")
    token.add_argument(
        "--base-url", default=f"http://127.0.0.1:{REPLAY_PORT}", help="viewer address to put in the link"
    )
    token.set_defaults(handler=token_command)


def build_link(base_url: str, run_id: str, token: str) -> str:
    """Return the viewer URL of a run, or of the runs list for run id '*'."""
    from urllib.parse import quote

    base = base_url.rstrip("/")
    if run_id == "*":
        return f"{base}/?token={token}"
    return f"{base}/runs/{quote(run_id, safe='')}?token={token}"


def serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from pipeline.replay.app import ReplayService, build_app
    from pipeline.replay.tokens import TokenSigner, load_secret

    signer = TokenSigner(load_secret())
    service = ReplayService(Settings.from_env(), signer)
    if args.print_links:
        print("runs list:", build_link(f"http://{args.host}:{args.port}", "*", signer.sign("*")), flush=True)
    logger.info("replay service starting host=%s port=%d", args.host, args.port)
    # Control messages are small; a large limit would only let a client make the server buffer.
    uvicorn.run(build_app(service), host=args.host, port=args.port, ws="websockets", ws_max_size=65536, log_level="info")
    return 0


def verify_command(args: argparse.Namespace) -> int:
    from pipeline.replay.verify import verify_run

    report = verify_run(Settings.from_env(), args.run_id, gap_threshold_s=args.gap_seconds)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.render())
    if not report.run_known:
        return 2
    return 0 if report.ok else 1


def token_command(args: argparse.Namespace) -> int:
    from pipeline.replay.tokens import SECRET_ENV, TokenSigner, load_secret
    import os

    if not os.environ.get(SECRET_ENV):
        print(
            f"{SECRET_ENV} is not set, so no server can check this link; set the same secret for "
            "`spanline replay serve` and this command",
            file=sys.stderr,
        )
        return 2
    signer = TokenSigner(load_secret())
    print(build_link(args.base_url, args.run_id, signer.sign(args.run_id, ttl_s=args.ttl)))
    return 0
