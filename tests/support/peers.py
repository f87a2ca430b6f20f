"""The real peers the tests talk to: external tools (``require``) and MQTT.js in tests/js (``JS_DIR``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# Real JavaScript peers: MQTT.js for Node (peer.mjs) and its browser bundle (browser.html).
JS_DIR = Path(__file__).resolve().parents[1] / "js"


def require(tool: str) -> str:
    """Path of a required external tool; fails loudly (never skips) when missing."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed; `make test` installs it (apt-get install mosquitto-clients)")
    return path
