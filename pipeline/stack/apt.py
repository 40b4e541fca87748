"""Debian packages the local stack needs, installed with apt-get when missing."""

from __future__ import annotations

import logging
import os
import subprocess

logger = logging.getLogger(__name__)

# mmdebstrap builds the TimescaleDB root folder; chromium runs the browser demo.
REQUIRED_PACKAGES = ("mmdebstrap", "chromium")


def is_installed(package: str) -> bool:
    """Return whether dpkg reports `package` as installed."""
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package],
        capture_output=True,
        text=True,
    )
    return result.returncode == 0 and result.stdout.strip().endswith(" installed")


def ensure_packages(packages: tuple[str, ...] = REQUIRED_PACKAGES) -> list[str]:
    """Install the packages dpkg does not report as installed; return the ones installed.

    Runs `apt-get update` once, only when something is missing. Raises PermissionError when a
    package is missing and the process is not root.
    """
    missing = [package for package in packages if not is_installed(package)]
    if not missing:
        return []
    if os.geteuid() != 0:
        raise PermissionError(
            f"Debian packages missing: {' '.join(missing)}; run as root or install them with "
            f"sudo apt-get install -y {' '.join(missing)}"
        )

    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print("apt: apt-get update", flush=True)
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    print(f"apt: apt-get install -y {' '.join(missing)} (can take a few minutes)", flush=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", *missing],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    logger.info("debian packages installed packages=%s", ",".join(missing))
    return missing
