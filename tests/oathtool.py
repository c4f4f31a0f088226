"""Debian's oathtool, an independent TOTP implementation the tests compare govern's codes with."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime

from tests.support import require_service


def oathtool_totp(key: bytes, at: datetime, *, algorithm: str = "SHA1", digits: int = 6, period: int = 30) -> str:
    """The code oathtool computes for the raw ``key`` at ``at`` (given in hex: no base32 involved)."""
    require_service("oathtool", shutil.which("oathtool") is not None, "apt-get install oathtool")
    command = ["oathtool", f"--totp={algorithm.lower()}", f"--digits={digits}", f"--time-step-size={period}s",
               "--now", at.strftime("%Y-%m-%d %H:%M:%S UTC"), key.hex()]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=10).stdout.strip()  # noqa: S603
