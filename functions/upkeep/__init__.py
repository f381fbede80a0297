"""Upkeep: the maintenance timer's tasks (renewals, idle refreshes, safety-net syncs) and disconnecting a drive."""
