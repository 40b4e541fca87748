"""`spanline prices`: show how a model is priced and list unpriced models in the database."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import UTC, datetime

from pipeline.config import Settings
from pipeline.pricing.prices import PRICE_CLASSES, PriceBook, parse_time, cost, default_price_book
from pipeline.pricing.usage import Usage

logger = logging.getLogger(__name__)

# Environment variable naming the operator price YAML file used when --prices is not given.
OPERATOR_PRICES_ENV = "SPANLINE_OPERATOR_PRICES"

# The sample call `show` prices, so a reader sees every class at work.
SAMPLE_USAGE = Usage(
    input_tokens=10_000,
    cache_read_tokens=5_000,
    cache_write_tokens=1_000,
    output_tokens=800,
    reasoning_tokens=200,
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the `show` and `unpriced` subcommands."""
    parser.add_argument(
        "--prices",
        metavar="FILE",
        default=os.environ.get(OPERATOR_PRICES_ENV),
        help=f"operator price YAML file (default: ${OPERATOR_PRICES_ENV}, else genai-prices only)",
    )
    subparsers = parser.add_subparsers(dest="prices_command", metavar="SUBCOMMAND", required=True)

    show = subparsers.add_parser("show", help="print the price entry a model resolves to and a sample cost")
    show.add_argument("model", metavar="MODEL", help="model name as spans report it")
    show.add_argument("--provider", help="provider name as spans report it (openai, aws.bedrock, ...)")
    show.add_argument("--at", help="ISO-8601 time of the call (default: now, UTC)")
    show.add_argument("--json", action="store_true", help="print the entry as JSON")
    show.set_defaults(handler=show_command)

    unpriced = subparsers.add_parser("unpriced", help="list provider/model pairs stored without a price")
    unpriced.set_defaults(handler=unpriced_command)


def _book(args: argparse.Namespace) -> PriceBook:
    return default_price_book(args.prices)


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
