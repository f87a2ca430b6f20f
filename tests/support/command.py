"""The `zanzara` command as a process: where it is installed, a free port for it, and start()."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

ZANZARA = Path(sys.executable).with_name("zanzara")
# What the broker logs once every listener is up (Broker.serve_forever), in text and JSON logs.
READY = "ready ("


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_until_ready(proc: subprocess.Popen[str]) -> tuple[bool, str]:
    """The command's log (stderr) up to its "ready" line: (True, lines), or (False, all) if it exited.

    What comes after stays in the pipe, for ``proc.communicate()``.
    """
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if READY in line:
            return True, "".join(lines)
    return False, "".join(lines)


def start(*args: str, cwd: Path | None = None) -> tuple[subprocess.Popen[str], str]:
    """Start ``zanzara *args``; returns it and its log up to "ready" (which names every listener)."""
    proc = subprocess.Popen(
        [str(ZANZARA), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd
    )
    _, log = read_until_ready(proc)
    return proc, log
