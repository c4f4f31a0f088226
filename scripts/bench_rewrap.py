"""Measure `govern keys rewrap` throughput: N data keys on a scratch database, rotate, rewrap.

Usage: .venv/bin/python scripts/bench_rewrap.py [COUNT] [DATABASE_URL]
(default 50000 on a temporary SQLite file; pass a postgresql+psycopg URL of an empty database for PG)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from govern.vault.keys import rewrap_all  # noqa: E402
from tests.vault.test_keys import Installation  # noqa: E402


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    with tempfile.TemporaryDirectory() as tmp:
        url = sys.argv[2] if len(sys.argv) > 2 else f"sqlite:///{tmp}/bench.db"
        inst = Installation(Path(tmp), url)
        inst.seed(count)
        for batch_size in (2000, 5000):
            assert inst.run("keys", "rotate").exit_code == 0
            keyring = inst.keyring()
            cpu = time.process_time()
            result = rewrap_all(inst.db.sessionmaker, keyring, batch_size=batch_size)
            cpu = time.process_time() - cpu
            print(f"{url.split(':')[0]}: rewrapped {result.rewrapped} data keys in {result.seconds:.2f} s wall "
                  f"= {result.rewrapped / result.seconds:,.0f}/s; {cpu:.2f} s CPU of this process "
                  f"= {result.rewrapped / cpu:,.0f}/CPU-s (batch {batch_size}, {result.batches} batches)")
        inst.db.engine.dispose()


if __name__ == "__main__":
    main()
