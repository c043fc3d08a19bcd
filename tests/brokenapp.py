"""An app that cannot be imported: the cluster must stop with this error, not respawn."""

raise ImportError("brokenapp: this module is broken on purpose")
