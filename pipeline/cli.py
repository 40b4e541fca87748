"""The `spanline` command: one entry point for the stack, workers, import, prices and replay.

Each subsystem module exposes `configure_parser(parser)` that adds its arguments and sets
`handler=<function(args) -> int>`. Modules are imported only when their command runs, so
`spanline stack status` does not pay for importing faust.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "stack": ("pipeline.stack.cli", "install, start, stop and check the local Kafka, TimescaleDB and S3"),
    "worker": ("pipeline.workers.cli", "run a span, frame or runs worker (faust)"),
    "import": ("pipeline.importers.cli", "publish recorded agent runs through the SDK"),
    "demo": ("pipeline.demo.cli", "run the demo: import real runs, record a browser run, print a summary"),
    "prices": ("pipeline.pricing.cli", "sync, set, delete and show prices; list unpriced models"),
    "reprice": ("pipeline.pricing.reprice_cli", "recompute stored costs after a price change"),
    "replay": ("pipeline.replay.cli", "serve the replay viewer or verify a run's frames"),
    "otlp": ("pipeline.otel.cli", "convert OTLP from a Collector's Kafka topic or receive OTLP/HTTP"),
    "retention": ("pipeline.stores.retention_cli", "drop old chunks and unreferenced frame objects"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spanline", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    requested = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        # Only the requested command's module is imported; the others show their help line only.
        if name == requested:
            module = importlib.import_module(module_name)
            module.configure_parser(subparser)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    parser = build_parser(arguments)
    args = parser.parse_args(arguments)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.error(f"command {args.command!r} needs a subcommand; see spanline {args.command} --help")
    from pipeline.config import ConfigError

    try:
        return int(handler(args) or 0)
    except ConfigError as error:
        # A bad setting is the user's to fix, so it gets one line instead of a traceback.
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
