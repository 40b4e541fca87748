"""Background processes of the local stack: start detached, record, recognise and stop.

A PID file records the pid, the argv the process runs as and its start time (field 22 of
/proc/<pid>/stat). A process is only treated as ours while all three still match, so a reused
pid is never signalled.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PidRecord:
    """Contents of a PID file: what was started and when."""

    pid: int
    argv: tuple[str, ...]
    start_ticks: int

    def to_json(self) -> str:
        return json.dumps({"pid": self.pid, "argv": list(self.argv), "start_ticks": self.start_ticks})

    @classmethod
    def from_json(cls, text: str) -> "PidRecord":
        data = json.loads(text)
        return cls(pid=int(data["pid"]), argv=tuple(data["argv"]), start_ticks=int(data["start_ticks"]))


def read_cmdline(pid: int, proc_root: Path = Path("/proc")) -> tuple[str, ...] | None:
    """Return the argv of `pid` from /proc, or None when no such process exists."""
    try:
        raw = (proc_root / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    if not raw:
        return None  # a zombie or kernel thread has an empty cmdline
    return tuple(part.decode("utf-8", "replace") for part in raw.rstrip(b"\0").split(b"\0"))


def parse_start_ticks(stat_text: str) -> int:
    """Return the start time (clock ticks after boot) from the text of /proc/<pid>/stat.

    The command name in field 2 is in parentheses and may contain spaces, so fields are counted
    after the last ')'.
    """
    after_name = stat_text[stat_text.rindex(")") + 2 :].split()
    # after_name[0] is field 3 (state), so starttime, field 22, is at index 19.
    return int(after_name[22 - 3])


def read_start_ticks(pid: int, proc_root: Path = Path("/proc")) -> int | None:
    """Return the start time of `pid` in clock ticks after boot, or None when it is gone."""
    try:
        text = (proc_root / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return parse_start_ticks(text)


def record_matches(record: PidRecord, proc_root: Path = Path("/proc")) -> bool:
    """Return whether the process `record.pid` is still the one that `record` describes."""
    cmdline = read_cmdline(record.pid, proc_root)
    if cmdline is None or cmdline != record.argv:
        return False
    return read_start_ticks(record.pid, proc_root) == record.start_ticks


def read_record(pid_file: Path) -> PidRecord | None:
    """Return the record in `pid_file`, or None when it is missing or unreadable."""
    try:
        return PidRecord.from_json(pid_file.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as error:
        logger.warning("ignoring unreadable pid file path=%s error=%s", pid_file, error)
        return None


def running_record(pid_file: Path) -> PidRecord | None:
    """Return the record in `pid_file` when its process still runs as recorded, else None."""
    record = read_record(pid_file)
    if record is None or not record_matches(record):
        return None
    return record


def start_detached(
    launch_argv: list[str],
    expected_argv: list[str],
    log_file: Path,
    pid_file: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> PidRecord:
    """Start `launch_argv` in its own session with output appended to `log_file`; write `pid_file`.

    `expected_argv` is the argv the process runs as once started; it differs from `launch_argv`
    when a wrapper such as chroot execs the real program. The child survives the caller's exit.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        log.write(f"\n--- started by spanline at {time.strftime('%Y-%m-%dT%H:%M:%S%z')} ---\n".encode())
        log.flush()
        process = subprocess.Popen(
            launch_argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env,
            cwd=cwd,
        )
    start_ticks = read_start_ticks(process.pid)
    if start_ticks is None:
        raise RuntimeError(f"{launch_argv[0]} exited right after it was started; read {log_file}")
    record = PidRecord(pid=process.pid, argv=tuple(expected_argv), start_ticks=start_ticks)
    temporary = pid_file.with_suffix(".tmp")
    temporary.write_text(record.to_json())
    temporary.replace(pid_file)
    logger.info("process started pid=%d log=%s", process.pid, log_file)
    return record


def wait_for_argv(record: PidRecord, timeout_s: float = 10.0) -> bool:
    """Wait until the process has exec'd into `record.argv`; return False if it died first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if record_matches(record):
            return True
        if read_start_ticks(record.pid) != record.start_ticks:
            return False
        time.sleep(0.05)
    return record_matches(record)


def stop_process(pid_file: Path, graceful_signal: int = signal.SIGTERM, timeout_s: float = 30.0) -> str:
    """Stop the process recorded in `pid_file` if it still matches, and remove the file.

    Sends `graceful_signal`, waits up to `timeout_s` seconds, then sends SIGKILL. Returns a short
    description of what happened. A process whose argv or start time differs is never signalled.
    """
    record = read_record(pid_file)
    if record is None:
        return "not running (no pid file)"
    if not record_matches(record):
        pid_file.unlink(missing_ok=True)
        return f"not running (pid {record.pid} is gone or is another program; pid file removed)"

    os.kill(record.pid, graceful_signal)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not record_matches(record):
            pid_file.unlink(missing_ok=True)
            return f"stopped pid {record.pid}"
        time.sleep(0.2)

    logger.warning("process ignored signal, killing pid=%d signal=%d", record.pid, graceful_signal)
    if record_matches(record):
        os.kill(record.pid, signal.SIGKILL)
    time.sleep(0.5)
    pid_file.unlink(missing_ok=True)
    return f"killed pid {record.pid} after {timeout_s:.0f} s"
