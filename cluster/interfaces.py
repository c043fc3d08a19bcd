"""The interfaces of the reactor, as plain classes.

Twisted declares these with zope.interface; here they are ordinary base classes a user
may subclass and partly implement (``class MySocket(IReadDescriptor)``). The reactor
never checks them: it relies on duck typing, so any object with the right methods works.
"""

from __future__ import annotations

from typing import Any


class ILoggingContext:
    def logPrefix(self) -> str:
        """A short name for log lines about this object."""
        return self.__class__.__name__


class IFileDescriptor(ILoggingContext):
    def fileno(self) -> int:
        """The descriptor's file number, or -1 once it is closed."""
        raise NotImplementedError

    def connectionLost(self, reason: Any) -> None:
        """Called once the reactor has dropped this descriptor, with a Failure saying why."""


class IReadDescriptor(IFileDescriptor):
    def doRead(self) -> Any:
        """Called when readable; return None to stay, or an exception/Failure
        (``CONNECTION_DONE``, ``CONNECTION_LOST``) to be removed and ``connectionLost``."""
        raise NotImplementedError


class IWriteDescriptor(IFileDescriptor):
    def doWrite(self) -> Any:
        """Called when writable; returns like ``doRead``."""
        raise NotImplementedError


class IReadWriteDescriptor(IReadDescriptor, IWriteDescriptor):
    pass


class IPushProducer:
    def pauseProducing(self) -> None:
        """Stop producing data until ``resumeProducing``."""

    def resumeProducing(self) -> None:
        """Resume producing data."""

    def stopProducing(self) -> None:
        """Stop producing data for good."""


class IConsumer:
    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Attach a producer; a streaming (push) producer is paused and resumed by the
        consumer's buffer level, a pull producer is asked for more when it drains."""

    def unregisterProducer(self) -> None:
        """Detach the producer."""

    def write(self, data: bytes) -> None:
        """Consume bytes."""


class ITransport(IConsumer, IPushProducer):
    def writeSequence(self, data: Any) -> None:
        """Write an iterable of bytes."""

    def loseConnection(self) -> None:
        """Close after everything written so far has been sent."""

    def abortConnection(self) -> None:
        """Close at once, discarding unsent data."""

    def getPeer(self) -> Any:
        """The remote address."""

    def getHost(self) -> Any:
        """The local address."""


class IProtocol:
    def makeConnection(self, transport: Any) -> None:
        """Attach the transport and call ``connectionMade``."""

    def connectionMade(self) -> None:
        """The connection is up."""

    def dataReceived(self, data: bytes) -> None:
        """Bytes arrived."""

    def connectionLost(self, reason: Any) -> None:
        """The connection is gone; ``reason`` is a Failure."""
