"""Measure span-batch encode and decode throughput (spans per second) for 100- and 500-span batches.

Run from the repository root: .venv/bin/python load/bench_wire.py [--seconds 2]
The batches are synthetic but shaped like LLM and tool spans: hex ids, token counts on half the
spans, short attribute JSON and tool arguments.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from pipeline.wire import decode_span_batch, encode_span_batch


def build_columns(size: int) -> dict[str, list]:
    """Build `size` spans as columns: even spans are LLM calls with usage, odd spans tool calls."""
    start = 1_700_000_000_000_000_000
    is_llm = [index % 2 == 0 for index in range(size)]

    def llm_only(value: object) -> list:
        return [value if flag else None for flag in is_llm]

    def tool_only(value: object) -> list:
        return [None if flag else value for flag in is_llm]

    return {
        "trace_id": ["4bf92f3577b34da6a3ce929d0e0e4736"] * size,
        "span_id": [f"{index:016x}" for index in range(size)],
        "parent_span_id": ["00f067aa0ba902b7"] * size,
        "step": [index // 4 + 1 for index in range(size)],
        "kind": ["llm" if flag else "tool" for flag in is_llm],
        "name": ["chat completion" if flag else "search_products" for flag in is_llm],
        "start_ns": [start + index * 1_000_000 for index in range(size)],
        "end_ns": [start + index * 1_000_000 + 750_000 for index in range(size)],
        "status": ["ok"] * size,
        "error_message": [None] * size,
        "provider": llm_only("openai"),
        "model": llm_only("gpt-4o-mini-2024-07-18"),
        "input_tokens": llm_only(1834),
        "cache_read_tokens": llm_only(1024),
        "cache_write_tokens": llm_only(None),
        "cache_write_1h_tokens": llm_only(None),
        "output_tokens": llm_only(212),
        "reasoning_tokens": llm_only(0),
        "audio_input_tokens": [None] * size,
        "audio_output_tokens": [None] * size,
        "usage_source": llm_only("openai.chat"),
        "reported_cost_usd": llm_only(0.000402),
        "tool_name": tool_only("search_products"),
        "tool_args": tool_only('{"query": "running shoes", "max_results": 10}'),
        "attributes": ['{"http.status_code":200,"retry":0}'] * size,
    }


def measure(function, seconds: float) -> tuple[int, float]:
    """Call `function` repeatedly for about `seconds`; return calls made and elapsed seconds."""
    calls = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(20):
            function()
        calls += 20
        now = time.perf_counter()
        if now >= deadline:
            return calls, now - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per case, in seconds")
    args = parser.parse_args()

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, one thread")
    print(f"{'spans/batch':>11} {'bytes':>7} {'encode spans/s':>15} {'decode spans/s':>15}")
    for size in (100, 500):
        columns = build_columns(size)
        value = encode_span_batch("run-0001", "shopper", columns)
        assert decode_span_batch(value).columns == columns

        encode_calls, encode_s = measure(lambda: encode_span_batch("run-0001", "shopper", columns), args.seconds)
        decode_calls, decode_s = measure(lambda: decode_span_batch(value), args.seconds)
        print(
            f"{size:>11} {len(value):>7} {encode_calls * size / encode_s:>15,.0f} "
            f"{decode_calls * size / decode_s:>15,.0f}"
        )


if __name__ == "__main__":
    main()
