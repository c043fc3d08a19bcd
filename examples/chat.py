"""A chat server for the cluster: users on different workers talk to each other.

    cluster run examples.chat:factory --workers 2 --bind 127.0.0.1:7000
    then, from several terminals: nc 127.0.0.1 7000

Commands, one per line: ``LOGIN name``, ``JOIN room``, ``LEAVE room``, ``SAY room
text``, ``TELL user text``, ``QUIT``. Who is connected where lives in a directory
sharded by user name (``callShard``: the worker owning a name's shard knows which worker
that user is on); rooms are pub/sub topics, to which a worker subscribes while one of its
own users is in the room.
"""

from __future__ import annotations

from typing import Any

from cluster import rpc
from cluster.basic import LineReceiver
from cluster.protocol import Factory

directory: dict[str, str] = {}  # user -> node, for the users whose shard is ours
local: dict[str, Chatter] = {}  # users connected to this worker
rooms: dict[str, set[Chatter]] = {}  # room -> our users in it


@rpc.expose("chat.register")
def register(user: str, node: str) -> bool:
    if user in directory:
        return False
    directory[user] = node
    return True


@rpc.expose("chat.unregister")
def unregister(user: str, node: str) -> None:
    if directory.get(user) == node:
        del directory[user]


@rpc.expose("chat.lookup")
def lookup(user: str) -> str | None:
    return directory.get(user)


@rpc.expose("chat.deliver")
def deliver(user: str, line: str) -> bool:
    chatter = local.get(user)
    if chatter is None:
        return False
    chatter.sendLine(line.encode())
    return True


def _roomMessage(topic: str, data: Any) -> None:
    room, sender, text = data
    for chatter in list(rooms.get(room, ())):
        chatter.sendLine(f"MSG {room} {sender}: {text}".encode())


class Chatter(LineReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 4096

    def connectionMade(self) -> None:
        self.name: str | None = None
        self.joined: set[str] = set()
        self.sendLine(b"HELLO say LOGIN name")

    def lineReceived(self, line: bytes) -> None:
        command, _, rest = line.decode(errors="replace").strip().partition(" ")
        command = command.upper()
        if command == "QUIT":
            self.transport.loseConnection()
        elif command == "LOGIN":
            self.login(rest.strip())
        elif self.name is None:
            self.sendLine(b"ERR LOGIN first")
        elif command == "JOIN":
            self.join(rest.strip())
        elif command == "LEAVE":
            self.leave(rest.strip())
            self.sendLine(f"OK left {rest.strip()}".encode())
        elif command == "SAY":
            room, _, text = rest.partition(" ")
            if room not in self.joined:
                self.sendLine(f"ERR not in {room}".encode())
            else:
                rpc.publish(f"room:{room}", [room, self.name, text])
        elif command == "TELL":
            user, _, text = rest.partition(" ")
            self.tell(user, text)
        else:
            self.sendLine(b"ERR unknown command")

    def login(self, name: str) -> None:
        if self.name is not None or not name or " " in name:
            self.sendLine(b"ERR bad LOGIN")
            return

        def registered(ok: bool) -> None:
            if not ok:
                self.sendLine(f"ERR {name} is taken".encode())
            elif not self.transport.connected:
                rpc.notify(rpc.shardOf(name), "chat.unregister", name, rpc.nodeName())
            else:
                self.name = name
                local[name] = self
                self.sendLine(f"OK welcome {name}".encode())

        d = rpc.callShard(name, "chat.register", name, rpc.nodeName())
        d.addCallbacks(registered, self.failed)

    def join(self, room: str) -> None:
        if room not in rooms:
            rooms[room] = set()
            rpc.subscribe(f"room:{room}", _roomMessage)
        rooms[room].add(self)
        self.joined.add(room)
        self.sendLine(f"OK joined {room}".encode())

    def leave(self, room: str) -> None:
        members = rooms.get(room)
        self.joined.discard(room)
        if members is not None:
            members.discard(self)
            if not members:
                del rooms[room]
                rpc.unsubscribe(f"room:{room}", _roomMessage)

    def tell(self, user: str, text: str) -> None:
        def found(node: str | None):
            if node is None:
                return False
            return rpc.callRemote(node, "chat.deliver", user, f"FROM {self.name}: {text}")

        d = rpc.callShard(user, "chat.lookup", user).addCallback(found)
        d.addCallbacks(lambda ok: self.sendLine(b"OK sent" if ok else
                                                f"ERR no user {user}".encode()), self.failed)

    def failed(self, failure: Any) -> None:
        if self.transport.connected:
            self.sendLine(f"ERR {failure.getErrorMessage()}".encode())

    def connectionLost(self, reason: Any) -> None:
        for room in list(self.joined):
            self.leave(room)
        if self.name is not None and local.get(self.name) is self:
            del local[self.name]
            rpc.notify(rpc.shardOf(self.name), "chat.unregister", self.name, rpc.nodeName())


factory = Factory.forProtocol(Chatter)
