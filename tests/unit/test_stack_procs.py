"""PID records of the local stack: a process is signalled only while it still matches its record."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from pipeline.stack.manager import ServiceStatus, StackError
from pipeline.stack.procs import (
    PidRecord,
    parse_start_ticks,
    read_record,
    record_matches,
    running_record,
    start_detached,
    wait_for_argv,
    stop_process,
)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _fake_proc(root: Path, pid: int, argv: list[str], start_ticks: int) -> None:
    folder = root / str(pid)
    folder.mkdir(parents=True)
    (folder / "cmdline").write_bytes(b"\0".join(part.encode() for part in argv) + b"\0")
    fields = ["S"] + ["0"] * 18 + [str(start_ticks)] + ["0"] * 10
    (folder / "stat").write_text(f"{pid} (a name) with) {' '.join(fields)}\n")


def test_start_ticks_after_name_with_parenthesis():
    fields = ["S"] + [str(n) for n in range(4, 22)] + ["98765", "23", "24"]
    assert parse_start_ticks(f"42 (odd) name) {' '.join(fields)}") == 98765


def test_record_matches_same_argv_and_ticks(tmp_path):
    _fake_proc(tmp_path, 100, ["java", "kafka.Kafka", "server.properties"], 555)
    record = PidRecord(100, ("java", "kafka.Kafka", "server.properties"), 555)
    assert record_matches(record, tmp_path)


def test_record_rejects_other_argv(tmp_path):
    _fake_proc(tmp_path, 100, ["/usr/bin/vim", "server.properties"], 555)
    record = PidRecord(100, ("java", "kafka.Kafka", "server.properties"), 555)
    assert not record_matches(record, tmp_path)


def test_record_rejects_reused_pid(tmp_path):
    _fake_proc(tmp_path, 100, ["java", "kafka.Kafka", "server.properties"], 999)
    record = PidRecord(100, ("java", "kafka.Kafka", "server.properties"), 555)
    assert not record_matches(record, tmp_path)


def test_record_rejects_missing_process(tmp_path):
    assert not record_matches(PidRecord(100, ("java",), 555), tmp_path)


def test_record_round_trips_json():
    record = PidRecord(7, ("a", "b c"), 12)
    assert PidRecord.from_json(record.to_json()) == record


def test_unreadable_pid_file_is_ignored(tmp_path):
    pid_file = tmp_path / "kafka.pid"
    pid_file.write_text("12345\n")
    assert read_record(pid_file) is None


def test_stop_leaves_mismatched_process_alone(tmp_path):
    pid_file = tmp_path / "run" / "sleeper.pid"
    record = start_detached(SLEEPER, SLEEPER, tmp_path / "sleeper.log", pid_file)
    try:
        pid_file.write_text(PidRecord(record.pid, ("some", "other", "program"), record.start_ticks).to_json())
        outcome = stop_process(pid_file, timeout_s=2)
        assert outcome.startswith("not running")
        assert record_matches(record)
        assert not pid_file.exists()
    finally:
        pid_file.write_text(record.to_json())
        stop_process(pid_file, timeout_s=5)


def test_stop_terminates_matching_process(tmp_path):
    pid_file = tmp_path / "run" / "sleeper.pid"
    record = start_detached(SLEEPER, SLEEPER, tmp_path / "sleeper.log", pid_file)
    # Until the child has exec'd, /proc still shows the parent's command line.
    assert wait_for_argv(record)
    assert running_record(pid_file) == record
    outcome = stop_process(pid_file, signal.SIGTERM, timeout_s=10)
    assert outcome == f"stopped pid {record.pid}"
    assert not pid_file.exists()
    assert running_record(pid_file) is None


def test_stop_kills_process_ignoring_signal(tmp_path):
    stubborn = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]
    pid_file = tmp_path / "run" / "stubborn.pid"
    record = start_detached(stubborn, stubborn, tmp_path / "stubborn.log", pid_file)
    time.sleep(0.5)  # let the child install its handler before it is signalled
    outcome = stop_process(pid_file, signal.SIGTERM, timeout_s=1)
    assert outcome.startswith("killed")
    assert not record_matches(record)


def test_stack_error_names_service_and_log():
    error = StackError("kafka", "a metadata response", "/state/logs/kafka.log", "timed out")
    assert str(error).startswith("kafka: expected a metadata response")
    assert "/state/logs/kafka.log" in str(error)
    assert "timed out" in str(error)


def test_status_line_shows_stopped_service():
    line = ServiceStatus("s3", False, None, 19000, "/state/logs/s3.log").line()
    assert "stopped" in line
    assert "pid=-" in line
    assert "127.0.0.1:19000" in line
    assert "/state/logs/s3.log" in line
