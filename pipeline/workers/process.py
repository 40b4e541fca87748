"""Start and stop worker processes from Python: used by the demo, the tests and the load harness."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0


class WorkerStartError(RuntimeError):
    """A worker did not become ready in time; the message names its log file."""


class WorkerProcess:
    """One `spanline worker ROLE` child process with its own log file and web port."""

    def __init__(
        self,
        role: str,
        web_port: int,
        log_path: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.role = role
        self.web_port = web_port
        self.log_path = log_path
        self._env = {**os.environ, **(env or {})}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = self.log_path.open("ab")
        command = [
            sys.executable, "-m", "pipeline.cli", "worker", self.role,
            "--web-port", str(self.web_port),
        ]
        self._process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=self._env,
            start_new_session=True,
        )
        log_file.close()
        log.info(
            "started worker role=%s pid=%d web_port=%d log=%s",
            self.role, self._process.pid, self.web_port, self.log_path,
        )

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Block until /readyz answers 200: partitions assigned and the agent running."""
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{self.web_port}/readyz"
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise WorkerStartError(
                    f"{self.role} worker exited with code "
                    f"{self._process.returncode if self._process else None} before it was ready; "
                    f"read {self.log_path}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise WorkerStartError(
            f"{self.role} worker was not ready within {timeout_s:.0f} s "
            f"(expected HTTP 200 from {url}); read {self.log_path}"
        )

    def kill(self) -> None:
        """SIGKILL the worker: what a crash looks like to Kafka and the database."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM the worker, then SIGKILL it if it has not exited within timeout_s."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning(
                    "worker did not stop in time, killing role=%s pid=%d", self.role, self.pid
                )
                self._process.kill()
                self._process.wait()
        log.info("stopped worker role=%s pid=%d code=%s", self.role, self.pid,
                 self._process.returncode)
        return self._process.returncode

    def __enter__(self) -> "WorkerProcess":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
