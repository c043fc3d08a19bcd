"""The built-in default app: a sharded in-memory store speaking the Redis protocol."""
