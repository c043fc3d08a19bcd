"""`cluster load`: a load generator on this reactor, in several processes."""
