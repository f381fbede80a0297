"""The picker's HTML: server-rendered, no script at all (the CSP allows none), a form per folder.

Accessible by construction: native checkboxes with labels, folder names as links (keyboard and
screen readers know both), a breadcrumb `nav`, a `role=status` message; one column that fits
390 px.
"""

from __future__ import annotations

import html

from functions.picker.browse import Listing, folder_link
from functions.sync.selection import Mode

# No script; styles inline; forms only to ourselves; never framed; no Referer leaves the page.
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                                "form-action 'self'; frame-ancestors 'none'"),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

_STYLE = """body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem;margin:.2rem 0}nav ol{list-style:none;padding:0;margin:0;display:flex;flex-wrap:wrap;gap:.3rem}
nav li+li::before{content:"/";margin-right:.3rem;color:#888}fieldset{border:1px solid #ccc;border-radius:.4rem;padding:.5rem 1rem}
ul.items{list-style:none;padding:0;margin:0}ul.items li{display:flex;align-items:center;gap:.6rem;padding:.45rem 0;border-bottom:1px solid #eee}
ul.items li:last-child{border-bottom:0}.name{flex:1;min-width:0;overflow-wrap:anywhere}.size{color:#666;font-size:.85rem;white-space:nowrap}
input[type=checkbox]{width:1.3rem;height:1.3rem;flex:none}button{font:inherit;padding:.5rem 1rem;margin:.8rem .5rem 0 0;border-radius:.3rem;
border:1px solid #0a58ca;background:#0d6efd;color:#fff}button.secondary{background:#fff;color:#0a58ca}
a:focus,button:focus,input:focus{outline:3px solid #ffbf47;outline-offset:2px}.status{background:#e8f5e9;padding:.5rem 1rem;border-radius:.3rem}
.error{background:#fdecea}.note{color:#555;font-size:.9rem}"""


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")


def size_text(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def refused(message: str) -> str:
    return _page("The picker can't be opened", f"<main><h1>The picker can't be opened</h1><p>{html.escape(message)}</p></main>")


def app_folder(return_to: str) -> str:
    back = f'<p><a href="{html.escape(return_to, quote=True)}">Back</a></p>' if return_to else ""
    return _page("Your app folder", "<main><h1>Your app folder</h1><p>This app can only see its own folder in your "
                 "OneDrive (under Apps). Everything in that folder is shared with it; nothing else is.</p>" + back + "</main>")


def folder(listing: Listing, *, csrf: str, return_to: str, message: str = "", error: str = "") -> str:
    esc = html.escape
    crumbs = ['<li><a href="/api/picker">My files</a></li>']
    if listing.path:
        crumbs.append(f'<li aria-current="page">{esc(listing.path)}</li>')
    title = listing.path.rsplit("/", 1)[-1] if listing.path else "My files"
    notice = ""
    if message:
        notice = f'<p class="status" role="status">{esc(message)}</p>'
    elif error:
        notice = f'<p class="status error" role="alert">{esc(error)}</p>'
    if listing.mode is Mode.DRIVE:
        summary = "Right now the whole drive is shared. Tick folders or files to share only those."
    else:
        names = ", ".join(esc(item.path or item.name) for item in listing.selected[:5])
        more = f" and {len(listing.selected) - 5} more" if len(listing.selected) > 5 else ""
        summary = f"Shared now: {names}{more}."
    rows = []
    for index, entry in enumerate(listing.entries):
        box_id = f"item{index}"
        if entry.kind == "other":
            rows.append(f'<li><span class="name">{esc(entry.name)}</span><span class="size">can\'t be shared</span></li>')
            continue
        checked = " checked" if entry.selected else ""
        label = f"{'Folder' if entry.kind == 'folder' else 'File'} {entry.name}"
        name = (f'<a href="{esc(folder_link(entry.id), quote=True)}" aria-label="Open folder {esc(entry.name, quote=True)}">'
                f"{esc(entry.name)}/</a>" if entry.kind == "folder" else esc(entry.name))
        size = size_text(entry.size)
        rows.append(
            f'<li><input type="checkbox" id="{box_id}" name="item" value="{esc(entry.id, quote=True)}"{checked}'
            f' aria-label="Share {esc(label, quote=True)}">'
            f'<input type="hidden" name="shown" value="{esc(entry.id, quote=True)}">'
            f'<label class="name" for="{box_id}">{name}</label><span class="size">{esc(size)}</span></li>')
    if not rows:
        rows.append('<li><span class="name">This folder is empty.</span></li>')
    truncated = '<p class="note">Only the first 1,000 items of this folder are shown.</p>' if listing.truncated else ""
    inherited = ('<p class="note">Everything in this folder is already shared through a folder above it.</p>'
                 if listing.inherited and listing.mode is not Mode.DRIVE else "")
    back = f'<p><a href="{esc(return_to, quote=True)}">Done: back to the app</a></p>' if return_to else ""
    folder_field = f'<input type="hidden" name="folder" value="{esc(listing.folder_id, quote=True)}">'
    body = f"""<main>
<nav aria-label="Folder path"><ol>{''.join(crumbs)}</ol></nav>
<h1>Choose what to share</h1>
{notice}<p>{summary}</p>{inherited}
<form method="post" action="/api/picker">
<input type="hidden" name="csrf" value="{esc(csrf, quote=True)}">{folder_field}
<fieldset><legend>{esc(title)}</legend><ul class="items">{''.join(rows)}</ul></fieldset>{truncated}
<button type="submit" name="action" value="save">Share the ticked items</button>
<button type="submit" name="action" value="whole" class="secondary">Share my whole drive</button>
</form>
{back}
<p class="note">Only what you tick (and everything inside ticked folders) is copied. You can change this at any time.</p>
</main>"""
    return _page("Choose what to share", body)
