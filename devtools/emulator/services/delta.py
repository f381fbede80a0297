"""Delta queries with the real feed's quirks (microsoft.md §3, sync-scenarios.md 1-9, 21).

An enumeration (full, or from a deltaLink token) becomes a server-side session: the ids to send,
in the configured order. Pages show each item's state *at the time the page is served*; an item
already sent that changes mid-enumeration is queued again (the same item on several pages, the
last state winning). The deltaLink carries the change sequence number from the session's start,
so nothing that changed during the enumeration is missed; some items simply come twice.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import secrets
from urllib.parse import quote

from ..drive import Drive, Item
from ..errors import GraphError
from ..lazy import LazyOrder
from ..state import DeltaSession, State
from .render import item_json, select_fields, tombstone_json

MAX_SESSIONS = 2000
MAX_TOP = 1000


class DeltaTokenError(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


def encode_token(payload: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str) -> dict:
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise DeltaTokenError(400) from None
    if not isinstance(payload, dict) or payload.get("k") not in ("d", "n"):
        raise DeltaTokenError(400)
    return payload


class Delta:
    def __init__(self, state: State) -> None:
        self.state = state
        self._shuffles = 0

    @property
    def sessions(self) -> dict[str, DeltaSession]:
        return self.state.delta_sessions

    def respond(
        self, drive: Drive, folder: Item, link_base: str, token: str | None, select_param: str = "",
        top: str | None = None,
    ) -> dict:
        """One page of the delta feed (``GraphError`` for a bad or expired token)."""
        options = self.state.options
        select = [s for s in select_param.split(",") if s] or None
        page_size = options.delta_page_size
        if top is not None:
            if not top.isdigit() or int(top) < 1:
                raise GraphError(400, "invalidRequest", "Invalid value for $top.")
            page_size = min(int(top), MAX_TOP)
        with drive.lock:
            if token == "latest":
                payload = {"k": "d", "drive": drive.id, "seq": drive.seq, "epoch": drive.delta_epoch,
                           "folder": folder.id, "select": select, "top": page_size}
                return self._page([], link_base, delta_token=encode_token(payload))
            if token is None:
                session = self._start(drive, folder, 0, select, page_size, full=True)
            else:
                try:
                    payload = decode_token(token)
                    if payload["k"] == "n":
                        session = self.sessions.get(payload.get("session", ""))
                        if session is None or payload.get("epoch") != drive.delta_epoch:
                            raise DeltaTokenError(410)
                        if session.drive_id != drive.id or session.folder_id != folder.id:
                            raise DeltaTokenError(400)
                        # A nextLink is a cursor: asking for it again (a retried request, a worker
                        # that died mid-page) serves the same page again, as Graph does.
                        position = payload.get("pos")
                        if isinstance(position, int) and 0 <= position <= len(session.queue):
                            session.position = position
                    else:
                        if payload.get("drive") != drive.id or payload.get("folder") != folder.id:
                            raise DeltaTokenError(400)
                        if payload.get("epoch") != drive.delta_epoch:
                            raise DeltaTokenError(410)
                        since = payload.get("seq")
                        if not isinstance(since, int) or since > drive.seq:
                            raise DeltaTokenError(400)
                        session = self._start(
                            drive, folder, since, payload.get("select") if select is None else select,
                            payload.get("top") or page_size, full=False,
                        )
                except DeltaTokenError as error:
                    raise self._token_error(error.status, link_base) from None
            return self._next_page(drive, session, link_base)

    def _token_error(self, status: int, link_base: str) -> GraphError:
        if status == 410:
            # Location: a fresh enumeration (restarting without a token is equivalent).
            return GraphError(
                410,
                self.state.options.delta_resync_code,
                "Resync required. Replace any local items with the server's version (including deletes) "
                "if you're sure that the service was up to date with your local changes when you last "
                "sync'd. Upload any local changes that the server doesn't know about.",
                headers={"Location": link_base},
            )
        return GraphError(400, "invalidRequest", "Invalid delta token.")

    def _start(self, drive: Drive, folder: Item, since: int, select, page_size: int, full: bool) -> DeltaSession:
        if full and drive.lazy is not None and folder.id == drive.root_id:
            # Every item, computed page by page (lazy.py): a million ids are never a list here.
            return self._open(DeltaSession(drive.id, folder.id, drive.seq, drive.delta_epoch, select, page_size,
                                           LazyOrder(drive.lazy)))
        if full:
            items = [i for i in self._walk(drive, folder)]
        moved_out: set[str] = set()
        if not full:
            items = []
            for item in drive.changed_since(since):
                if self._within(drive, item, folder):
                    items.append(item)
                elif folder.id != drive.root_id and not item.deleted and drive.was_within(item, folder, since):
                    # Moved out of the folder: gone, from this folder's point of view.
                    items.append(item)
                    moved_out.add(item.id)
        ids = self._ordered(drive, items, changes=not full)
        return self._open(DeltaSession(drive.id, folder.id, drive.seq, drive.delta_epoch, select, page_size, ids,
                                       moved_out=moved_out))

    def _open(self, session: DeltaSession) -> DeltaSession:
        session.key = secrets.token_urlsafe(12)
        if len(self.sessions) >= MAX_SESSIONS:
            self.sessions.pop(next(iter(self.sessions)))
        self.sessions[session.key] = session
        return session

    def _walk(self, drive: Drive, folder: Item) -> list[Item]:
        result, stack = [], [folder]
        while stack:
            node = stack.pop()
            result.append(node)
            stack.extend(drive.items[i] for i in reversed(list(node.children.values())))
        return result

    def _within(self, drive: Drive, item: Item, folder: Item) -> bool:
        if folder.id == drive.root_id or item.id == folder.id:
            return True
        return any(a.id == folder.id for a in drive.ancestors(item))

    def _ordered(self, drive: Drive, items: list[Item], changes: bool) -> list[str]:
        order = self.state.options.delta_order
        if order == "shuffled":
            rng = random.Random(self.state.options.delta_seed * 7919 + self._shuffles)
            self._shuffles += 1
            items = list(items)
            rng.shuffle(items)
        elif order == "children_first":
            depth = {i.id: len(drive.ancestors(i)) for i in items}
            items = sorted(items, key=lambda i: -depth[i.id])
        return [i.id for i in items]

    def _next_page(self, drive: Drive, session: DeltaSession, link_base: str) -> dict:
        options = self.state.options

        def next_token() -> str:
            return encode_token({"k": "n", "session": session.key, "epoch": session.epoch, "pos": session.position})

        self._requeue_changed(drive, session)
        remaining = len(session.queue) - session.position
        if options.delta_empty_pages and session.pages == 1 and not session.empty_page_done and remaining:
            session.empty_page_done = True
            session.pages += 1
            return self._page([], link_base, next_token=next_token())
        ids = session.queue[session.position : session.position + session.page_size]
        session.position += len(ids)
        session.pages += 1
        body = self._page_items(drive, session, ids)
        done = session.position >= len(session.queue)
        if done and options.delta_empty_pages and not session.final_empty_done and body:
            session.final_empty_done = True
            done = False
        if not done:
            return self._page(body, link_base, next_token=next_token())
        self.sessions.pop(session.key, None)
        delta_token = encode_token({"k": "d", "drive": drive.id, "seq": session.upto, "epoch": session.epoch,
                                    "folder": session.folder_id, "select": session.select, "top": session.page_size})
        return self._page(body, link_base, delta_token=delta_token)

    @staticmethod
    def _served(drive: Drive, session: DeltaSession, item: Item) -> None:
        # What was sent, to send again what changes before the end; a lazy drive never changes.
        if drive.lazy is None:
            session.served[item.id] = item.seq

    def _requeue_changed(self, drive: Drive, session: DeltaSession) -> None:
        if not session.served:
            return
        pending = set(session.queue[session.position :])
        for item in drive.changed_since(session.upto):
            sent = session.served.get(item.id)
            if sent is not None and item.seq > sent and item.id not in pending:
                session.queue.append(item.id)
                pending.add(item.id)

    def _page_items(self, drive: Drive, session: DeltaSession, ids: list[str]) -> list[dict]:
        options = self.state.options
        bodies: list[dict] = []
        on_page: set[str] = set()
        children_first = options.delta_order == "children_first"
        for item_id in ids:
            item = drive.get(item_id)
            if item is None:  # a descendant of a deleted folder that left no tombstone
                continue
            scope = drive.get(session.folder_id) if session.folder_id else None
            if item_id in session.moved_out and scope is not None and not self._within(drive, item, scope):
                if item.id not in on_page:
                    on_page.add(item.id)
                    self._served(drive, session, item)
                    bodies.append(select_fields(tombstone_json(self.state, drive, item), session.select))
                continue
            group: list[Item] = []
            if options.delta_repeat_ancestors:
                chain = [a for a in reversed(drive.ancestors(item)) if not a.deleted]
                group.extend(a for a in chain if a.id not in on_page)
            if item.id in on_page:
                continue
            group.append(item)
            if children_first:
                group.reverse()
            for member in group:
                on_page.add(member.id)
                self._served(drive, session, member)
                bodies.append(item_json(self.state, drive, member, in_delta=True, select=session.select))
        return bodies

    def _page(self, values: list[dict], link_base: str, next_token: str | None = None,
              delta_token: str | None = None) -> dict:
        body: dict = {"@odata.context": f"{self.state.graph_base_url}/$metadata#Collection(driveItem)", "value": values}
        if next_token is not None:
            body["@odata.nextLink"] = self._link(link_base, next_token)
        if delta_token is not None:
            body["@odata.deltaLink"] = self._link(link_base, delta_token)
        return body

    def _link(self, link_base: str, token: str) -> str:
        if self.state.options.delta_link_style == "function":
            return f"{link_base[: -len('delta')]}delta(token='{quote(token)}')"
        return f"{link_base}?token={quote(token)}"

