"""Where the cluster finds the application it serves: ``module:attr``, or the default."""

from __future__ import annotations

import importlib
from typing import Any

DEFAULT_TARGET = "cluster.store.server:factory"  # the sharded Redis-protocol store


def loadTarget(target: str | None) -> Any:
    """Import ``module:attr`` and return the attribute (the default app when None)."""
    target = target or DEFAULT_TARGET
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"TARGET must look like module:attr, not {target!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def resolveFactory(obj: Any) -> Any:
    """A Factory as is; a zero-argument callable is called once for one."""
    if hasattr(obj, "buildProtocol"):
        return obj
    if callable(obj):
        factory = obj()
        if hasattr(factory, "buildProtocol"):
            return factory
        raise TypeError(f"{obj!r}() returned {factory!r}, which is not a Factory")
    raise TypeError(f"{obj!r} is neither a Factory nor a callable returning one")


def routeKeyFunction(obj: Any) -> Any:
    """The ``routeKey(preamble) -> key | None`` the app offers for key routing."""
    func = getattr(obj, "routeKey", None)
    if func is None and callable(obj) and not hasattr(obj, "buildProtocol"):
        func = getattr(obj(), "routeKey", None)
    if func is None:
        raise ValueError("route = key needs the TARGET factory to define routeKey(preamble)")
    return func
