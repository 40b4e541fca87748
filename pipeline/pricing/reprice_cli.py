"""`spanline reprice`: recompute stored span costs with the current prices, keeping an audit trail.

Stored costs never change on their own: a new or corrected price only affects spans stored after
the workers saw it. `reprice` walks the spans in [--from, --to) in start_time order, in batches of
--batch-size rows, prices each batch with `price_columns` (the worker's own code) and, in one
transaction per batch, updates the spans whose cost columns, price_id or pricing_status change and
inserts their old and new values into `span_cost_audit`. Unchanged spans get no audit row.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.pricing.columns import COST_COLUMNS, TOKEN_COLUMNS, price_columns
from pipeline.pricing.prices import PriceBook, default_price_book, parse_time, to_ns

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 10_000

# Columns read per span: the key, the pricing inputs, then the stored cost columns.
_KEY_COLUMNS = ("start_time", "span_id", "run_id")
_INPUT_COLUMNS = ("provider", "model", *TOKEN_COLUMNS, "reported_cost_usd")
_SELECT_COLUMNS = (*_KEY_COLUMNS, *_INPUT_COLUMNS, *COST_COLUMNS)
_FLOAT_COST_COLUMNS = tuple(name for name in COST_COLUMNS if name.endswith("_usd"))


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the reprice options and set the handler."""
    parser.add_argument("--from", dest="start", required=True, metavar="T1",
                        help="first span start time to reprice, ISO-8601 (inclusive), e.g. 2026-06-01T00:00:00Z")
    parser.add_argument("--to", dest="end", required=True, metavar="T2",
                        help="span start time where repricing stops, ISO-8601 (exclusive)")
    parser.add_argument("--model", help="reprice only spans whose stored model equals this")
    parser.add_argument("--provider", help="reprice only spans whose stored provider equals this")
    parser.add_argument("--dry-run", action="store_true",
                        help="compute and report the changes without writing anything")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="ROWS",
                        help=f"spans per transaction (default {DEFAULT_BATCH_SIZE:,})")
    parser.add_argument("--prices", metavar="FILE",
                        help="operator price YAML file used when the prices topic has no operator "
                        "records (default: $SPANLINE_PRICES_FILE)")
    parser.add_argument("--no-topic", action="store_true",
                        help="do not read the prices topic; price with the packaged genai-prices "
                        "data and the operator file only")
    parser.add_argument("--reason", default="",
                        help="a note stored with every audit row, e.g. a ticket or the price change")
    parser.set_defaults(handler=reprice_command)


@dataclass
class RepriceResult:
    """Counts and cost totals of one reprice run; totals cover the changed spans only."""

    reprice_id: uuid.UUID
    scanned: int = 0
    changed: int = 0
    batches: int = 0
    old_total_usd: float = 0.0
    new_total_usd: float = 0.0
    changes_by_price: dict[tuple[str | None, str | None], int] = field(default_factory=dict)


def reprice(
    dsn: str,
    book: PriceBook,
    start: datetime,
    end: datetime,
    *,
    model: str | None = None,
    provider: str | None = None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    reason: str = "",
    progress: Callable[[RepriceResult, datetime], None] | None = None,
) -> RepriceResult:
    """Recompute the costs of spans starting in [start, end) and store the changed ones.

    Each batch is one transaction: the spans are locked (SELECT ... FOR UPDATE), updated by
    (start_time, span_id) and audited together, so an interrupted run leaves whole batches done
    and the rest untouched. With dry_run nothing is written.
    """
    import psycopg

    if start >= end:
        raise ValueError(f"--from {start.isoformat()} is not before --to {end.isoformat()}")
    if batch_size < 1:
        raise ValueError(f"--batch-size {batch_size} must be at least 1")
    result = RepriceResult(reprice_id=uuid.uuid4())
    cursor: tuple[datetime, str] | None = None
    with psycopg.connect(dsn) as connection:
        while True:
            with connection.transaction(force_rollback=dry_run):
                rows = _select_batch(connection, start, end, cursor, model, provider, batch_size)
                if not rows:
                    break
                changes = _changed_rows(rows, book)
                if changes and not dry_run:
                    _write_changes(connection, changes, result.reprice_id, reason)
            _account(result, rows, changes)
            cursor = (rows[-1][0], rows[-1][1])
            if progress is not None:
                progress(result, cursor[0])
            if len(rows) < batch_size:
                break
    logger.info(
        "reprice finished reprice_id=%s scanned=%d changed=%d dry_run=%s",
        result.reprice_id, result.scanned, result.changed, dry_run,
    )
    return result


def _select_batch(
    connection: Any,
    start: datetime,
    end: datetime,
    cursor: tuple[datetime, str] | None,
    model: str | None,
    provider: str | None,
    batch_size: int,
) -> list[tuple[Any, ...]]:
    conditions = ["start_time >= %s", "start_time < %s"]
    params: list[Any] = [start, end]
    if cursor is not None:
        # Keyset pagination: spans sharing a start_time are told apart by span_id.
        conditions.append("(start_time, span_id) > (%s, %s)")
        params.extend(cursor)
    if model is not None:
        conditions.append("model = %s")
        params.append(model)
    if provider is not None:
        conditions.append("provider = %s")
        params.append(provider)
    sql = (
        f"SELECT {', '.join(_SELECT_COLUMNS)} FROM spans WHERE {' AND '.join(conditions)} "
        "ORDER BY start_time, span_id LIMIT %s FOR UPDATE"
    )
    params.append(batch_size)
    return connection.execute(sql, params).fetchall()


@dataclass(frozen=True)
class _Change:
    row: tuple[Any, ...]
    old: tuple[Any, ...]
    new: tuple[Any, ...]


def _changed_rows(rows: Sequence[tuple[Any, ...]], book: PriceBook) -> list[_Change]:
    """Price the rows as the worker would and return those whose stored cost columns differ."""
    key_width = len(_KEY_COLUMNS)
    input_width = len(_INPUT_COLUMNS)
    columns: dict[str, list[Any]] = {
        name: [row[key_width + index] for row in rows] for index, name in enumerate(_INPUT_COLUMNS)
    }
    columns["start_ns"] = [to_ns(row[0]) for row in rows]
    priced = price_columns(columns, book)
    new_columns = [priced[name] for name in COST_COLUMNS]
    changes = []
    offset = key_width + input_width
    for index, row in enumerate(rows):
        old = row[offset:]
        new = tuple(column[index] for column in new_columns)
        if old != new:
            changes.append(_Change(row=row, old=old, new=new))
    return changes


def _write_changes(connection: Any, changes: Sequence[_Change], reprice_id: uuid.UUID, reason: str) -> None:
    start_times = [change.row[0] for change in changes]
    span_ids = [change.row[1] for change in changes]
    new_by_column = {name: [change.new[i] for change in changes] for i, name in enumerate(COST_COLUMNS)}
    old_by_column = {name: [change.old[i] for change in changes] for i, name in enumerate(COST_COLUMNS)}

    value_columns = ", ".join(COST_COLUMNS)
    array_casts = ", ".join(
        "%s::float8[]" if name in _FLOAT_COST_COLUMNS else "%s::text[]" for name in COST_COLUMNS
    )
    assignments = ", ".join(f"{name} = v.{name}" for name in COST_COLUMNS)
    # The constant start_time range lets TimescaleDB skip chunks outside the batch.
    connection.execute(
        f"UPDATE spans AS s SET {assignments} "
        f"FROM unnest(%s::timestamptz[], %s::text[], {array_casts}) "
        f"AS v(start_time, span_id, {value_columns}) "
        "WHERE s.start_time = v.start_time AND s.span_id = v.span_id "
        "AND s.start_time >= %s AND s.start_time <= %s",
        [start_times, span_ids, *(new_by_column[name] for name in COST_COLUMNS),
         min(start_times), max(start_times)],
    )
    connection.execute(
        "INSERT INTO span_cost_audit (reprice_id, span_id, run_id, start_time, provider, model, "
        "old_cost_usd, new_cost_usd, old_computed_cost_usd, new_computed_cost_usd, "
        "old_price_id, new_price_id, old_pricing_status, new_pricing_status, reason) "
        "SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::text[], %s::text[], "
        "%s::float8[], %s::float8[], %s::float8[], %s::float8[], %s::text[], %s::text[], "
        "%s::text[], %s::text[], %s::text[])",
        [
            reprice_id,
            span_ids,
            [change.row[2] for change in changes],
            start_times,
            [change.row[3] for change in changes],
            [change.row[4] for change in changes],
            old_by_column["cost_usd"], new_by_column["cost_usd"],
            old_by_column["computed_cost_usd"], new_by_column["computed_cost_usd"],
            old_by_column["price_id"], new_by_column["price_id"],
            old_by_column["pricing_status"], new_by_column["pricing_status"],
            [reason] * len(changes),
        ],
    )


def _account(result: RepriceResult, rows: Sequence[tuple[Any, ...]], changes: Sequence[_Change]) -> None:
    cost_index = COST_COLUMNS.index("cost_usd")
    price_index = COST_COLUMNS.index("price_id")
    result.batches += 1
    result.scanned += len(rows)
    result.changed += len(changes)
    for change in changes:
        result.old_total_usd += change.old[cost_index] or 0.0
        result.new_total_usd += change.new[cost_index] or 0.0
        pair = (change.old[price_index], change.new[price_index])
        result.changes_by_price[pair] = result.changes_by_price.get(pair, 0) + 1


def _price_book(args: argparse.Namespace, settings: Settings) -> PriceBook:
    """Build the book the workers would use now: the prices topic, else packaged data and file."""
    if args.no_topic:
        return default_price_book(settings.prices_file)
    from pipeline.pricing.stream import load_price_book_source

    return load_price_book_source(settings).book()


def _reason(args: argparse.Namespace) -> str:
    parts = ["spanline reprice", f"--from {args.start}", f"--to {args.end}"]
    if args.model:
        parts.append(f"--model {args.model}")
    if args.provider:
        parts.append(f"--provider {args.provider}")
    if args.no_topic:
        parts.append("--no-topic")
    text = " ".join(parts)
    return f"{text}: {args.reason}" if args.reason else text


def reprice_command(args: argparse.Namespace) -> int:
    """Run `spanline reprice`; print progress per batch to stderr and a summary to stdout."""
    import psycopg

    from pipeline.pricing.topic import PriceTopicError

    settings = Settings.from_env()
    if args.prices:
        settings = replace(settings, prices_file=Path(args.prices))
    try:
        start = parse_time(args.start, "--from")
        end = parse_time(args.end, "--to")
        book = _price_book(args, settings)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except PriceTopicError as error:
        print(f"error: {error}. Use --no-topic to price with the packaged data and --prices FILE.",
              file=sys.stderr)
        return 1

    began = time.monotonic()

    def report(progress: RepriceResult, through: datetime) -> None:
        print(
            f"batch {progress.batches}: scanned {progress.scanned:,} spans, changed {progress.changed:,}, "
            f"through {through.isoformat()} ({time.monotonic() - began:.1f} s)",
            file=sys.stderr, flush=True,
        )

    try:
        result = reprice(
            settings.database_dsn.reveal(), book, start, end, model=args.model, provider=args.provider,
            dry_run=args.dry_run, batch_size=args.batch_size, reason=_reason(args), progress=report,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except psycopg.OperationalError as error:
        print(f"error: cannot reach the database ({error}). Start it with `spanline stack up` or set "
              "SPANLINE_DATABASE_DSN.", file=sys.stderr)
        return 1
    except psycopg.errors.UndefinedTable as error:
        print(f"error: {error}; run the migrations first.", file=sys.stderr)
        return 1

    verb = "would change" if args.dry_run else "changed"
    print(f"scanned {result.scanned:,} spans in [{start.isoformat()}, {end.isoformat()}); "
          f"{verb} {result.changed:,}")
    print(f"cost of the changed spans: {result.old_total_usd:.6f} USD before, "
          f"{result.new_total_usd:.6f} USD after")
    for (old_id, new_id), count in sorted(result.changes_by_price.items(), key=lambda item: -item[1]):
        print(f"  {count:>10,}  {old_id or '-'} -> {new_id or '-'}")
    if args.dry_run:
        print("dry run: nothing was written")
    elif result.changed:
        print(f"audit rows: SELECT * FROM span_cost_audit WHERE reprice_id = '{result.reprice_id}'")
    return 0
