"""Microsoft Graph for one connection: auth header, 401 → refresh once, retries, typed errors.

Callers never loop on status codes: they get typed objects (`wire.py`), a streaming download, or
one of the typed errors of `errors.py`. Links handed back by Graph (nextLink, deltaLink, Location) are followed
only on Graph's own origin, so a bearer token can never be sent elsewhere.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from functions.errors import Forbidden, GraphError, ItemNotFound, LinkExpired, ReauthRequired, ResyncRequired
from functions.microsoft import transport
from functions.microsoft.transport import Deadline, Pause
from functions.microsoft.wire import Account, DeltaPage, Drive, ItemRead, Json, Listing, Subscription, as_object
from functions.settings import settings

log = logging.getLogger(__name__)

DOWNLOAD_URLS_KEPT = 20_000  # ~10 MB of URLs at most
# Microsoft documents the URL's life as "a few minutes" in one place and an hour in another.
DOWNLOAD_URL_FRESH_SECONDS = 120.0

# How a download host refuses a pre-authenticated URL that expired while we used it.
_EXPIRED_LINK_STATUS = frozenset({401, 403, 410, 416})

# Returns an access token; `force_refresh=True` after a 401 asks for a new one.
TokenSource = Callable[[bool], str]


def item_path(item_id: str) -> str:
    # Item ids contain `!` (and could contain anything a broken server sends): always encode.
    return f"/me/drive/items/{quote(item_id, safe='')}"


def subscription_path(subscription_id: str) -> str:
    return f"/subscriptions/{quote(subscription_id, safe='')}"


def graph_time(moment: datetime) -> str:
    """The timestamp form Graph's subscription API documents (UTC, milliseconds, `Z`)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def error_of(response: httpx.Response) -> tuple[str, str]:
    """(code, message) from Graph's `{"error": {"code", "message"}}`, tolerant of any body."""
    try:
        body = response.json()
    except ValueError:
        return (f"http{response.status_code}", "")
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return (str(error.get("code") or f"http{response.status_code}"), str(error.get("message") or ""))
    if isinstance(error, str):  # the identity platform's shape
        return (error, "")
    return (f"http{response.status_code}", "")


class GraphClient:
    """Graph calls on behalf of one connection. Thread-safe; share one per sync run."""

    def __init__(self, connection_id: str, tokens: TokenSource, *, deadline: Deadline | None = None) -> None:
        self.connection_id = connection_id
        self._tokens = tokens
        self._deadline = deadline or Deadline()
        self._pause = Pause()  # one 429 pauses every request of this connection
        self._base = settings().graph_base_url
        self._origin = _origin(self._base)
        # Download URLs that delta listed (or /content redirected to), used while fresh: a copy then
        # costs one request instead of `/content` and its redirect, and the ranges of a large copy
        # one each. Dropped once used, unless more ranges follow. In memory only (they are credentials).
        self._download_urls: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._urls_lock = threading.Lock()

    def remember_download_url(self, item_id: str, url: str, *, since: float | None = None) -> None:
        with self._urls_lock:
            self._download_urls.pop(item_id, None)
            self._download_urls[item_id] = (url, time.monotonic() if since is None else since)
            while len(self._download_urls) > DOWNLOAD_URLS_KEPT:
                self._download_urls.popitem(last=False)

    def _listed_download_url(self, item_id: str) -> tuple[str, float] | None:
        with self._urls_lock:
            url, listed_at = self._download_urls.pop(item_id, ("", 0.0))
        return (url, listed_at) if url and time.monotonic() - listed_at < DOWNLOAD_URL_FRESH_SECONDS else None

    def url(self, path_or_link: str) -> str:
        if path_or_link.startswith(("http://", "https://")):
            if _origin(path_or_link) != self._origin:
                raise GraphError(0, "untrustedLink", "a link from Graph points outside Graph's origin")
            return path_or_link
        return self._base + path_or_link

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None,
                headers: dict[str, str] | None = None, stream: bool = False) -> httpx.Response:
        """Send with auth; on 401 get a fresh token once and try again. Raises on 4xx/5xx.

        With `stream=True` a successful answer's body is left unread; the caller must close it."""
        url = self.url(path)

        def send(force_refresh: bool) -> httpx.Response:
            return self._send(method, url, json=json, params=params, headers=headers, force_refresh=force_refresh,
                              stream=stream)

        response = _read_if_error(send(False))
        # 401 `ExtensionError` on a subscription is Graph refusing the subscription, not our token
        # (OneDrive/onedrive-api-docs#1740): a typed error for the caller, no sign-in verdict.
        if response.status_code == 401 and error_of(response)[0] != "ExtensionError":
            response.close()
            response = _read_if_error(send(True))
            code, _ = error_of(response) if response.status_code == 401 else ("", "")
            if response.status_code == 401 and code != "ExtensionError":
                raise ReauthRequired(f"Graph refused a fresh access token ({code})")
        if response.status_code >= 400:
            raise _typed_error(response)
        return response

    def _json(self, method: str, path: str, *, json: Any = None) -> Json:
        response = self.request(method, path, json=json)
        try:
            return as_object(response.json())
        except ValueError:
            raise GraphError(response.status_code, "notJson", "Graph answered something that is not JSON") from None

    def me(self) -> Account:
        return Account.from_graph(self._json("GET", "/me"))

    def drive(self) -> Drive:
        return Drive.from_graph(self._json("GET", "/me/drive"))

    def delta_page(self, link: str) -> DeltaPage:
        """One page of a delta query. A link that Graph no longer accepts raises ResyncRequired."""
        try:
            return DeltaPage.from_graph(self._json("GET", link))
        except ResyncRequired:
            raise
        except GraphError as error:
            if error.status == 400:  # stored links were once served malformed: start over
                raise ResyncRequired(error.status, error.code, str(error)) from None
            raise

    def item(self, address: str) -> ItemRead:
        """One item by address: `item_path(id)`, `/me/drive/root:/{path}:` or `/me/drive/special/approot`."""
        return ItemRead.from_graph(self._json("GET", address))

    def children(self, link: str) -> Listing:
        """A page of a folder's children (`{item_path(id)}/children?...`, then its nextLink)."""
        return Listing.from_graph(self._json("GET", link))

    # ----- subscriptions ----------------------------------------------------------------------------

    def create_subscription(self, *, resource: str, notification_url: str, lifecycle_url: str, expires_at: datetime,
                            client_state: str) -> Subscription:
        return Subscription.from_graph(self._json("POST", "/subscriptions", json={
            "changeType": "updated",
            "resource": resource,
            "notificationUrl": notification_url,
            "lifecycleNotificationUrl": lifecycle_url,
            "expirationDateTime": graph_time(expires_at),
            "clientState": client_state,
            "latestSupportedTlsVersion": "v1_2",
        }))

    def renew_subscription(self, subscription_id: str, expires_at: datetime) -> Subscription:
        return Subscription.from_graph(self._json("PATCH", subscription_path(subscription_id),
                                                  json={"expirationDateTime": graph_time(expires_at)}))

    def reauthorize_subscription(self, subscription_id: str) -> None:
        self.request("POST", subscription_path(subscription_id) + "/reauthorize").close()

    def list_subscriptions(self) -> list[Subscription]:
        """The app's subscriptions for the signed-in user (one page: Graph allows one per resource)."""
        listed = self._json("GET", "/subscriptions").get("value")
        return [Subscription.from_graph(as_object(s)) for s in listed if isinstance(s, dict)] if isinstance(listed, list) else []

    def delete_subscription(self, subscription_id: str) -> None:
        """Delete it in Graph; one already gone (404) is fine."""
        try:
            self.request("DELETE", subscription_path(subscription_id)).close()
        except ItemNotFound:
            return

    @contextmanager
    def download(self, item_id: str, *, start: int = 0, end: int | None = None, more: bool = False
                 ) -> Iterator[httpx.Response]:
        """Stream an item's content from `start` (to `end`, inclusive, if given). The caller must
        check 206 vs 200 when it asked for a range. `more`: another range of the same item
        follows, so the download URL is kept for it (in memory, while fresh) instead of asking
        `/content` again.

        `/content` answers 302 to a pre-authenticated URL on another host (which gets no
        Authorization), or 200/206 with the bytes themselves: both occur, both are used. A refusal that a fresh URL fixes is `LinkExpired`; the caller resumes with a new call.
        The URL delta listed for the item is tried first, if fresh; refused (expired), `/content`.
        """
        try:
            download = self._open_download(item_id, start, end, more)
        except (ItemNotFound, LinkExpired):
            raise
        except GraphError as error:
            if error.code != "malwareDetected" and error.status in _EXPIRED_LINK_STATUS:
                raise LinkExpired(error.status, error.code, str(error)) from None
            raise
        try:
            yield download
        finally:
            download.close()

    def _open_download(self, item_id: str, start: int, end: int | None, more: bool) -> httpx.Response:
        headers = {"Range": f"bytes={start}-{'' if end is None else end}"} if start or end is not None else {}
        listed = self._listed_download_url(item_id)
        if listed:
            download = self._fetch_download(listed[0], headers)
            if download.status_code < 400:
                if more:
                    self.remember_download_url(item_id, listed[0], since=listed[1])
                return download
            download.close()  # expired, or refused for a reason /content will tell
        response = self.request("GET", item_path(item_id) + "/content", headers=headers, stream=True)
        if response.status_code in (200, 206):
            return response
        response.close()
        location = response.headers.get("Location")
        if response.status_code not in (301, 302, 303, 307, 308) or not location:
            raise GraphError(response.status_code, "noRedirect", "content answered neither bytes nor a download URL")
        since = time.monotonic()
        download = self._fetch_download(location, headers)
        if download.status_code >= 400:
            try:
                download.read()
            finally:
                download.close()
            raise _typed_error(download)
        if more:
            self.remember_download_url(item_id, location, since=since)
        return download

    def _fetch_download(self, location: str, headers: dict[str, str]) -> httpx.Response:
        return transport.send(
            lambda: transport.client().build_request("GET", location, headers=headers),
            deadline=self._deadline,
            pause=self._pause,
            stream=True,
            what="download",
        )

    def _send(self, method: str, url: str, *, json: Any, params: dict[str, str] | None, headers: dict[str, str] | None,
              force_refresh: bool, stream: bool) -> httpx.Response:
        token = self._tokens(force_refresh)
        sent = {**(headers or {}), "Authorization": f"Bearer {token}", "Accept": "application/json"}
        return transport.send(
            lambda: transport.client().build_request(method, url, json=json, params=params, headers=sent),
            deadline=self._deadline,
            pause=self._pause,
            stream=stream,
            what=f"{method} {urlsplit(url).path}",
        )


def _read_if_error(response: httpx.Response) -> httpx.Response:
    """A streamed answer's error body is small and needed for its code: read it."""
    if response.status_code >= 400:
        try:
            response.read()
        finally:
            response.close()
    return response


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return (parts.scheme.lower(), parts.netloc.lower())


def _typed_error(response: httpx.Response) -> GraphError:
    code, message = error_of(response)
    status = response.status_code
    if status == 410:
        return ResyncRequired(status, code, message, location=response.headers.get("Location"))
    if status == 404:
        return ItemNotFound(status, code, message)
    if status == 403:
        return Forbidden(status, code, message)
    return GraphError(status, code, message)
