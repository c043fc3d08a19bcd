"""Failure: an exception captured with its traceback, so it can travel down an errback chain.

A Failure keeps the live traceback only until ``cleanFailure`` is called (Deferreds do
that when a chain ends in one): from then on it holds the formatted text instead, so a
stored Failure does not keep every frame of the failing call stack alive.
"""

from __future__ import annotations

import sys
import traceback
from types import TracebackType
from typing import Any, NoReturn


class NoCurrentExceptionError(Exception):
    """``Failure()`` was called outside an ``except`` block."""


class Failure:
    """An exception with its type and traceback; what errbacks receive."""

    __slots__ = ("type", "value", "tb", "_tbText", "__weakref__")

    def __init__(
        self,
        exc_value: BaseException | None = None,
        exc_type: type[BaseException] | None = None,
        exc_tb: TracebackType | None = None,
    ) -> None:
        if exc_value is None:
            exc_type, exc_value, exc_tb = sys.exc_info()
            if exc_value is None:
                raise NoCurrentExceptionError("Failure() needs an exception or an except block")
        elif isinstance(exc_value, Failure):
            exc_type, exc_tb = exc_value.type, exc_value.tb
            self._tbText = exc_value._tbText
            exc_value = exc_value.value
        if exc_type is None:
            exc_type = type(exc_value)
        if exc_tb is None:
            exc_tb = exc_value.__traceback__
        self.type = exc_type
        self.value = exc_value
        self.tb = exc_tb
        if not hasattr(self, "_tbText"):
            self._tbText = None

    def cleanFailure(self) -> None:
        """Replace the live traceback by its text, releasing the frames it references."""
        if self.tb is not None:
            self._tbText = self._format()
            self.tb = None
            self.value.__traceback__ = None

    def _format(self) -> str:
        lines = traceback.format_exception(self.type, self.value, self.tb)
        return "".join(lines)

    def getTraceback(self) -> str:
        """The traceback as text, ending with the exception line."""
        if self._tbText is not None:
            return self._tbText
        return self._format()

    def getErrorMessage(self) -> str:
        """The exception's message (its ``str``), or its ``repr`` if that is empty."""
        text = str(self.value)
        return text if text else repr(self.value)

    def check(self, *errorTypes: type[BaseException] | str) -> Any:
        """Return the first of ``errorTypes`` this failure is an instance of, else None."""
        for err in errorTypes:
            if isinstance(err, str):
                if any(_qualname(k) == err for k in self.type.__mro__):
                    return err
            elif issubclass(self.type, err):
                return err
        return None

    def trap(self, *errorTypes: type[BaseException] | str) -> Any:
        """Like ``check``, but re-raise the exception when none matches."""
        matched = self.check(*errorTypes)
        if matched is None:
            self.raiseException()
        return matched

    def raiseException(self) -> NoReturn:
        """Raise the captured exception with its original traceback (if still held)."""
        raise self.value.with_traceback(self.tb)

    def throwExceptionIntoGenerator(self, gen: Any) -> Any:
        """Throw the exception into a generator or coroutine; return what it yields next."""
        return gen.throw(self.value.with_traceback(self.tb))

    def __repr__(self) -> str:
        return f"<Failure {_qualname(self.type)}: {self.getErrorMessage()}>"

    __str__ = __repr__


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
