"""`spanline prices`: publish prices to the prices topic, explain a price, list unpriced models."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from pipeline.config import Settings
from pipeline.pricing.prices import (
    PRICE_CLASSES,
    PriceBook,
    cost,
    default_price_book,
    genai_price_entries,
    load_operator_prices,
    parse_time,
)
from pipeline.pricing.topic import (
    ALIAS_PREFIX,
    GENAI_PREFIX,
    KEY_PREFIXES,
    OPERATOR_PREFIX,
    PriceTopicError,
    genai_records,
    operator_records,
    publish,
    read_all,
)
from pipeline.pricing.usage import Usage

logger = logging.getLogger(__name__)

# The sample call `show` prices, so a reader sees every class at work.
SAMPLE_USAGE = Usage(
    input_tokens=10_000,
    cache_read_tokens=5_000,
    cache_write_tokens=1_000,
    output_tokens=800,
    reasoning_tokens=200,
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the `sync`, `set`, `delete`, `show` and `unpriced` subcommands."""
    parser.add_argument(
        "--prices",
        metavar="FILE",
        default=None,
        help="operator price YAML file for `show` (default: $SPANLINE_PRICES_FILE, else genai-prices only)",
    )
    subparsers = parser.add_subparsers(dest="prices_command", metavar="SUBCOMMAND", required=True)

    sync = subparsers.add_parser(
        "sync", help="publish every genai-prices entry of the installed package to the prices topic"
    )
    sync.add_argument(
        "--keep-stale", action="store_true",
        help="keep genai-prices keys on the topic that the installed package no longer has "
        "(default: delete them)",
    )
    sync.set_defaults(handler=sync_command)

    set_prices = subparsers.add_parser(
        "set", help="publish operator prices and aliases from a YAML file to the prices topic"
    )
    set_prices.add_argument("file", metavar="FILE", help="operator price YAML file")
    set_prices.add_argument(
        "--replace", action="store_true",
        help="also delete operator and alias keys on the topic that FILE does not define",
    )
    set_prices.set_defaults(handler=set_command)

    delete = subparsers.add_parser("delete", help="delete one key from the prices topic (a tombstone)")
    delete.add_argument("key", metavar="KEY", help="a key as `spanline prices keys` lists it")
    delete.set_defaults(handler=delete_command)

    keys = subparsers.add_parser("keys", help="list the keys on the prices topic")
    keys.add_argument("--prefix", default="", help="list only keys starting with this text")
    keys.set_defaults(handler=keys_command)

    show = subparsers.add_parser("show", help="print the price entry a model resolves to and a sample cost")
    show.add_argument("model", metavar="MODEL", help="model name as spans report it")
    show.add_argument("--provider", help="provider name as spans report it (openai, aws.bedrock, ...)")
    show.add_argument("--at", help="ISO-8601 time of the call (default: now, UTC)")
    show.add_argument("--json", action="store_true", help="print the entry as JSON")
    show.set_defaults(handler=show_command)

    unpriced = subparsers.add_parser("unpriced", help="list provider/model pairs stored without a price")
    unpriced.set_defaults(handler=unpriced_command)


def _book(args: argparse.Namespace) -> PriceBook:
    return default_price_book(args.prices or Settings.from_env().prices_file)


def _topic_keys(settings: Settings) -> set[str]:
    """Return the keys that currently have a value on the prices topic."""
    live: set[str] = set()
    for key, value in read_all(settings):
        if key is None:
            continue
        text = key.decode()
        if value is None:
            live.discard(text)
        else:
            live.add(text)
    return live


def _fail(error: Exception) -> int:
    print(f"error: {error}", file=sys.stderr)
    return 1


def sync_command(args: argparse.Namespace) -> int:
    """Publish every genai-prices entry and delete genai-prices keys the package no longer has."""
    settings = Settings.from_env()
    records = genai_records(genai_price_entries())
    try:
        stale: set[str] = set()
        if not args.keep_stale:
            new_keys = {key for key, _ in records}
            stale = {key for key in _topic_keys(settings) if key.startswith(GENAI_PREFIX)} - new_keys
        published = publish(settings, [*records, *((key, None) for key in sorted(stale))])
    except PriceTopicError as error:
        return _fail(error)
    print(
        f"published {published - len(stale)} genai-prices entries and deleted {len(stale)} stale keys "
        f"on {settings.prices_topic}"
    )
    return 0


def set_command(args: argparse.Namespace) -> int:
    """Publish the operator entries and aliases of a YAML file."""
    settings = Settings.from_env()
    try:
        operator = load_operator_prices(args.file)
        records = operator_records(operator)
    except (ValueError, OSError) as error:
        return _fail(error)
    try:
        stale: set[str] = set()
        if args.replace:
            new_keys = {key for key, _ in records}
            operator_keys = {
                key for key in _topic_keys(settings) if key.startswith((OPERATOR_PREFIX, ALIAS_PREFIX))
            }
            stale = operator_keys - new_keys
        publish(settings, [*records, *((key, None) for key in sorted(stale))])
    except PriceTopicError as error:
        return _fail(error)
    print(
        f"published {len(operator.entries)} operator entries and {len(operator.aliases)} aliases from "
        f"{Path(args.file).name} to {settings.prices_topic}"
        + (f"; deleted {len(stale)} keys not in the file" if args.replace else "")
    )
    return 0


def delete_command(args: argparse.Namespace) -> int:
    """Send a tombstone for one key, so compaction removes it and readers drop it."""
    settings = Settings.from_env()
    if not args.key.startswith(KEY_PREFIXES):
        return _fail(ValueError(
            f"key {args.key!r} is not a prices key; keys start with {', '.join(KEY_PREFIXES)} "
            "(see `spanline prices keys`)"
        ))
    try:
        if args.key not in _topic_keys(settings):
            print(f"warning: key {args.key!r} has no value on {settings.prices_topic}; sending the "
                  "tombstone anyway", file=sys.stderr)
        publish(settings, [(args.key, None)])
    except PriceTopicError as error:
        return _fail(error)
    print(f"deleted {args.key} from {settings.prices_topic}")
    return 0


def keys_command(args: argparse.Namespace) -> int:
    """Print the keys that have a value on the prices topic, sorted."""
    settings = Settings.from_env()
    try:
        keys = sorted(key for key in _topic_keys(settings) if key.startswith(args.prefix))
    except PriceTopicError as error:
        return _fail(error)
    for key in keys:
        print(key)
    print(f"{len(keys)} keys on {settings.prices_topic}", file=sys.stderr)
    return 0


def show_command(args: argparse.Namespace) -> int:
    """Print the resolved entry, its prices per class and the cost of a sample call."""
    try:
        at = parse_time(args.at, "--at") if args.at else datetime.now(tz=UTC)
        book = _book(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    entry = book.resolve(args.provider, args.model, at)
    if entry is None:
        print(
            f"no price for model {args.model!r} (provider {args.provider or 'any'}) at {at.isoformat()}; "
            "spans of it are stored with pricing_status 'unpriced'. Add it to an operator price file "
            "(--prices) or check the spelling.",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(entry.to_dict(), indent=2))
        return 0

    print(f"price id:        {entry.id}")
    print(f"source:          {entry.source}")
    print(f"provider/model:  {entry.provider} / {entry.model}")
    print(f"effective from:  {entry.effective_from.isoformat()}")
    if entry.utc_time_window:
        print(f"daily window:    {entry.utc_time_window[0]}-{entry.utc_time_window[1]} UTC")
    print("USD per million tokens (* = not set, billed at the parent class's price):")
    rates = entry.rates(0)
    for name in PRICE_CLASSES:
        marker = "" if name in entry.prices else " *"
        print(f"  {name:<15} {rates[name]}{marker}")
    for tier in entry.tiers:
        changes = ", ".join(f"{name}={price}" for name, price in tier.prices.items())
        print(f"  above {tier.above_prompt_tokens:,} prompt tokens the whole request pays: {changes}")
    if entry.per_call_usd:
        print(f"  per call        {entry.per_call_usd} USD")

    breakdown = cost(SAMPLE_USAGE, entry)
    print(
        "sample call: input 10,000, cache read 5,000, cache write 1,000, output 800, reasoning 200 "
        f"(prompt size {breakdown.prompt_tokens:,})"
    )
    for label, value in (
        ("input", breakdown.input),
        ("cache read", breakdown.cache_read),
        ("cache write", breakdown.cache_write),
        ("output", breakdown.output),
        ("reasoning", breakdown.reasoning),
        ("other", breakdown.other),
    ):
        print(f"  {label:<12} {value:.8f} USD")
    print(f"  total        {breakdown.total:.8f} USD")
    return 0


UNPRICED_QUERY = (
    "SELECT provider, model, count(*) FROM spans WHERE pricing_status = 'unpriced' "
    "GROUP BY 1, 2 ORDER BY 3 DESC"
)


def unpriced_command(args: argparse.Namespace) -> int:
    """List provider/model pairs whose spans were stored with pricing_status 'unpriced'."""
    import psycopg

    settings = Settings.from_env()
    try:
        with psycopg.connect(settings.database_dsn.reveal(), connect_timeout=5) as connection:
            rows = connection.execute(UNPRICED_QUERY).fetchall()
    except psycopg.OperationalError as error:
        print(
            f"error: cannot reach the database ({error}). Start it with `spanline stack up` or set "
            "SPANLINE_DATABASE_DSN.",
            file=sys.stderr,
        )
        return 1
    except psycopg.errors.UndefinedTable:
        print("error: table 'spans' does not exist; run the migrations first.", file=sys.stderr)
        return 1
    if not rows:
        print("no unpriced spans")
        return 0
    print(f"{'provider':<20} {'model':<50} spans")
    for provider, model, count in rows:
        print(f"{provider or '-':<20} {model or '-':<50} {count}")
    return 0
