"""deploy/: the systemd unit, the Dockerfile and the container's configuration.

No test here needs docker or a running systemd: the unit is checked with `systemd-analyze
verify` where that is installed, and every file is read for what the README promises.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from zanzara.config import load_config

from command import ZANZARA

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNIT = DEPLOY / "zanzara.service"
INSTALLED = "/opt/zanzara/bin/zanzara"


def unit_entries() -> dict[str, list[tuple[str, str]]]:
    """The unit file's sections and their (key, value) entries, in order (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for number, line in enumerate(UNIT.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if header := re.fullmatch(r"\[(\w+)\]", line):
            current = sections.setdefault(header.group(1), [])
            continue
        key, sep, value = line.partition("=")
        assert current is not None and sep and re.fullmatch(r"[A-Za-z]+", key), f"line {number}: {line!r}"
        current.append((key, value))
    return sections


def test_unit_file_parses_and_runs_the_command_with_its_checks() -> None:
    sections = unit_entries()
    assert set(sections) == {"Unit", "Service", "Install"}
    service = dict(sections["Service"])
    assert service["ExecStart"] == f"{INSTALLED} -c /etc/zanzara/zanzara.toml"
    assert service["ExecStartPre"] == f"{INSTALLED} check-config /etc/zanzara/zanzara.toml"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillSignal"] == "SIGTERM"
    assert service["RestartPreventExitStatus"] == "2"  # configuration and store errors
    assert service["Environment"] == "ZANZARA_DATA_DIR=/var/lib/zanzara"
    assert service["StateDirectory"] == "zanzara"
    for hardening in ("DynamicUser", "NoNewPrivileges", "ProtectHome", "PrivateTmp", "RestrictSUIDSGID"):
        assert service[hardening] == "yes", hardening
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""


def test_unit_file_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the unit file is only parsed, not verified")
    # verify checks that the commands exist: point them at the zanzara under test.
    unit = tmp_path / "zanzara.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace(INSTALLED, str(ZANZARA)), encoding="utf-8")
    out = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stderr == "", out.stderr  # unknown keys are only warned about


def test_container_configuration_is_valid_and_listens_everywhere() -> None:
    config = load_config(DEPLOY / "zanzara.toml")
    assert [(lc.host, lc.port, lc.protocol) for lc in config.listeners] == [
        ("0.0.0.0", 1883, "mqtt"),
        ("0.0.0.0", 8083, "ws"),
    ]
    assert config.sqlite_path == "/var/lib/zanzara/zanzara.db"
    assert config.allow_anonymous is False
    assert load_config(DEPLOY / "zanzara.toml", {"ZANZARA_ALLOW_ANONYMOUS": "true"}).allow_anonymous


def test_dockerfile() -> None:
    lines = [
        line.strip()
        for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    instructions = [line.split(None, 1) for line in lines if re.match(r"^[A-Z]+\s", line)]
    assert instructions[0] == ["FROM", "python:3.11-slim"]
    users = [value for name, value in instructions if name == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert ["VOLUME", '["/var/lib/zanzara"]'] in instructions
    assert ["EXPOSE", "1883 8083 18083"] in instructions
    assert ["COPY", "deploy/zanzara.toml /etc/zanzara/zanzara.toml"] in instructions
    assert instructions[-1] == ["CMD", '["-c", "/etc/zanzara/zanzara.toml"]']
