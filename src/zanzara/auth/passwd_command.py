"""``zanzara passwd``: manage a password file the way ``mosquitto_passwd`` does.

    zanzara passwd [-c] [-I N] FILE USER            prompt for the password (twice)
    zanzara passwd [-c] [-I N] -b FILE USER PASS    password on the command line
    zanzara passwd -D FILE USER                     delete USER

``-c`` creates FILE, replacing any existing one; without it FILE must exist.
The file is rewritten atomically (see :meth:`PasswordFile.save`), so a broker
reading it concurrently never sees half a file.  Errors are one line on stderr
and exit status 1; usage errors exit 2, as argparse does.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable

from ..errors import ConfigError
from .passwd import DEFAULT_ITERATIONS, PasswordFile, validate_username

__all__ = ["passwd_main"]

PROG = "zanzara passwd"
EXIT_ERROR = 1


def _iterations(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Manage a Mosquitto-compatible password file (like mosquitto_passwd)."
    )
    parser.add_argument(
        "-c", dest="create", action="store_true", help="create FILE, replacing any existing one"
    )
    parser.add_argument(
        "-b", dest="batch", action="store_true", help="take the password from the command line"
    )
    parser.add_argument(
        "-D", dest="delete", action="store_true", help="delete USER instead of setting a password"
    )
    parser.add_argument(
        "-I",
        dest="iterations",
        type=_iterations,
        default=DEFAULT_ITERATIONS,
        metavar="N",
        help=f"PBKDF2 iterations (default {DEFAULT_ITERATIONS}, as mosquitto_passwd)",
    )
    parser.add_argument("file", metavar="FILE")
    parser.add_argument("username", metavar="USER")
    parser.add_argument("password", metavar="PASSWORD", nargs="?", help="only with -b")
    return parser


def _error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _usage_problem(args: argparse.Namespace) -> str | None:
    if args.create and args.delete:
        return "-c and -D cannot be used together"
    if args.delete and (args.batch or args.password is not None):
        return "-D takes no password"
    if args.batch and args.password is None:
        return "-b needs a PASSWORD argument"
    if not args.batch and args.password is not None:
        # Without -b a stray third word is more likely a mistake than a password.
        return "a PASSWORD on the command line needs -b"
    return None


def _ask_password(prompt: Callable[[str], str]) -> str | None:
    """Prompt twice; None (after reporting why) unless both answers agree."""
    try:
        first = prompt("Password: ")
        second = prompt("Reenter password: ")
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)
        _error("no password entered")
        return None
    if first != second:
        _error("passwords do not match")
        return None
    if not first:
        _error("empty password")
        return None
    return first


def _open(args: argparse.Namespace) -> PasswordFile | None:
    if args.create:
        return PasswordFile()
    try:
        return PasswordFile.load(args.file)
    except FileNotFoundError:
        _error(f"{args.file}: no such file (use -c to create it)")
    except OSError as exc:
        _error(f"{args.file}: {exc.strerror or exc}")
    except ConfigError as exc:
        _error(str(exc))
    return None


def passwd_main(argv: list[str], *, prompt: Callable[[str], str] = getpass.getpass) -> int:
    """Run ``zanzara passwd`` with ``argv`` (without the program name); the exit status.

    ``prompt`` reads a password without echo; tests replace it.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse has already printed usage or help; hand back its status instead of exiting.
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    problem = _usage_problem(args)
    if problem is not None:
        parser.print_usage(sys.stderr)
        return _error(problem)
    username: str = args.username
    try:
        validate_username(username)
    except ConfigError as exc:
        return _error(str(exc))

    pwfile = _open(args)
    if pwfile is None:
        return EXIT_ERROR
    if args.delete:
        if username not in pwfile:
            return _error(f"user {username!r} not found in {args.file}")
        pwfile.delete(username)
    else:
        password = args.password if args.batch else _ask_password(prompt)
        if password is None:
            return EXIT_ERROR
        print(f"{'Updating' if username in pwfile else 'Adding'} password for user {username}")
        pwfile.set(username, password, iterations=args.iterations)
    try:
        pwfile.save(args.file)
    except OSError as exc:
        return _error(f"{args.file}: cannot write: {exc.strerror or exc}")
    return 0
