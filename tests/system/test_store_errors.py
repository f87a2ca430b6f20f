"""A store that cannot be opened stops the `zanzara` command with one line naming the path or
setting, and exit status 2 (as a configuration error), never a traceback or "cannot listen"."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from command import ZANZARA, free_port

EXIT_STORE_ERROR = 2


def run(tmp_path: Path, settings: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "zanzara.toml"
    cfg.write_text(f'{settings}\n[[listeners]]\nhost = "127.0.0.1"\nport = {free_port()}\n', encoding="utf-8")
    return subprocess.run(
        [str(ZANZARA), "-c", str(cfg)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def the_error(out: subprocess.CompletedProcess[str]) -> str:
    """The one line that says what is wrong (and there is exactly one, and no traceback)."""
    assert out.returncode == EXIT_STORE_ERROR, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    assert "cannot listen" not in out.stderr, out.stderr
    errors = [line for line in out.stderr.splitlines() if " ERROR " in line or "config error" in line]
    assert len(errors) == 1, out.stderr
    return errors[0]


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a folder", encoding="utf-8")
    line = the_error(run(tmp_path, ""))
    assert f"{tmp_path / 'data'} is not a directory" in line, line


def test_data_dir_below_a_file(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("not a folder", encoding="utf-8")
    line = the_error(run(tmp_path, 'data_dir = "plain/state"\n'))
    assert str(tmp_path / "plain") in line, line


def test_missing_data_dir_is_created(tmp_path: Path) -> None:
    # Not an error: the broker makes it, parents included.
    proc = subprocess.Popen(
        [str(ZANZARA), "--port", str(free_port()), "--ws-port", "0"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ZANZARA_DATA_DIR": "new/state"},
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "ready (" in line:
                break
        assert (tmp_path / "new" / "state" / "zanzara.db").is_file()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert proc.returncode == 0


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` made unwritable, for root too (which ignores permissions) where chattr works."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip(
            "running as root, which writes into read-only folders, and chattr +i is not available here"
        )
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


def test_read_only_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with read_only(data):
        line = the_error(run(tmp_path, ""))
    assert str(data / "zanzara.db") in line, line


def test_corrupt_database(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "zanzara.db").write_bytes(b"this is no SQLite database, " * 200)
    line = the_error(run(tmp_path, ""))
    assert f"database {tmp_path / 'data' / 'zanzara.db'} is not a SQLite database or is damaged" in line


def test_unreachable_redis(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    line = the_error(run(tmp_path, f'[storage]\nbackend = "redis"\nurl = "{url}"\n'))
    assert f"redis store at {url} unavailable (storage.url)" in line, line


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "redis://127.0.0.1:port/0"])
def test_malformed_redis_url(tmp_path: Path, url: str) -> None:
    line = the_error(run(tmp_path, f'[storage]\nbackend = "redis"\nurl = "{url}"\n'))
    assert "config error: storage.url: " in line, line
