"""The status page: every connection with its health, and a browser of each mirror.

Server-rendered HTML, no script, every dynamic value escaped; it shows what `Connection.to_public`
shows and blob listings, never a token. Links carry the function key the page was opened with
(`?code=`), as Azure's function keys work; the Referrer-Policy keeps it from leaking onwards.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from functions import connections, storage
from functions.api.support import ApiError, require_connection

HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
REFRESH_SECONDS = 5
MAX_LISTED = 500  # entries of one folder shown; the product API pages through everything
MAX_FAILED_SHOWN = 50


@dataclass(frozen=True)
class Page:
    status: int
    html: str


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


class Links:
    """URLs of the page, carrying the function key and the refresh choice."""

    def __init__(self, key: str | None, refresh: bool) -> None:
        self.key = key
        self.refresh = refresh

    def _query(self, **params: str) -> str:
        values = {k: v for k, v in params.items() if v}
        if not self.refresh:
            values["refresh"] = "off"
        if self.key:
            values["code"] = self.key
        return ("?" + urlencode(values)) if values else ""

    def overview(self) -> str:
        return "/api/status" + self._query()

    def connect(self) -> str:
        # Not `_query`: the refresh choice means nothing there.
        return "/api/status/connect" + (f"?{urlencode({'code': self.key})}" if self.key else "")

    def mirror(self, connection_id: str, folder: str = "") -> str:
        return f"/api/status/connections/{quote(connection_id)}" + self._query(folder=folder)

    def download(self, connection_id: str, path: str) -> str:
        # The product API owns downloads (Range, hash ETag, streaming): link to it, with the path
        # in the query, which reaches it exactly for every name (a literal %2F can't in a URL path).
        query = {"path": path, **({"code": self.key} if self.key else {})}
        return f"/api/connections/{quote(connection_id)}/content?{urlencode(query, quote_via=quote)}"

    def flipped(self) -> Links:
        """The same links with auto-refresh switched the other way."""
        return Links(self.key, not self.refresh)


# ---- time and size ---------------------------------------------------------------------------

def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = (now - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            amount = f"{int(seconds // size)} {unit}"
            break
    else:
        amount = f"{int(seconds)} s"
    return f"in {amount}" if future else f"{amount} ago"


def _when(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return '<span class="muted">never</span>'
    exact = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f'<time datetime="{_e(moment.isoformat())}" title="{_e(exact)}">{_e(_ago(moment, now))}</time>'


def _size(count: int | None) -> str:
    value = float(count or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


# ---- queues ----------------------------------------------------------------------------------

def _queue_depth(name: str) -> int | None:
    return storage.queues.depth(name)


def _queue_cards() -> str:
    cards = []
    for name in storage.Queues.TRIGGERED:
        depth, poisoned = _queue_depth(name), _queue_depth(storage.poison_queue(name))
        warn = " warn" if poisoned else ""
        cards.append(
            f'<div class="card"><div class="label">{_e(name)}</div><div class="figure">{_e(depth)}</div>'
            f'<div class="sub{warn}">{_e(poisoned)} in {_e(storage.poison_queue(name))}</div></div>'
        )
    events = _queue_depth(storage.Queues.EVENTS)
    cards.append(f'<div class="card"><div class="label">{_e(storage.Queues.EVENTS)}</div>'
                 f'<div class="figure">{_e(events)}</div><div class="sub">waiting for the product</div></div>')
    return "".join(cards)


# ---- pages -----------------------------------------------------------------------------------

# One wording for a state, on the badges and in the summary card alike.
STATE_LABELS = {"active": "Active", "reauth_required": "Sign-in needed", "disconnected": "Disconnected"}


def _state_badge(connection: connections.Connection) -> str:
    running = connection.last_sync_started_at and (
        connection.last_sync_finished_at is None or connection.last_sync_started_at > connection.last_sync_finished_at)
    state = str(connection.state)
    label = STATE_LABELS.get(state, state)
    badge = f'<span class="badge {_e(state)}">{_e(label)}</span>'
    if running and connection.state == connections.ConnectionState.ACTIVE:
        badge += ' <span class="badge syncing">Syncing</span>'
    return badge


def _subscription(connection: connections.Connection, now: datetime) -> str:
    if connection.subscription_error:
        retry = connection.subscription_retry_at
        return (f'<span class="error">{_e(connection.subscription_error)}</span>'
                f'<div class="muted">next attempt {_when(retry, now)}</div>')
    expires = connection.subscription_expires_at
    if connection.state == connections.ConnectionState.DISCONNECTED:
        return '<span class="muted">none (disconnected)</span>'  # removed with the connection: nothing expired
    if not connection.subscription_id and expires is None:
        return '<span class="muted">none</span>'
    if expires is not None and expires <= now:
        return f'<span class="error">expired {_e(_ago(expires, now))}</span>'
    return f"expires {_when(expires, now)}" if expires else "active"


def _connection_row(connection: connections.Connection, links: Links, now: datetime) -> str:
    counts = (f'{connection.items_copied} copied · {connection.items_moved} moved · '
              f'{connection.items_deleted} deleted · {connection.items_skipped} skipped')
    failed = f'<span class="error">{connection.items_failed} failed</span>' if connection.items_failed else "0 failed"
    error = (f'<div class="error-text" title="{_e(connection.last_sync_error)}">{_e(connection.last_sync_error[:200])}</div>'
             if connection.last_sync_error else "")
    return (
        "<tr>"
        f'<td><a class="account" href="{_e(links.mirror(connection.connection_id))}">{_e(connection.display_name or connection.account_id)}</a>'
        f'<div class="muted">{_e(connection.email)}</div><div class="mono muted">{_e(connection.connection_id)}</div>'
        f'<a class="browse" href="{_e(links.mirror(connection.connection_id))}">Browse the mirror →</a></td>'
        f"<td>{_state_badge(connection)}</td>"
        f"<td>{_when(connection.last_sync_finished_at, now)}"
        f'<div class="muted">started {_when(connection.last_sync_started_at, now)}</div></td>'
        f'<td>{_e(counts)}<div>{failed} · {_e(_size(connection.bytes_copied))} copied</div>{error}</td>'
        f"<td>{_subscription(connection, now)}</td>"
        "</tr>"
    )


def _faults_banner() -> str:
    """App-wide settings faults, as the health endpoint reports them, named for the person fixing them."""
    from functions import health

    faults = health.run(("settings",)).faults
    if not faults:
        return ""
    items = "".join(f"<li>{_e(fault.message)}" + (f' <span class="muted">(affects {_e(", ".join(fault.features))})</span>'
                                                   if fault.features else "") + "</li>" for fault in faults)
    return f'<div class="alert"><strong>Settings need fixing</strong> (also at /api/health):<ul>{items}</ul></div>'


def _connect_url() -> str:
    from functions.settings import SettingsError, settings

    try:
        return f"{settings().public_base_url}/api/connect"
    except SettingsError:
        return "/api/connect"  # the banner says what is wrong with PUBLIC_BASE_URL


def overview(*, key: str | None, refresh: bool, connect_url: str | None = None, now: datetime | None = None) -> Page:
    now = now or datetime.now(UTC)
    links = Links(key, refresh)
    connect_url = connect_url or _connect_url()
    found = sorted(connections.iterate(), key=lambda c: (c.display_name or c.account_id).lower())
    if found:
        rows = "".join(_connection_row(c, links, now) for c in found)
        table = ('<div class="scroll"><table><thead><tr><th>Account</th><th>State</th><th>Last sync</th><th>Items</th>'
                 f"<th>Subscription</th></tr></thead><tbody>{rows}</tbody></table></div>")
    else:
        table = (f'<div class="empty"><p>No OneDrive connected yet.</p>'
                 f'<p><a class="button" href="{_e(connect_url)}">Connect a OneDrive</a></p></div>')
    by_state: dict[str, int] = {}
    for connection in found:
        by_state[str(connection.state)] = by_state.get(str(connection.state), 0) + 1
    summary = " · ".join(f"{count} {STATE_LABELS.get(state, state).lower()}" for state, count in sorted(by_state.items())) or "none"
    body = _faults_banner() + _app_alerts() + (
        f'<section class="cards"><div class="card"><div class="label">Connections</div><div class="figure">{len(found)}</div>'
        f'<div class="sub">{_e(summary)}</div></div>{_queue_cards()}</section>'
        f'<section><h2>Connections</h2>{table}</section>'
    )
    return Page(200, _layout("Status", body, links, links.flipped().overview(), crumbs=[("Status", None)], now=now))


def _app_alerts() -> str:
    """Conditions that stop every connection alike, above everything else."""
    from functions.tokens import app_credentials

    ok, detail = app_credentials.health()
    if ok:
        return ""
    return (f'<div class="alert"><strong>Syncs are paused:</strong> {_e(detail)}. Put a valid client secret '
            "in MICROSOFT_CLIENT_SECRET (Key Vault); syncs resume by themselves, nothing is lost.</div>")


def _folder_entries(connection_id: str, folder: str) -> tuple[list[str], list[storage.blobs.BlobEntry], bool]:
    base = storage.mirror_blob(connection_id, folder)
    folders: list[str] = []
    files: list[storage.blobs.BlobEntry] = []
    truncated = False
    for entry in storage.blobs.files().walk(base):
        if len(folders) + len(files) >= MAX_LISTED:
            truncated = True
            break
        if isinstance(entry, str):
            folders.append(entry[len(base):-1])
        else:
            files.append(entry)
    return folders, files, truncated


def _failed_section(connection_id: str, total: int) -> str:
    # The product API owns reading the retry list (paths resolved from the id map): reuse it.
    from functions.api.connections import failed_items

    rows, truncated = failed_items(connection_id)
    if not rows:
        return ""
    items = []
    for row in rows[:MAX_FAILED_SHOWN]:
        what = row["path"] or f"item {row['itemId']}"
        items.append(f'<li><span class="mono">{_e(what)}</span> <span class="muted">({_e(row["attempts"])} attempts)</span>'
                     f'<div class="error-text">{_e(row["error"] or "")}</div></li>')
    more = f'<p class="muted">{_e(total)} in all; the product API lists them.</p>' if truncated or len(rows) > MAX_FAILED_SHOWN else ""
    return f'<section><h2>Items that could not be mirrored</h2><ul class="failed">{"".join(items)}</ul>{more}</section>'


def _skipped_section(connection_id: str) -> str:
    from functions.api.connections import skipped_items

    rows, truncated = skipped_items(connection_id)
    if not rows:
        return ""
    items = [f'<li><span class="mono">{_e(row["path"] or "item " + row["itemId"])}</span>'
             f' <span class="muted">{_e(row["reason"])}</span></li>' for row in rows[:MAX_FAILED_SHOWN]]
    more = '<p class="muted">More are skipped; the product API lists them.</p>' if truncated or len(rows) > MAX_FAILED_SHOWN else ""
    return f'<section><h2>Items left out of the mirror on purpose</h2><ul class="failed">{"".join(items)}</ul>{more}</section>'


def mirror(connection_id: str, *, folder: str, key: str | None, refresh: bool, now: datetime | None = None) -> Page:
    """One folder of a connection's mirror. 404 for an unknown connection, 400 for a bad folder."""
    from functions.api.files import validate_prefix

    now = now or datetime.now(UTC)
    links = Links(key, refresh)
    try:
        connection = require_connection(connection_id)
        folder = validate_prefix(folder.strip("/") + "/" if folder.strip("/") else "")
    except ApiError as refused:
        return Page(refused.status, _layout("Not found" if refused.status == 404 else "Bad request",
                                            f'<div class="empty"><p>{_e(refused.message)}</p></div>', links, None,
                                            crumbs=[("Status", links.overview())], now=now))
    folders, files, truncated = _folder_entries(connection_id, folder)
    rows = []
    for name in folders:
        rows.append(f'<tr><td><a class="folder" href="{_e(links.mirror(connection_id, folder + name))}">{_e(name)}/</a></td>'
                    '<td class="muted">folder</td><td></td><td></td></tr>')
    for blob in files:
        path = blob.name[len(storage.mirror_prefix(connection_id)):]
        name = path[len(folder):]
        quick_xor = blob.metadata.get("quickxorhash", "")
        rows.append(f'<tr><td><a href="{_e(links.download(connection_id, path))}">{_e(name)}</a></td>'
                    f'<td>{_e(_size(blob.size))}</td><td>{_when(blob.last_modified, now)}</td>'
                    f'<td class="mono muted" title="quickXorHash">{_e(quick_xor)}</td></tr>')
    if rows:
        listing = ('<div class="scroll"><table><thead><tr><th>Name</th><th>Size</th><th>Mirrored</th><th>quickXorHash</th>'
                   f'</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')
        if truncated:
            listing += f'<p class="muted">Showing the first {MAX_LISTED} entries; the product API lists everything.</p>'
    else:
        listing = '<div class="empty"><p>This folder is empty in the mirror.</p></div>'
    account = connection.display_name or connection.account_id
    crumbs: list[tuple[str, str | None]] = [("Status", links.overview()), (account, links.mirror(connection_id))]
    walked = ""
    for part in [p for p in folder.split("/") if p]:
        walked += part + "/"
        crumbs.append((part, links.mirror(connection_id, walked)))
    crumbs[-1] = (crumbs[-1][0], None)
    head = (f'<section class="detail"><div>{_state_badge(connection)}</div>'
            f'<div><span class="label">Account</span> {_e(connection.email or account)}</div>'
            f'<div><span class="label">Last sync</span> {_when(connection.last_sync_finished_at, now)}</div>'
            f'<div><span class="label">Subscription</span> {_subscription(connection, now)}</div></section>')
    if connection.last_sync_error:
        head += f'<div class="alert">{_e(connection.last_sync_error)}</div>'
    body = (head + _failed_section(connection_id, connection.items_failed) + _skipped_section(connection_id)
            + f"<section>{listing}</section>")
    toggle = links.flipped().mirror(connection_id, folder)
    return Page(200, _layout(f"{account} · mirror", body, links, toggle, crumbs=crumbs, now=now))


def error_page(message: str) -> Page:
    links = Links(None, False)
    return Page(503, _layout("Unavailable", f'<div class="empty"><p>{_e(message)}</p></div>', links, None,
                             crumbs=[("Status", None)], now=datetime.now(UTC)))


# ---- layout ----------------------------------------------------------------------------------

_CSS = """
*{box-sizing:border-box}body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1f2328;background:#f6f8fa}header{background:#0b3d91;color:#fff;padding:14px 32px;display:flex;
align-items:center;justify-content:space-between}header .brand{font-weight:600;font-size:16px}
header a{color:#dbe7ff;text-decoration:none;margin-left:16px}main{max-width:1180px;margin:0 auto;padding:20px 32px}
nav.crumbs{margin:4px 0 16px;color:#57606a}nav.crumbs a{color:#0b5cd5;text-decoration:none}
h2{font-size:15px;margin:24px 0 10px;color:#24292f}.cards{display:flex;gap:14px;flex-wrap:wrap}
.card{background:#fff;border:1px solid #d0d7de;border-radius:10px;padding:14px 18px;min-width:180px;flex:1}
.label{color:#57606a;font-size:12px;text-transform:uppercase;letter-spacing:.04em}.figure{font-size:26px;font-weight:600}
.sub{color:#57606a;font-size:12px}.sub.warn,.error{color:#cf222e}table{width:100%;border-collapse:collapse;
background:#fff;border:1px solid #d0d7de;border-radius:10px;overflow:hidden}th{text-align:left;font-size:12px;
color:#57606a;background:#f6f8fa;font-weight:600}th,td{padding:10px 14px;border-bottom:1px solid #eaeef2;
vertical-align:top}tr:last-child td{border-bottom:0}a{color:#0b5cd5}.account{font-weight:600;text-decoration:underline}
.browse{display:inline-block;margin-top:4px;font-size:12px}.scroll{overflow-x:auto;border-radius:10px}
.muted{color:#6e7781}.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
.badge{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12px;font-weight:600;background:#eaeef2}
.badge.active{background:#dafbe1;color:#116329}.badge.reauth_required{background:#fff1c2;color:#7d4e00}
.badge.disconnected{background:#eaeef2;color:#57606a}.badge.syncing{background:#ddf4ff;color:#0969da}
.error-text{color:#cf222e;font-size:12px;margin-top:4px;word-break:break-word}
.alert{background:#ffebe9;border:1px solid #ffcecb;color:#82071e;border-radius:8px;padding:10px 14px;margin:12px 0}
.empty{background:#fff;border:1px dashed #d0d7de;border-radius:10px;padding:28px;text-align:center;color:#57606a}
.button{display:inline-block;background:#0b5cd5;color:#fff;padding:8px 16px;border-radius:6px;text-decoration:none}
.detail{display:flex;gap:28px;flex-wrap:wrap;align-items:center;background:#fff;border:1px solid #d0d7de;
border-radius:10px;padding:12px 18px;margin-bottom:14px}.folder{font-weight:600;text-decoration:none}ul.failed{background:#fff;
border:1px solid #d0d7de;border-radius:10px;padding:10px 32px}footer{color:#6e7781;font-size:12px;padding:16px 32px;
text-align:center}.mono,.error-text,nav.crumbs{overflow-wrap:anywhere}
@media (max-width:640px){header,main,footer{padding-left:12px;padding-right:12px}header{flex-wrap:wrap;gap:4px}
header a{margin-left:10px}.card{min-width:140px}th,td{padding:8px}}
"""


def _layout(title: str, body: str, links: Links, toggle_url: str | None, *,
            crumbs: Iterable[tuple[str, str | None]], now: datetime) -> str:
    """`toggle_url`: this page with auto-refresh flipped; None for pages that don't refresh."""
    refresh = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if links.refresh and toggle_url else ""
    toggle = ""
    if toggle_url:
        label = "Pause auto-refresh" if links.refresh else "Resume auto-refresh"
        toggle = f'<a href="{_e(toggle_url)}">{label}</a>'
    trail = " / ".join(f'<a href="{_e(url)}">{_e(text)}</a>' if url else f"<span>{_e(text)}</span>" for text, url in crumbs)
    stamp = now.strftime("%H:%M:%S UTC")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'{refresh}<title>{_e(title)} · OneDrive mirror</title><style>{_CSS}</style></head><body>'
        f'<header><div class="brand">OneDrive mirror</div><div><span>Updated {_e(stamp)}</span>{toggle}</div></header>'
        f'<main><nav class="crumbs">{trail}</nav>{body}</main>'
        '<footer>Files are mirrored to Azure Blob Storage as they change in OneDrive.</footer></body></html>'
    )
