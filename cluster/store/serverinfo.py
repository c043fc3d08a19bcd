"""INFO and CONFIG GET: what clients, exporters and benchmarks read about the server,
with Redis's section and field names where Redis has them."""

from __future__ import annotations

import fnmatch
import os
import platform
import struct
import time
from typing import Any

from cluster.membership import HERE
from cluster.store import resp
from cluster.store.keyspace import Keyspace

STARTED = time.time()
# what CONFIG GET answers: this store's settings, named as Redis names them
SETTINGS = {"save": "", "appendonly": "no", "appendfsync": "everysec", "databases": "1",
            "maxmemory": "0", "maxmemory-policy": "noeviction", "cluster-enabled": "yes",
            "timeout": "0", "tcp-keepalive": "300", "maxclients": "10000",
            "proto-max-bulk-len": str(resp.MAX_BULK), "hash-max-listpack-entries": "512",
            "hash-max-listpack-value": "64", "set-max-intset-entries": "512",
            "zset-max-listpack-entries": "128",
            "zset-max-listpack-value": "64", "list-max-listpack-size": "-2"}
# Redis's older names for some of them (the same setting)
ALIASES = {"hash-max-ziplist-entries": "hash-max-listpack-entries",
           "zset-max-ziplist-entries": "zset-max-listpack-entries"}
SECTIONS = ("server", "clients", "memory", "persistence", "stats", "keyspace", "cluster")


def config(args: list[bytes], resp3: bool) -> bytes:
    """CONFIG GET pattern [pattern ...] (a map in RESP3, pairs in RESP2). (CONFIG SET
    and RESETSTAT go to every worker: see the server.)"""
    sub = args[1].upper()
    if sub == b"GET":
        if len(args) < 3:
            return resp.error("ERR wrong number of arguments for 'config|get' command")
        patterns = [a.decode(errors="replace").lower() for a in args[2:]]
        names = [n for n in [*SETTINGS, *ALIASES]
                 if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
        items = [x for n in names for x in (resp.bulk(n.encode()), resp.bulk(
            SETTINGS[ALIASES.get(n, n)].encode()))]
        return (b"%%%d\r\n" % len(names) + b"".join(items)) if resp3 else resp.array(items)
    return resp.error(f"ERR CONFIG {sub.decode(errors='replace')} is not supported by this "
                      f"store (its settings are cluster run's flags)")


def _aof(log: Any) -> list[tuple[str, Any]]:
    """INFO persistence's AOF fields (this worker's file)."""
    if log is None:
        return [("aof_enabled", 0)]
    return [("aof_enabled", 1), ("aof_rewrite_in_progress", int(log.rewriting is not None)),
            ("aof_last_bgrewrite_status", log.lastRewrite),
            ("aof_last_write_status", "ok" if log.failed is None else "err"),
            ("aof_current_size", log.size), ("aof_base_size", log.baseSize),
            ("aof_fsync", log.fsync)]


def info(args: list[bytes], node: Any, ks: Keyspace, stats: dict[str, int],
         port: int, clusterNode: bool) -> bytes:
    """INFO [section ...]: Redis's sections (default: all of them) plus the cluster's
    own fields in ``# Cluster``. ``cluster_enabled`` is 1 where the store is a Redis
    Cluster node (``clusterNode``: a worker's own port), 0 on the gateway's port, where
    it answers as one Redis server."""
    wanted = {a.decode(errors="replace").lower() for a in args[1:]} or {"default"}
    if wanted & {"default", "all", "everything"}:
        wanted = set(SECTIONS)
    shards = sum(1 for where in node.route if where is HERE)
    uptime = int(time.time() - STARTED)
    fields = {
        "server": [("redis_version", "7.0.0"), ("redis_mode", "cluster"),
                   ("os", f"{platform.system()} {platform.release()} {platform.machine()}"),
                   ("arch_bits", struct.calcsize("P") * 8), ("process_id", os.getpid()),
                   ("tcp_port", port), ("uptime_in_seconds", uptime),
                   ("uptime_in_days", uptime // 86400)],
        "clients": [("connected_clients", stats["connections"]),
                    ("blocked_clients", len(ks.waiters.byToken) if ks.waiters else 0)],
        "memory": [("used_memory", _rss()), ("maxmemory", 0),
                   ("maxmemory_policy", "noeviction")],
        "persistence": [("loading", 0), ("rdb_changes_since_last_save", 0),
                        *_aof(ks.aof)],
        "stats": [("total_commands_processed", stats["commands"]),
                  ("expired_keys", ks.expired), ("evicted_keys", 0)],
        "keyspace": [("db0", f"keys={len(ks)},expires={len(ks.expires)},avg_ttl=0")],
        "cluster": [("cluster_enabled", int(clusterNode)), ("node", node.node),
                    ("workers", node.workers),
                    ("shards", shards), ("connections", stats["connections"]),
                    ("commands", stats["commands"]), ("remote_commands", stats["remote"]),
                    ("expired_keys", ks.expired), ("rpc_calls", node.calls),
                    ("rpc_served", node.served), ("rpc_messages", node.messagesSent)],
    }
    text = "".join(f"# {name.capitalize()}\r\n" + "".join(f"{k}:{v}\r\n" for k, v in
                                                        fields[name])
                   for name in SECTIONS if name in wanted)
    return resp.bulk(text.encode())


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
