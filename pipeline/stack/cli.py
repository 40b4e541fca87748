"""`spanline stack up | down | status`."""

from __future__ import annotations

import argparse
import logging
import subprocess

from pipeline.config import Settings

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the up, down and status subcommands to `parser`."""
    subparsers = parser.add_subparsers(dest="stack_command", metavar="SUBCOMMAND", required=True)
    subparsers.add_parser(
        "up", help="install what is missing, start the services, create topics, tables and the bucket"
    ).set_defaults(handler=_run_up)
    subparsers.add_parser(
        "down", help="stop the services that spanline stack up started"
    ).set_defaults(handler=_run_down)
    subparsers.add_parser(
        "status", help="print one line per service: running or stopped, pid, port, log file"
    ).set_defaults(handler=_run_status)
    # The next two work against any deployment (SPANLINE_* settings); the Helm chart's Jobs run them.
    subparsers.add_parser(
        "migrate", help="apply pending database migrations to SPANLINE_DATABASE_DSN"
    ).set_defaults(handler=_run_migrate)
    topics = subparsers.add_parser(
        "topics", help="create missing Spanline topics on SPANLINE_KAFKA_BOOTSTRAP"
    )
    topics.add_argument(
        "--replication-factor", type=int, default=1,
        help="replicas per partition for new topics (default 1, the local single broker)",
    )
    topics.add_argument(
        "--run-partitions", type=int, default=None,
        help="partitions of the run-keyed topics (spans, enriched spans, runs); default 4",
    )
    topics.add_argument(
        "--plan-json", default=None, metavar="JSON",
        help="create exactly these topics instead of the built-in list: a JSON object of "
        '{"name", "partitions", "replicationFactor", "config"} entries, as the Helm chart passes',
    )
    topics.set_defaults(handler=_run_topics)


def _run_up(args: argparse.Namespace) -> int:
    from pipeline.stack.manager import StackError, up

    try:
        up(Settings.from_env())
    except StackError as error:
        print(f"error: {error}")
        return 1
    except (RuntimeError, PermissionError, subprocess.CalledProcessError) as error:
        print(f"error: {error}")
        return 1
    return 0


def _run_down(args: argparse.Namespace) -> int:
    from pipeline.stack.manager import down

    down(Settings.from_env())
    return 0


def _run_status(args: argparse.Namespace) -> int:
    from pipeline.stack.manager import status

    statuses = status(Settings.from_env())
    for service in statuses:
        print(service.line())
    return 0 if all(service.running for service in statuses) else 3


def _run_migrate(args: argparse.Namespace) -> int:
    import psycopg

    from pipeline.stores.migrate import apply_migrations

    settings = Settings.from_env()
    try:
        applied = apply_migrations(settings.database_dsn.reveal())
    except psycopg.Error as error:
        print(f"error: migrations failed: {error}")
        return 1
    print(f"applied migrations: {', '.join(applied) if applied else 'none pending'}")
    return 0


def _run_topics(args: argparse.Namespace) -> int:
    from pipeline.kafka_clients import librdkafka_config
    from pipeline.stack.topics import TOPICS, TopicPlanError, ensure_topics, parse_topic_plan

    settings = Settings.from_env()
    try:
        planned = parse_topic_plan(args.plan_json) if args.plan_json is not None else TOPICS
    except TopicPlanError as error:
        print(f"error: {error}")
        return 2
    try:
        ensure_topics(
            settings.kafka_bootstrap,
            client_config=librdkafka_config(settings),
            replication_factor=args.replication_factor,
            run_keyed_partitions=args.run_partitions,
            topics=planned,
        )
    except Exception as error:  # noqa: BLE001 - AdminClient raises KafkaException and others
        print(f"error: creating topics on {settings.kafka_bootstrap} failed: {error}")
        return 1
    print(f"topics present on {settings.kafka_bootstrap}")
    return 0
