"""Every public class in ``zanzara`` has a docstring of its own (issue 12, point 4).

A public class is one whose name does not start with ``_``, defined in the module being
walked (re-exports are checked where they are defined).  Its own ``__doc__`` must be
non-empty: a docstring inherited from a base (``inspect.getdoc`` falls back to it) says what
the base is for, not the class, and the signature a dataclass or ``NamedTuple`` writes when
none is given (``Name(field, ...)``) says nothing a reader of ``help()`` did not already see.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import zanzara

# Not walked: importing it runs the command line.
NOT_IMPORTABLE = {"zanzara.__main__"}


def _modules() -> list[ModuleType]:
    names = [zanzara.__name__]
    names += [m.name for m in pkgutil.walk_packages(zanzara.__path__, prefix="zanzara.")]
    return [importlib.import_module(n) for n in sorted(names) if n not in NOT_IMPORTABLE]


def _public_classes(module: ModuleType) -> list[type]:
    found = {
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and obj.__module__ == module.__name__ and not obj.__name__.startswith("_")
    }
    return sorted(found, key=lambda cls: cls.__qualname__)


def _undocumented(cls: type) -> bool:
    own = cls.__dict__.get("__doc__")
    if not isinstance(own, str) or not own.strip():
        return True
    if own.startswith(f"{cls.__name__}("):  # written by @dataclass or NamedTuple
        return True
    return not inspect.getdoc(cls)


@pytest.mark.parametrize("module", _modules(), ids=lambda m: m.__name__)
def test_every_public_class_has_a_docstring(module: ModuleType) -> None:
    missing = [cls.__qualname__ for cls in _public_classes(module) if _undocumented(cls)]
    assert missing == [], f"{module.__name__}: no docstring on {', '.join(missing)}"


def test_the_walk_finds_the_package() -> None:
    # Guards the test above against passing vacuously (a walk that imports nothing).
    walked = {m.__name__ for m in _modules()}
    assert {"zanzara.session", "zanzara.storage", "zanzara.backends.batch"} <= walked
    assert sum(len(_public_classes(m)) for m in _modules()) > 100
