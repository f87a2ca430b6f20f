"""The `zanzara` command as a process: where it is installed, a free port for it, and start()."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

ZANZARA = Path(sys.executable).with_name("zanzara")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(*args: str, cwd: Path | None = None) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [str(ZANZARA), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line
