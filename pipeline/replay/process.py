"""Start `spanline replay serve` as a child process: used by tests and the replay benchmark."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

logger = logging.getLogger(__name__)


class ReplayServerProcess:
    """One replay server child process with its own log file."""

    def __init__(self, port: int, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.log_path = log_path
        self._env = {**os.environ, **(env or {})}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout_s: float = 30.0) -> None:
        """Start the server and block until /readyz returns 200; raise RuntimeError otherwise."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "pipeline.cli", "replay", "serve", "--port", str(self.port)],
                stdout=log_file, stderr=subprocess.STDOUT, env=self._env, start_new_session=True,
            )
        logger.info("started replay server pid=%d port=%d log=%s", self._process.pid, self.port, self.log_path)
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"replay server exited with code {self._process.returncode}; read {self.log_path}")
            try:
                with urllib.request.urlopen(self.base_url + "/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"replay server not ready after {ready_timeout_s:.0f} s; read {self.log_path}")

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning("replay server did not stop in %.0f s, killing pid=%d", timeout_s, self._process.pid)
            self._process.kill()
            self._process.wait(timeout_s)
