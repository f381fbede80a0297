"""The names of what the app keeps in storage: tables, queues, the files container, blob names."""

from __future__ import annotations

CONNECTION = "AzureWebJobsStorage"


class Tables:
    CONNECTIONS = "connections"  # one row per connected drive: profile and status
    TOKENS = "tokens"  # encrypted tokens, one row per connection (ETag-guarded)
    OAUTH_STATES = "oauthstates"  # single-use sign-in states
    SUBSCRIPTIONS = "subscriptions"  # Graph subscription id -> connection, clientState hash
    SYNC_STATE = "syncstate"  # delta link, checkpoint and lock per connection
    DRIVE_ITEMS = "driveitems"  # the id map: every item of every drive
    PENDING_ITEMS = "pendingitems"  # items changed by delta and not yet applied to the mirror
    FAILED_ITEMS = "faileditems"  # items parked after repeated failures, retried later
    SKIPPED_ITEMS = "skippeditems"  # the items of DRIVE_ITEMS the mirror leaves out: listed without a scan
    APP_STATE = "appstate"  # app-wide conditions, one row each (Microsoft refusing the client secret)

    ALL = (CONNECTIONS, TOKENS, OAUTH_STATES, SUBSCRIPTIONS, SYNC_STATE, DRIVE_ITEMS, PENDING_ITEMS, FAILED_ITEMS,
           SKIPPED_ITEMS, APP_STATE)


class Queues:
    SYNC = "sync-requests"  # "this drive changed": consumed by the sync worker
    MAINTENANCE = "maintenance-tasks"  # per-connection upkeep fanned out by the timer
    EVENTS = "change-events"  # one message per applied change, for the product

    TRIGGERED = (SYNC, MAINTENANCE)  # each has a `<name>-poison` twin made by the host
    ALL = (SYNC, MAINTENANCE, EVENTS)


def poison_queue(name: str) -> str:
    return f"{name}-poison"


def files_container_name() -> str:
    from functions.settings import settings

    return settings().files_container


def mirror_prefix(connection_id: str) -> str:
    """Where a connection's mirror lives in the files container: every blob name starts so."""
    return f"{connection_id}/"


def mirror_blob(connection_id: str, path: str) -> str:
    """The blob of `path` (relative to the drive's mirrored root) in a connection's mirror.
    The one place the layout `{connection_id}/{path}` is written; callers validate `path`."""
    return f"{connection_id}/{path}"
