"""One error tree: every exception class the app defines descends from errors.Failure, and the
tree drawn in errors.py's docstring names each of them (where it lives, what it means)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import functions
from functions import errors


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(functions.__path__, prefix="functions."):
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_exception_the_app_defines_is_a_failure_drawn_in_the_tree():
    classes = _exception_classes()
    assert len(classes) >= 20  # the walk found the app's modules
    outside = [name for name, cls in classes.items() if not issubclass(cls, errors.Failure)]
    assert outside == []
    undrawn = [name for name, cls in classes.items() if not re.search(rf"\b{cls.__name__}\b", errors.__doc__ or "")]
    assert undrawn == []


def test_the_tree_keeps_the_builtin_bases_callers_relied_on():
    from functions.connections import ConnectionNotFound
    from functions.microsoft.wire import MalformedBatch
    from functions.signin.flow import BadRequest

    assert issubclass(errors.NotFound, LookupError) and issubclass(ConnectionNotFound, LookupError)
    assert issubclass(MalformedBatch, ValueError) and issubclass(BadRequest, ValueError)
    assert issubclass(errors.SettingsError, RuntimeError) and issubclass(errors.StorageUnavailable, RuntimeError)
