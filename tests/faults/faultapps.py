"""Apps the fault tests serve (``tests.faults.faultapps:NAME``), and the source of one
that a test rewrites between reloads."""

from __future__ import annotations

import os
import subprocess

from cluster.protocol import Factory
from tests.clusterapps import WhoAmI


class Orphaner(WhoAmI):
    """``orphan`` -> starts a shell that leaves a short ``sleep`` behind and exits, so the
    sleep is re-parented to the supervisor's namespace init; answers ``started``."""

    def lineReceived(self, line):
        if line == b"orphan":
            subprocess.Popen(["sh", "-c", "sleep 0.3 & exit 0"]).wait()
            self.sendLine(b"started")
        else:
            super().lineReceived(line)


orphaner = Factory.forProtocol(Orphaner)


class DeafRpc(WhoAmI):
    """``deafrpc`` -> this worker stops reading its RPC socket (its loop goes on, and its
    heartbeats with it): what a wedged ZeroMQ socket looks like from outside."""

    def lineReceived(self, line):
        if line == b"deafrpc":
            from cluster import rpc
            from cluster.reactor import reactor

            reactor.removeReader(rpc._current().router)
            self.sendLine(b"deaf")
        else:
            super().lineReceived(line)


deafrpc = Factory.forProtocol(DeafRpc)

# A module the reload tests write to a directory on PYTHONPATH: VERSION and BROKEN are
# filled in by the test; a broken version raises at import, as a bad deploy would.
VERSIONED_SOURCE = '''
import os
from cluster.basic import LineReceiver
from cluster.protocol import Factory

VERSION = {version!r}
if {broken!r}:
    raise ImportError("versioned app {version}: broken on purpose")


class Versioned(LineReceiver):
    delimiter = b"\\n"

    def connectionMade(self):
        self.sendLine(str(os.getpid()).encode())

    def lineReceived(self, line):
        self.sendLine(VERSION.encode() if line == b"version" else line)


factory = Factory.forProtocol(Versioned)
'''


def writeVersioned(directory: str, version: str, broken: bool = False) -> None:
    """(Re)write ``versioned_app.py`` in ``directory``."""
    path = os.path.join(directory, "versioned_app.py")
    with open(path + ".tmp", "w") as f:
        f.write(VERSIONED_SOURCE.format(version=version, broken=broken))
    os.replace(path + ".tmp", path)
