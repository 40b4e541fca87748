"""`spanline retention run --older-than 7d`: what the Helm CronJob runs."""

from __future__ import annotations

import argparse

from pipeline.config import Settings


def configure_parser(parser: argparse.ArgumentParser) -> None:
    subparsers = parser.add_subparsers(dest="retention_command", metavar="SUBCOMMAND",
                                       required=True)
    run = subparsers.add_parser(
        "run", help="drop chunks of spans, frames and run_metrics older than --older-than"
    )
    run.add_argument(
        "--older-than", required=True,
        help="age limit: a whole number with s, m, h, d or w, e.g. 7d; at least 1h",
    )
    run.add_argument("--dry-run", action="store_true", help="count what would go; change nothing")
    run.add_argument(
        "--keep-objects", action="store_true",
        help="drop rows but leave frame objects in the S3 store",
    )
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import psycopg

    from pipeline.stores.objects import FrameObjectStore
    from pipeline.stores.retention import apply_retention, parse_duration

    try:
        older_than = parse_duration(args.older_than)
    except ValueError as error:
        print(f"error: {error}")
        return 2
    settings = Settings.from_env()
    objects = None if args.keep_objects else FrameObjectStore(settings)
    try:
        result = apply_retention(
            settings.database_dsn.reveal(), older_than, objects, dry_run=args.dry_run
        )
    except psycopg.Error as error:
        print(f"error: retention failed: {error}")
        return 1
    verb = "would drop" if args.dry_run else "dropped"
    for table, chunks in result.chunks_dropped.items():
        print(f"{table}: {verb} {chunks} chunks older than {args.older_than}")
    print(f"frame objects: {verb} {result.frame_objects_deleted}, kept "
          f"{result.frame_objects_kept_shared} still used by newer frames")
    return 0
