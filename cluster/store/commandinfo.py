"""COMMAND: what the store runs, as Redis describes its commands (name, arity, flags,
first key, last key, key step), so that clients which find a command's keys this way
(redis-py's RedisCluster, other cluster-aware clients) know where each key is."""

from __future__ import annotations

from cluster.store import commands, resp

READ, WRITE, KEYLESS = "readonly", "write", ""
# name -> (arity, kind, first key, last key, step), as Redis 7 reports them
TABLE: dict[bytes, tuple[int, str, int, int, int]] = {
    b"get": (2, READ, 1, 1, 1), b"set": (-3, WRITE, 1, 1, 1),
    b"getset": (3, WRITE, 1, 1, 1), b"incr": (2, WRITE, 1, 1, 1),
    b"decr": (2, WRITE, 1, 1, 1), b"incrby": (3, WRITE, 1, 1, 1),
    b"decrby": (3, WRITE, 1, 1, 1), b"append": (3, WRITE, 1, 1, 1),
    b"strlen": (2, READ, 1, 1, 1), b"expire": (-3, WRITE, 1, 1, 1),
    b"pexpire": (-3, WRITE, 1, 1, 1), b"ttl": (2, READ, 1, 1, 1),
    b"pttl": (2, READ, 1, 1, 1), b"persist": (2, WRITE, 1, 1, 1),
    b"expireat": (-3, WRITE, 1, 1, 1), b"pexpireat": (-3, WRITE, 1, 1, 1),
    b"expiretime": (2, READ, 1, 1, 1), b"pexpiretime": (2, READ, 1, 1, 1),
    b"setnx": (3, WRITE, 1, 1, 1), b"setex": (4, WRITE, 1, 1, 1),
    b"psetex": (4, WRITE, 1, 1, 1), b"getdel": (2, WRITE, 1, 1, 1),
    b"getex": (-2, WRITE, 1, 1, 1), b"getrange": (4, READ, 1, 1, 1),
    b"setrange": (4, WRITE, 1, 1, 1), b"type": (2, READ, 1, 1, 1),
    b"mget": (-2, READ, 1, -1, 1), b"mset": (-3, WRITE, 1, -1, 2),
    b"del": (-2, WRITE, 1, -1, 1), b"exists": (-2, READ, 1, -1, 1),
    b"unlink": (-2, WRITE, 1, -1, 1), b"touch": (-2, READ, 1, -1, 1),
    b"time": (1, KEYLESS, 0, 0, 0), b"rename": (3, WRITE, 1, 2, 1),
    b"renamenx": (3, WRITE, 1, 2, 1), b"msetnx": (-3, WRITE, 1, -1, 2),
    b"watch": (-2, KEYLESS, 1, -1, 1), b"ping": (-1, KEYLESS, 0, 0, 0),
    b"echo": (2, KEYLESS, 0, 0, 0), b"select": (2, KEYLESS, 0, 0, 0),
    b"quit": (-1, KEYLESS, 0, 0, 0), b"client": (-2, KEYLESS, 0, 0, 0),
    b"command": (-1, KEYLESS, 0, 0, 0), b"config": (-2, KEYLESS, 0, 0, 0),
    b"info": (-1, KEYLESS, 0, 0, 0), b"hello": (-1, KEYLESS, 0, 0, 0),
    b"dbsize": (1, READ, 0, 0, 0), b"flushall": (-1, WRITE, 0, 0, 0),
    b"flushdb": (-1, WRITE, 0, 0, 0), b"scan": (-2, READ, 0, 0, 0),
    b"keys": (2, READ, 0, 0, 0), b"randomkey": (1, READ, 0, 0, 0),
    b"bgrewriteaof": (1, KEYLESS, 0, 0, 0), b"reset": (1, KEYLESS, 0, 0, 0),
    b"subscribe": (-2, KEYLESS, 0, 0, 0),
    b"psubscribe": (-2, KEYLESS, 0, 0, 0), b"unsubscribe": (-1, KEYLESS, 0, 0, 0),
    b"punsubscribe": (-1, KEYLESS, 0, 0, 0), b"publish": (3, KEYLESS, 0, 0, 0),
    b"pubsub": (-2, KEYLESS, 0, 0, 0),
    b"multi": (1, KEYLESS, 0, 0, 0), b"exec": (1, KEYLESS, 0, 0, 0),
    b"discard": (1, KEYLESS, 0, 0, 0), b"unwatch": (1, KEYLESS, 0, 0, 0),
    b"cluster": (-2, KEYLESS, 0, 0, 0), b"readonly": (1, KEYLESS, 0, 0, 0),
    b"readwrite": (1, KEYLESS, 0, 0, 0), b"asking": (1, KEYLESS, 0, 0, 0),
}
# the data types' commands: a key at 1, or where their table says
TABLE.update({name.lower(): (arity, READ if name in commands.READS else WRITE, 1, 1, 1)
              for name, (_, arity) in commands.SINGLE_KEY.items() if name.lower() not in TABLE})
TABLE.update({name.lower(): (entry[1], READ if name in commands.READS else WRITE, *entry[2:])
              for name, entry in commands.MULTI_KEY.items() if name.lower() not in TABLE})


def _info(name: bytes) -> bytes:
    arity, kind, first, last, step = TABLE[name]
    flags = [resp.simple(kind)] if kind else []
    if name.upper() in commands.KEYS_OF:
        flags.append(resp.simple("movablekeys"))
    # then ACL categories, tips, key specifications and subcommands: none described here
    return resp.array([resp.bulk(name), resp.integer(arity), resp.array(flags),
                       resp.integer(first), resp.integer(last), resp.integer(step),
                       *[resp.EMPTY_ARRAY] * 4])


def getKeys(args: list[bytes]) -> list[bytes] | None:
    """The keys of a command as the table says, or as the command finds them when they
    follow a count (ZUNIONSTORE...); None: no such command, or no keys."""
    finder = commands.KEYS_OF.get(args[0].upper())
    if finder is not None:
        try:
            return finder(args) or None
        except ValueError:
            return None
    entry = TABLE.get(args[0].lower())
    if entry is None or not entry[2]:
        return None
    _, _, first, last, step = entry
    end = len(args) + last if last < 0 else last
    return args[first:end + 1:step] or None


def command(args: list[bytes], nil: bytes = resp.NIL) -> bytes:
    """COMMAND, COMMAND COUNT, COMMAND INFO [name...], COMMAND GETKEYS cmd args...,
    COMMAND LIST, COMMAND DOCS (empty: no documentation here), as Redis answers them."""
    if len(args) == 1:
        return resp.array([_info(name) for name in TABLE])
    sub = args[1].upper()
    arity = {b"COUNT": 2, b"LIST": 2, b"INFO": -2, b"DOCS": -2, b"GETKEYS": -4}.get(sub)
    if arity is None:
        return resp.error(f"ERR unknown subcommand '{args[1].decode(errors='replace')}'. "
                          f"Try COMMAND HELP.")
    if len(args) != arity if arity > 0 else len(args) < -arity:
        return resp.error(f"ERR wrong number of arguments for "
                          f"'command|{sub.decode().lower()}' command")
    if sub == b"COUNT":
        return resp.integer(len(TABLE))
    if sub == b"LIST":
        return resp.array([resp.bulk(name) for name in TABLE])
    if sub == b"INFO":
        names = [n.lower() for n in args[2:]] or list(TABLE)
        return resp.array([_info(n) if n in TABLE else nil for n in names])
    if sub == b"DOCS":
        return resp.EMPTY_ARRAY
    name = args[2].lower()
    if name not in TABLE:
        return resp.error("ERR Invalid command specified")
    count, want = len(args) - 2, TABLE[name][0]
    if count != want if want > 0 else count < -want:
        return resp.error("ERR Invalid number of arguments specified for command")
    keys = getKeys(args[2:])
    if keys is None:
        return resp.error("ERR The command has no key arguments")
    return resp.array([resp.bulk(k) for k in keys])
