"""Named crash points, for the tests that kill the pipeline mid-stage and check it recovers.

`MEDGOV_FAULT=<point>` kills the process with SIGKILL when it reaches that point (no
cleanup, no `finally`: what a power cut or an OOM kill does). `<point>@<ms>` kills it that
many milliseconds *after* the point, while the next operation (a Delta MERGE, say) runs.
Unset, a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import threading
import time


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def point(name: str) -> None:
    """Crash here when `MEDGOV_FAULT` names this point."""
    spec = os.environ.get("MEDGOV_FAULT")
    if not spec:
        return
    target, _, delay = spec.partition("@")
    if target != name:
        return
    if not delay:
        _kill()

    def later() -> None:
        time.sleep(int(delay) / 1000)
        _kill()

    threading.Thread(target=later, daemon=True).start()
