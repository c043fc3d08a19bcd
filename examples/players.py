"""Players' state in the default store, each player's keys kept on one shard by a hash
tag, so a purchase is one atomic transaction on the worker that owns that player.

    cluster run --workers 2 &                  # the default store, worker ports 6381...
    python -m examples.players 127.0.0.1:6380  # [--players 50] [--purchases 500]

Every key of player 42 has the tag ``{player:42}`` (``{player:42}:gold``,
``{player:42}:potions``): Redis Cluster's hash slot of such a key is the slot of the
tag alone, so they live on one worker. A purchase WATCHes the gold, then spends it and
adds a potion in MULTI/EXEC; a concurrent change of the gold makes EXEC fail and the
purchase is retried. redis-py's RedisCluster, given the gateway's address, learns from
CLUSTER SLOTS which worker owns which slots and talks to each owner directly.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter

from redis import WatchError
from redis.cluster import RedisCluster

PRICE = 7
START_GOLD = 100


def key(player: int, field: str) -> str:
    return f"{{player:{player}}}:{field}"


def buy_potion(rc: RedisCluster, player: int) -> bool:
    """Spend PRICE gold on a potion, atomically; False if the player cannot afford it."""
    gold, potions = key(player, "gold"), key(player, "potions")
    with rc.pipeline(transaction=True) as p:
        while True:
            try:
                p.watch(gold)
                if int(p.get(gold) or 0) < PRICE:
                    p.unwatch()
                    return False
                p.multi()
                p.decrby(gold, PRICE)
                p.incr(potions)
                p.execute()
                return True
            except WatchError:
                continue  # the gold changed under us: look again


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", nargs="?", default="127.0.0.1:6380")
    parser.add_argument("--players", type=int, default=50)
    parser.add_argument("--purchases", type=int, default=500)
    args = parser.parse_args(argv)
    host, _, port = args.address.rpartition(":")
    rc = RedisCluster(host=host or "127.0.0.1", port=int(port))
    try:
        for player in range(args.players):
            rc.set(key(player, "gold"), START_GOLD)
            rc.set(key(player, "potions"), 0)
        rnd = random.Random(1)
        bought = sum(buy_potion(rc, rnd.randrange(args.players))
                     for _ in range(args.purchases))
        owners = Counter(rc.get_node_from_key(key(p, "gold")).port
                         for p in range(args.players))
        broken = [p for p in range(args.players)
                  if int(rc.get(key(p, "gold"))) + PRICE * int(rc.get(key(p, "potions")))
                  != START_GOLD]
    finally:
        rc.close()
    print(f"{bought} potions bought by {args.players} players; players per worker port: "
          f"{dict(sorted(owners.items()))}; players whose gold and potions disagree: "
          f"{len(broken)}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
