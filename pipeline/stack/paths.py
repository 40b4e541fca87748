"""Folder layout of the local stack inside the state folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Settings


@dataclass(frozen=True)
class StackPaths:
    """Layout of service data, logs and PID files under one state folder."""

    state_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> "StackPaths":
        return cls(settings.state_dir)

    @property
    def kafka_dir(self) -> Path:
        return self.state_dir / "kafka"

    @property
    def postgres_dir(self) -> Path:
        return self.state_dir / "postgres"

    @property
    def s3_dir(self) -> Path:
        return self.state_dir / "s3"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    def log_file(self, service: str) -> Path:
        return self.logs_dir / f"{service}.log"

    def pid_file(self, service: str) -> Path:
        return self.run_dir / f"{service}.pid"


def repo_deploy_dir() -> Path:
    """Return deploy/local of the source checkout, which contains the Kafka pom.

    Raises FileNotFoundError when the package runs from an installed wheel without the checkout.
    """
    folder = Path(__file__).resolve().parents[2] / "deploy" / "local"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} not found; run spanline stack from a source checkout (pip install -e .)"
        )
    return folder
