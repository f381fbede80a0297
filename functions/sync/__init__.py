"""Sync: one sync of one connection: lease, delta collect, plan, apply to blobs, change events, forget."""
