"""zanzara.auth.passwd and `zanzara passwd`, checked against the real mosquitto_passwd and mosquitto.

Compatibility is tested both ways: files made by mosquitto_passwd verify here,
and files written here let clients log in to a real Mosquitto broker.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from zanzara.auth.passwd import PasswordFile, hash_password
from zanzara.auth.passwd_command import passwd_main
from zanzara.errors import ConfigError

from peers import require


def mosquitto_passwd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("mosquitto_passwd"), *args], capture_output=True, text=True, timeout=30, check=True
    )


def mosquitto_broker() -> str:
    # The broker lives in /usr/sbin, which is not on every PATH; missing means fail, never skip.
    path = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    if path is None:
        pytest.fail("mosquitto (the broker) is not installed; apt-get install mosquitto")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mosquitto_with_password_file(tmp_path: Path, password_file: Path) -> Iterator[int]:
    """A real Mosquitto on a free loopback port that authenticates against ``password_file``."""
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    # Run as ourselves: started as root, Mosquitto would switch to user "mosquitto",
    # which cannot read a 0600 file we own.
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous false\n"
        f"password_file {password_file}\n"
        f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
    )
    proc = subprocess.Popen(
        [mosquitto_broker(), "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                output = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"mosquitto exited with {proc.returncode}:\n{output}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("mosquitto did not start listening")
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def mosquitto_login(port: int, username: str, password: str) -> int:
    """Exit status of a mosquitto_pub that logs in and publishes one message."""
    result = subprocess.run(
        [
            require("mosquitto_pub"),
            *f"-h 127.0.0.1 -p {port} -t auth/test -m hello".split(),
            *("-u", username, "-P", password),  # may hold spaces, so not split
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.returncode


# --- files made by mosquitto_passwd ------------------------------------------------------------


def test_verifies_pbkdf2_file_made_by_mosquitto_passwd(tmp_path):
    path = tmp_path / "pw"
    mosquitto_passwd("-c", "-b", str(path), "alice", "secret")
    mosquitto_passwd("-b", str(path), "bob", "pässwörd with spaces")
    assert re.fullmatch(
        r"alice:\$7\$101\$[A-Za-z0-9+/=]{16}\$[A-Za-z0-9+/=]{88}", path.read_text().splitlines()[0]
    )

    pwfile = PasswordFile.load(path)
    assert list(pwfile) == ["alice", "bob"]
    assert pwfile.verify("alice", "secret")
    assert pwfile.verify("alice", b"secret")
    assert not pwfile.verify("alice", "Secret")
    assert not pwfile.verify("alice", "")
    assert pwfile.verify("bob", "pässwörd with spaces")
    assert pwfile.verify("bob", "pässwörd with spaces".encode())
    assert not pwfile.verify("bob", "secret")
    assert not pwfile.verify("carol", "secret")


def test_verifies_legacy_sha512_file_made_by_mosquitto_passwd(tmp_path):
    path = tmp_path / "pw"
    mosquitto_passwd("-H", "sha512", "-c", "-b", str(path), "old", "hunter2")
    assert path.read_text().startswith("old:$6$")

    pwfile = PasswordFile.load(path)
    assert pwfile.verify("old", "hunter2")
    assert not pwfile.verify("old", "hunter3")


def test_mosquitto_passwd_edits_a_file_we_wrote(tmp_path):
    path = tmp_path / "pw"
    pwfile = PasswordFile()
    pwfile.set("alice", "secret")
    pwfile.set("bob", "builder")
    pwfile.save(path)

    mosquitto_passwd("-b", str(path), "carol", "c4r0l")
    mosquitto_passwd("-D", str(path), "bob")

    reloaded = PasswordFile.load(path)
    assert list(reloaded) == ["alice", "carol"]
    assert reloaded.verify("alice", "secret")
    assert reloaded.verify("carol", "c4r0l")


# --- files we write, judged by a real Mosquitto ------------------------------------------------


def test_mosquitto_accepts_file_written_by_password_file(tmp_path):
    path = tmp_path / "pw"
    pwfile = PasswordFile()
    pwfile.set("alice", "secret")
    pwfile.set("slow", "many rounds", iterations=1000)
    pwfile.set("unicode", "пароль ✓")
    pwfile.save(path)

    with mosquitto_with_password_file(tmp_path, path) as port:
        assert mosquitto_login(port, "alice", "secret") == 0
        assert mosquitto_login(port, "slow", "many rounds") == 0
        assert mosquitto_login(port, "unicode", "пароль ✓") == 0
        assert mosquitto_login(port, "alice", "wrong") != 0
        assert mosquitto_login(port, "slow", "secret") != 0
        assert mosquitto_login(port, "nobody", "secret") != 0


def test_mosquitto_accepts_file_written_by_passwd_command(tmp_path, capsys):
    path = tmp_path / "pw"
    assert passwd_main(["-c", "-b", str(path), "alice", "secret"]) == 0
    assert passwd_main(["-b", str(path), "bob", "builder"]) == 0
    assert passwd_main(["-D", str(path), "alice"]) == 0

    with mosquitto_with_password_file(tmp_path, path) as port:
        assert mosquitto_login(port, "bob", "builder") == 0
        assert mosquitto_login(port, "bob", "wrong") != 0
        assert mosquitto_login(port, "alice", "secret") != 0


# --- parsing ---------------------------------------------------------------------------------

GOOD = "alice:" + hash_password("secret")
SALT = "AAAAAAAAAAAAAAAA"  # 12 zero bytes
DIGEST = "A" * 86 + "=="  # 64 zero bytes


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("alice", "expected username:hash"),
        ("alice:", "must start with $6$ or $7$"),
        ("alice:plaintext", "plain-text passwords are not accepted"),
        (":" + GOOD.partition(":")[2], "empty username"),
        (GOOD + ":extra", "expected username:hash"),
        ("alice:$5$" + SALT + "$" + DIGEST, "unsupported hash type $5$"),
        ("alice:$7$" + SALT + "$" + DIGEST, "$7$iterations$salt$hash"),
        ("alice:$7$0$" + SALT + "$" + DIGEST, "invalid iteration count '0'"),
        ("alice:$7$abc$" + SALT + "$" + DIGEST, "invalid iteration count 'abc'"),
        ("alice:$7$-5$" + SALT + "$" + DIGEST, "invalid iteration count '-5'"),
        ("alice:$7$101$AAAA$" + DIGEST, "salt is 3 bytes, expected 12"),
        ("alice:$7$101$" + SALT + "$AAAA", "hash is 3 bytes, expected 64"),
        ("alice:$7$101$not*base64!!$" + DIGEST, "salt is not valid base64"),
        ("alice:$6$" + SALT, "$6$salt$hash"),
        ("alice:$6$" + SALT + "$" + DIGEST + "$x", "$6$salt$hash"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, problem):
    path = tmp_path / "pw"
    path.write_text(f"# users\n{GOOD.replace('alice', 'zed')}\n{line}\n")
    with pytest.raises(ConfigError) as info:
        PasswordFile.load(path)
    assert info.value.field == f"{path}:3"
    assert problem in info.value.problem
    assert str(info.value).startswith(f"{path}:3: ")


def test_duplicate_user_is_an_error(tmp_path):
    path = tmp_path / "pw"
    path.write_text(f"{GOOD}\n\n{GOOD}\n")
    with pytest.raises(ConfigError, match=r":3: duplicate user 'alice'"):
        PasswordFile.load(path)


def test_invalid_utf8_is_an_error(tmp_path):
    path = tmp_path / "pw"
    path.write_bytes(b"\xff\xfe:" + GOOD.partition(":")[2].encode() + b"\n")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        PasswordFile.load(path)


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        PasswordFile.load(tmp_path / "absent")


def test_comments_blank_lines_whitespace_and_crlf(tmp_path):
    path = tmp_path / "pw"
    bob = hash_password("builder")
    path.write_bytes(
        f"# a comment\r\n\r\n   \r\n  {GOOD}  \r\n\t# indented comment\r\nbob :\t{bob}\r\n".encode()
    )
    pwfile = PasswordFile.load(path)
    assert list(pwfile) == ["alice", "bob"]
    assert pwfile.verify("alice", "secret")
    assert pwfile.verify("bob", "builder")


def test_empty_file_has_no_users(tmp_path):
    path = tmp_path / "pw"
    path.write_text("")
    pwfile = PasswordFile.load(path)
    assert len(pwfile) == 0
    assert not pwfile.verify("alice", "")


# --- hashing, editing, saving -------------------------------------------------------------------


def test_hash_password_format_and_fresh_salt():
    first, second = hash_password("secret"), hash_password("secret")
    assert re.fullmatch(r"\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==", first)
    assert first != second  # a new salt every time
    assert hash_password("secret", iterations=7).startswith("$7$7$")
    with pytest.raises(ValueError):
        hash_password("secret", iterations=0)


def test_set_replaces_and_delete_removes():
    pwfile = PasswordFile()
    pwfile.set("alice", "one")
    pwfile.set("alice", "two")
    assert not pwfile.verify("alice", "one")
    assert pwfile.verify("alice", "two")
    assert "alice" in pwfile
    pwfile.delete("alice")
    assert "alice" not in pwfile
    assert not pwfile.verify("alice", "two")
    with pytest.raises(KeyError):
        pwfile.delete("alice")


def test_binary_password_round_trips(tmp_path):
    password = bytes(range(1, 256))
    pwfile = PasswordFile()
    pwfile.set("bin", password)
    pwfile.save(tmp_path / "pw")
    assert PasswordFile.load(tmp_path / "pw").verify("bin", password)


@pytest.mark.parametrize("username", ["", "a:b", "new\nline", "tab\there", "del\x7f"])
def test_set_rejects_usernames_that_would_corrupt_the_file(username):
    with pytest.raises(ConfigError):
        PasswordFile().set(username, "secret")


def test_save_is_0600_round_trips_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "pw"
    path.write_text("")
    path.chmod(0o644)
    pwfile = PasswordFile()
    pwfile.set("alice", "secret")
    pwfile.set("bob", "builder")
    pwfile.save(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pw"]
    assert path.read_text() == pwfile.dumps()
    assert [line.split(":")[0] for line in path.read_text().splitlines()] == ["alice", "bob"]
    reloaded = PasswordFile.load(path)
    assert reloaded.verify("alice", "secret")
    assert reloaded.verify("bob", "builder")


def test_failed_save_keeps_the_old_file_and_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "pw"
    path.write_text(GOOD + "\n")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    pwfile = PasswordFile()
    pwfile.set("bob", "builder")
    with pytest.raises(OSError, match="disk on fire"):
        pwfile.save(path)
    assert path.read_text() == GOOD + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pw"]


# --- zanzara passwd ------------------------------------------------------------------------------


def answers(*replies: str):
    """A prompt that gives ``replies`` in order and records what it was asked."""
    asked: list[str] = []
    queue = list(replies)

    def prompt(question: str) -> str:
        asked.append(question)
        if not queue:
            raise EOFError
        return queue.pop(0)

    prompt.asked = asked  # type: ignore[attr-defined]
    return prompt


def test_command_batch_create_add_update_delete(tmp_path, capsys):
    path = tmp_path / "pw"
    assert passwd_main(["-c", "-b", str(path), "alice", "secret"]) == 0
    assert "Adding password for user alice" in capsys.readouterr().out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    assert passwd_main(["-b", str(path), "bob", "builder"]) == 0
    assert passwd_main(["-b", str(path), "alice", "changed"]) == 0
    assert "Updating password for user alice" in capsys.readouterr().out
    pwfile = PasswordFile.load(path)
    assert list(pwfile) == ["alice", "bob"]
    assert pwfile.verify("alice", "changed")
    assert pwfile.verify("bob", "builder")

    assert passwd_main(["-D", str(path), "alice"]) == 0
    assert list(PasswordFile.load(path)) == ["bob"]


def test_command_create_overwrites_existing_file(tmp_path):
    path = tmp_path / "pw"
    path.write_text(GOOD + "\n")
    assert passwd_main(["-c", "-b", str(path), "bob", "builder"]) == 0
    assert list(PasswordFile.load(path)) == ["bob"]


def test_command_iterations_flag(tmp_path):
    path = tmp_path / "pw"
    assert passwd_main(["-c", "-b", "-I", "500", str(path), "alice", "secret"]) == 0
    assert path.read_text().startswith("alice:$7$500$")
    assert PasswordFile.load(path).verify("alice", "secret")


def test_command_prompts_twice(tmp_path):
    path = tmp_path / "pw"
    prompt = answers("secret", "secret")
    assert passwd_main(["-c", str(path), "alice"], prompt=prompt) == 0
    assert prompt.asked == ["Password: ", "Reenter password: "]
    assert PasswordFile.load(path).verify("alice", "secret")


@pytest.mark.parametrize(
    ("replies", "message"),
    [
        (("secret", "secrets"), "passwords do not match"),
        (("", ""), "empty password"),
        (("secret",), "no password entered"),
    ],
)
def test_command_prompt_failures_change_nothing(tmp_path, capsys, replies, message):
    path = tmp_path / "pw"
    path.write_text(GOOD + "\n")
    assert passwd_main([str(path), "bob"], prompt=answers(*replies)) == 1
    assert message in capsys.readouterr().err
    assert path.read_text() == GOOD + "\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-c", "-D", "{f}", "alice"], "-c and -D cannot be used together"),
        (["-D", "-b", "{f}", "alice", "pw"], "-D takes no password"),
        (["-b", "{f}", "alice"], "-b needs a PASSWORD"),
        (["{f}", "alice", "secret"], "needs -b"),
        (["-b", "{f}", "a:b", "secret"], "must not contain ':'"),
        (["-D", "{f}", "nobody"], "user 'nobody' not found"),
        (["-b", "{f}.absent", "alice", "secret"], "no such file (use -c to create it)"),
        (["-I", "0", "-b", "{f}", "alice", "secret"], "must be at least 1"),
    ],
)
def test_command_errors(tmp_path, capsys, argv, message):
    path = tmp_path / "pw"
    path.write_text(GOOD + "\n")
    status = passwd_main([arg.replace("{f}", str(path)) for arg in argv])
    assert status != 0
    assert message in capsys.readouterr().err
    assert path.read_text() == GOOD + "\n"


def test_command_missing_arguments_is_a_usage_error(capsys):
    assert passwd_main([]) == 2
    assert "usage: zanzara passwd" in capsys.readouterr().err


def test_command_reports_malformed_file_with_line(tmp_path, capsys):
    path = tmp_path / "pw"
    path.write_text(f"{GOOD}\nbroken\n")
    assert passwd_main(["-b", str(path), "bob", "builder"]) == 1
    assert f"{path}:2: expected username:hash" in capsys.readouterr().err
    assert path.read_text() == f"{GOOD}\nbroken\n"
