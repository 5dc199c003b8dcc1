"""Whether this server is draining: SIGTERM came, and a balancer must stop sending first.

The flag lives in shared memory made when this module is imported — in the server's
main process, before it forks the admin process and the workers — so the main process
sets it and every process's /healthz reads it (503), while requests are still answered
until the drain ends and the server stops as before.
"""

from __future__ import annotations

import multiprocessing

_DRAINING = multiprocessing.Value("b", 0, lock=False)


def start_draining() -> None:
    _DRAINING.value = 1


def draining() -> bool:
    return bool(_DRAINING.value)
