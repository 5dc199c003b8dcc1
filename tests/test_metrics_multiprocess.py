"""Multiprocess metrics without a server hook: a dead worker's live gauges are forgotten."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from skill.observability import forget_dead_processes

WORKER = """
import os
from prometheus_client import Gauge
gauge = Gauge("in_flight", "x", multiprocess_mode="livesum")
gauge.inc(3)  # requests in flight when the worker died
print(os.getpid())
"""


def test_a_dead_workers_in_flight_gauge_is_dropped_at_the_next_scrape(tmp_path: Path):
    environ = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    died = subprocess.run(
        [sys.executable, "-c", WORKER], env=environ, capture_output=True, text=True, check=True
    )
    pid = int(died.stdout)
    assert (tmp_path / f"gauge_livesum_{pid}.db").exists()
    mine = tmp_path / f"gauge_livesum_{os.getpid()}.db"
    mine.write_bytes(b"")  # this process is alive: its gauges stay

    assert forget_dead_processes(str(tmp_path)) == [pid]
    assert not (tmp_path / f"gauge_livesum_{pid}.db").exists()
    assert mine.exists()
