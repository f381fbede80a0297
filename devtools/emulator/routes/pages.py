"""Pages for people: the consent screen, sign-in errors, and a drive browser.

The drive page changes the drive through the control API (fetch + JSON), so what a person does
in the browser is exactly what a test does over HTTP, notifications included.
"""

from __future__ import annotations

import json
from html import escape
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ..drive import Drive, Item
from ..services import Services
from ..services.identity import GRAPH_SCOPES, OIDC_SCOPES
from ..state import State, User

BASE_CSS = """
*{box-sizing:border-box}
body{margin:0;font-family:"Segoe UI","Segoe UI Web",-apple-system,BlinkMacSystemFont,Roboto,"Helvetica Neue",Arial,sans-serif;color:#1b1b1b;background:#f3f2f1}
a{color:#0067b8;text-decoration:none}a:hover{text-decoration:underline}
button,.button{font:inherit;border:1px solid #8a8886;background:#fff;color:#1b1b1b;padding:6px 16px;min-width:96px;cursor:pointer;border-radius:2px}
button.primary,.button.primary{background:#0067b8;border-color:#0067b8;color:#fff}
button.primary:hover{background:#005da6}button:hover{background:#f3f2f1}
input[type=text],textarea{font:inherit;width:100%;padding:6px 8px;border:1px solid #8a8886;border-radius:2px}
.logo{display:inline-grid;grid-template-columns:10px 10px;gap:1px;vertical-align:middle}
.logo i{display:block;width:10px;height:10px}
.logo i:nth-child(1){background:#f25022}.logo i:nth-child(2){background:#7fba00}
.logo i:nth-child(3){background:#00a4ef}.logo i:nth-child(4){background:#ffb900}
.brand{font-size:20px;font-weight:600;color:#5e5e5e;margin-left:8px;vertical-align:middle}
.muted{color:#605e5c}
"""

CONSENT_CSS = """
body{display:flex;align-items:center;justify-content:center;min-height:100vh;background:#f2f2f2 linear-gradient(135deg,#e8eef5 0%,#f7f2ec 100%)}
.card{background:#fff;width:440px;max-width:94vw;padding:44px;box-shadow:0 2px 6px rgba(0,0,0,.2)}
.account{margin:16px 0 8px;font-size:15px}
h1{font-size:24px;font-weight:600;margin:8px 0 16px;line-height:1.25}
.app{display:flex;align-items:center;gap:12px;margin-bottom:16px}
.app .icon{width:48px;height:48px;border-radius:4px;background:#0067b8;color:#fff;display:flex;align-items:center;justify-content:center;font-size:22px;font-weight:600}
.app .name{font-weight:600;font-size:15px}.app .publisher{font-size:13px;color:#605e5c}
.scopes{list-style:none;padding:0;margin:8px 0 16px}
.scopes li{display:flex;gap:12px;padding:8px 0;border-top:1px solid #edebe9;font-size:14px}
.scopes li:last-child{border-bottom:1px solid #edebe9}
.scopes .check{color:#0067b8;font-weight:700}.scopes .detail{font-size:12px;color:#605e5c}
.accounts{margin:8px 0 16px;font-size:14px}
.accounts label{display:flex;align-items:center;gap:10px;padding:8px;border:1px solid #edebe9;margin-bottom:6px;cursor:pointer}
.accounts label:hover{background:#f3f2f1}
.avatar{width:32px;height:32px;border-radius:50%;background:#8764b8;color:#fff;display:flex;align-items:center;justify-content:center;font-size:13px}
.fine{font-size:12px;color:#605e5c;line-height:1.5}
.actions{display:flex;justify-content:flex-end;gap:8px;margin-top:24px}
.error-code{font-family:Consolas,monospace;font-size:13px;background:#fde7e9;color:#a80000;padding:8px;margin:12px 0}
"""

DRIVE_CSS = """
header{background:#0078d4;color:#fff;height:48px;display:flex;align-items:center;padding:0 20px;gap:16px}
header .title{font-size:16px;font-weight:600}header a{color:#fff}
header .spacer{flex:1}header select{font:inherit;padding:4px 8px;border:0;border-radius:2px}
main{max-width:1100px;margin:0 auto;padding:20px}
.toolbar{display:flex;gap:8px;align-items:center;background:#fff;padding:8px 12px;border-bottom:1px solid #edebe9}
.toolbar button{min-width:0;border:0;background:none;color:#323130;padding:6px 10px}
.toolbar button:hover{background:#f3f2f1}
.crumbs{font-size:20px;font-weight:600;margin:12px 0 16px}
.crumbs a{color:#323130}.crumbs span.sep{color:#a19f9d;margin:0 6px}
table{width:100%;border-collapse:collapse;background:#fff;font-size:14px}
th{text-align:left;font-weight:600;color:#605e5c;font-size:12px;padding:10px 12px;border-bottom:1px solid #edebe9}
td{padding:9px 12px;border-bottom:1px solid #f3f2f1;vertical-align:middle}
tr:hover td{background:#f5f9fd}
.name{display:flex;align-items:center;gap:10px}
.icon{width:22px;height:22px;display:inline-flex}
.row-actions{white-space:nowrap;text-align:right}
.row-actions button{min-width:0;border:0;background:none;color:#0067b8;padding:2px 6px}
.row-actions button:focus-visible,.toolbar button:focus-visible{outline:2px solid #0067b8;outline-offset:1px}
.table-box{overflow-x:auto;background:#fff}
@media (max-width:640px){main{padding:12px 8px}.toolbar{flex-wrap:wrap;padding:6px}.crumbs{font-size:17px;overflow-wrap:anywhere}
th.modified,td.modified{display:none}td,th{padding:8px 6px}.row-actions{white-space:normal}
.row-actions button{padding:4px 5px}.meta{overflow-wrap:anywhere}header{padding:0 10px;gap:8px}header select{max-width:45vw}}
.tag{font-size:11px;padding:1px 6px;border-radius:8px;background:#edebe9;color:#605e5c;margin-left:6px}
.tag.bad{background:#fde7e9;color:#a80000}
.empty{padding:48px;text-align:center;color:#605e5c;background:#fff}
dialog{border:0;box-shadow:0 6px 24px rgba(0,0,0,.25);padding:24px;width:520px;max-width:94vw}
dialog h2{margin:0 0 12px;font-size:20px;font-weight:600}
dialog label{display:block;font-size:13px;margin:10px 0 4px;color:#323130}
dialog textarea{height:180px;font-family:Consolas,monospace;font-size:13px}
dialog .actions{display:flex;justify-content:flex-end;gap:8px;margin-top:16px}
.toast{position:fixed;bottom:20px;left:50%;transform:translateX(-50%);background:#323130;color:#fff;padding:10px 16px;border-radius:2px;display:none}
.users{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:12px}
.users a{display:block;background:#fff;padding:16px;color:#323130;box-shadow:0 1px 2px rgba(0,0,0,.1)}
.users a:hover{text-decoration:none;box-shadow:0 2px 8px rgba(0,0,0,.15)}
.meta{font-size:12px;color:#605e5c;margin-top:16px}
"""


def _document(title: str, css: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{BASE_CSS}{css}</style></head><body>{body}</body></html>"
    )


LOGO = "<span class='logo'><i></i><i></i><i></i><i></i></span><span class='brand'>Microsoft</span>"


def _initials(name: str) -> str:
    return "".join(part[0] for part in name.split()[:2]).upper() or "?"


def consent_page(state: State, request_id: str, scopes: list[str], users: list[User], hinted: User | None, params: dict) -> str:
    descriptions = {**{v[0]: v[1] for v in GRAPH_SCOPES.values()}, **{v[0]: v[1] for v in OIDC_SCOPES.values()}}
    details = {
        "offline_access": "Allows the app to see and update the data you gave it access to, even when you are not using the app.",
        "Files.ReadWrite": "Allows the app to read, create, update and delete your files.",
        "Files.Read": "Allows the app to read your files.",
        "User.Read": "Allows you to sign in to the app with your Microsoft account and the app to read your profile.",
    }
    scope_items = "".join(
        f"<li><span class='check'>&#10003;</span><div>{escape(descriptions.get(s, s))}"
        f"<div class='detail'>{escape(details.get(s, s))}</div></div></li>"
        for s in scopes
    )
    chosen = hinted or users[0]
    accounts = "".join(
        f"<label><input type='radio' name='user' value='{escape(u.id)}'{' checked' if u is chosen else ''}>"
        f"<span class='avatar'>{escape(_initials(u.display_name))}</span>"
        f"<span><div>{escape(u.display_name)}</div><div class='muted'>{escape(u.email)}</div></span></label>"
        for u in users
    )
    app = escape(state.options.app_name)
    redirect_host = escape(params.get("redirect_uri", "").split("/")[2] if "//" in params.get("redirect_uri", "") else "")
    body = f"""
<div class='card'>
  {LOGO}
  <div class='account muted'>{escape(chosen.email)}</div>
  <h1>Let this app access your info?</h1>
  <div class='app'><div class='icon'>{escape(app[:1].upper())}</div>
    <div><div class='name'>{app}</div><div class='publisher'>unverified &middot; {redirect_host}</div></div></div>
  <div class='muted' style='font-size:14px'>{app} needs your permission to:</div>
  <form method='post' action='{escape(state.base_url)}/{escape(params.get("tenant", "consumers"))}/oauth2/v2.0/consent'>
    <input type='hidden' name='request' value='{escape(request_id)}'>
    <ul class='scopes'>{scope_items}</ul>
    <div class='muted' style='font-size:13px;margin-bottom:6px'>Continue as</div>
    <div class='accounts'>{accounts}</div>
    <p class='fine'>Accepting these permissions means that you allow this app to use your data as specified in
    their terms of service and privacy statement. You can change these permissions at
    https://microsoft.com/consent.</p>
    <div class='actions'>
      <button type='submit' name='action' value='deny'>Cancel</button>
      <button type='submit' name='action' value='accept' class='primary' autofocus>Accept</button>
    </div>
  </form>
  <p class='fine' style='margin-top:24px'>OneDrive emulator &mdash; no real Microsoft account is involved.</p>
</div>"""
    return _document(f"Let this app access your info? - {state.options.app_name}", CONSENT_CSS, body)


def signin_error(code: str, message: str, hint: str) -> HTMLResponse:
    body = f"""
<div class='card'>{LOGO}
  <h1 style='margin-top:24px'>Sorry, but we're having trouble signing you in.</h1>
  <div class='error-code'>{escape(f"{code}: {message}" if code else message)}</div>
  <p class='fine'>This is the OneDrive emulator's sign-in service. {escape(hint)}</p>
</div>"""
    return HTMLResponse(_document("Sign in error", CONSENT_CSS, body), status_code=400)


def _size(size: int) -> str:
    value = float(size)
    if size == 1:
        return "1 byte"
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return str(size)


# Inline SVG: emoji fonts are missing on many machines (and in headless browsers).
ICONS = {
    "folder": "<svg viewBox='0 0 24 24' width='22' height='22'><path fill='#FFB900' d='M2 6a2 2 0 0 1 2-2h5l2 2h9"
    "a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2z'/><path fill='#FFD75E' d='M2 9h20v9a2 2 0 0 1-2 2H4a2 2 0 0 "
    "1-2-2z'/></svg>",
    "remote": "<svg viewBox='0 0 24 24' width='22' height='22'><path fill='#8AB4E8' d='M2 6a2 2 0 0 1 2-2h5l2 2h9a2 2"
    " 0 0 1 2 2v10a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2z'/><circle cx='17' cy='16' r='4' fill='#0078D4'/><path stroke='#fff'"
    " stroke-width='1.4' d='M15.5 16h3M17 14.5v3'/></svg>",
    "package": "<svg viewBox='0 0 24 24' width='22' height='22'><rect x='3' y='3' width='18' height='18' rx='2' "
    "fill='#7719AA'/><text x='12' y='16.5' font-size='11' text-anchor='middle' fill='#fff' font-family='Segoe UI,"
    "Arial' font-weight='700'>N</text></svg>",
    "file": "<svg viewBox='0 0 24 24' width='22' height='22'><path fill='#fff' stroke='#8a8886' stroke-width='1.2' "
    "d='M6 2.5h8l4.5 4.5v14.5h-12.5z'/><path fill='none' stroke='#8a8886' stroke-width='1.2' d='M14 2.5v4.5h4.5'/>"
    "</svg>",
}


def _icon(item: Item) -> str:
    return ICONS.get(item.kind, ICONS["file"])


def _count(n: int) -> str:
    return "1 item" if n == 1 else f"{n} items"


def _drive_page(state: State, user: User, folder: Item) -> str:
    drive: Drive = user.drive
    with drive.lock:
        folder_path = drive.path_of(folder)
        crumbs = [f"<a href='/drive?{urlencode({'user': user.id})}'>My files</a>"]
        for ancestor in reversed(drive.ancestors(folder)[:-1] if folder.parent_id else []):
            crumbs.append(f"<a href='/drive?{urlencode({'user': user.id, 'folder': ancestor.id})}'>{escape(ancestor.name)}</a>")
        if folder.parent_id is not None:
            crumbs.append(escape(folder.name))
        children = sorted(drive.children_of(folder), key=lambda c: (c.kind != "folder", c.name.lower()))
        rows = []
        for child in children[:2000]:
            path = drive.path_of(child)
            if child.kind == "folder":
                name = f"<a href='/drive?{urlencode({'user': user.id, 'folder': child.id})}'>{escape(child.name)}</a>"
            elif child.kind == "file" and not child.malware:
                name = f"<a href='/_emulator/users/{user.id}/drive/content?path={quote(path)}'>{escape(child.name)}</a>"
            else:
                name = escape(child.name)
            tags = ""
            if child.kind == "package":
                tags += "<span class='tag'>OneNote</span>"
            if child.kind == "remote":
                tags += "<span class='tag'>Shared</span>"
            if child.malware:
                tags += "<span class='tag bad'>Malware</span>"
            editable = child.kind == "file" and child.size <= 1_000_000 and not child.malware
            label = escape(child.name)  # buttons say which item they act on, for screen readers
            actions = (
                (f"<button data-edit='{escape(path)}' aria-label='Edit {label}'>Edit</button>" if editable else "")
                + f"<button data-rename='{escape(path)}' aria-label='Rename {label}'>Rename</button>"
                + f"<button data-move='{escape(path)}' aria-label='Move {label}'>Move</button>"
                + f"<button data-delete='{escape(path)}' aria-label='Delete {label}'>Delete</button>"
            )
            size = _size(child.size) if child.kind == "file" else (_count(len(child.children)) if child.kind == "folder" else "")
            rows.append(
                f"<tr><td><div class='name'><span class='icon'>{_icon(child)}</span>{name}{tags}</div></td>"
                f"<td class='muted modified'>{child.modified.strftime('%b %d, %Y %H:%M')}</td><td class='muted'>{size}</td>"
                f"<td class='row-actions'>{actions}</td></tr>"
            )
    table = (
        "<div class='table-box'><table><thead><tr><th>Name</th><th class='modified'>Modified</th><th>File size</th>"
        "<th></th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
        if rows
        else "<div class='empty'>This folder is empty. Create a folder or a text file, or upload files.</div>"
    )
    user_options = "".join(
        f"<option value='{escape(u.id)}'{' selected' if u is user else ''}>{escape(u.email)}</option>" for u in state.users
    )
    # Every folder, for the Move dialog's chooser ("" is the drive's root).
    with drive.lock:
        folders = sorted(drive.path_of(item) for item in drive.walk() if item.kind == "folder" and item.parent_id)
    config = json.dumps({"api": f"/_emulator/users/{user.id}/drive", "folder": folder_path, "folders": ["", *folders]})
    body = f"""
<header><span class='title'>OneDrive</span><span class='muted' style='color:#cfe4fa'>emulator</span>
  <span class='spacer'></span>
  <select onchange="location='/drive?user='+this.value">{user_options}</select></header>
<div class='toolbar'>
  <button id='new-folder'>+ New folder</button>
  <button id='new-file'>+ New text file</button>
  <button id='upload'>&#8593; Upload</button><input type='file' id='file-input' multiple hidden>
</div>
<main>
  <div class='crumbs'>{'<span class="sep">&rsaquo;</span>'.join(crumbs)}</div>
  {table}
  <div class='meta'>{escape(user.display_name)} &middot; {escape(user.email)} &middot; drive {escape(drive.id)}
  &middot; changes here send notifications to the drive's subscriptions.</div>
</main>
<dialog id='editor'><form method='dialog'>
  <h2 id='editor-title'>New text file</h2>
  <label for='editor-name'>Name</label><input type='text' id='editor-name' required>
  <label for='editor-content'>Content</label><textarea id='editor-content'></textarea>
  <div class='actions'><button value='cancel'>Cancel</button><button value='save' class='primary' id='editor-save'>Save</button></div>
</form></dialog>
<dialog id='mover'><form method='dialog'>
  <h2 id='mover-title'>Move</h2>
  <label for='mover-folder'>To folder</label><select id='mover-folder' style='font:inherit;width:100%;padding:6px'></select>
  <div class='actions'><button value='cancel'>Cancel</button><button value='move' class='primary'>Move here</button></div>
</form></dialog>
<div class='toast' id='toast'></div>
<script>
const CFG = {config};
const join = (a, b) => a ? a + '/' + b : b;
async function call(op, body) {{
  const r = await fetch(CFG.api + '/' + op, {{method: 'POST', headers: {{'Content-Type': 'application/json'}}, body: JSON.stringify(body)}});
  if (!r.ok) {{ const e = await r.json().catch(() => ({{error: r.statusText}})); toast(e.error || 'Failed'); throw e; }}
  return r.json();
}}
function toast(text) {{ const t = document.getElementById('toast'); t.textContent = text; t.style.display = 'block'; setTimeout(() => t.style.display = 'none', 3000); }}
const parent = p => p.split('/').slice(0, -1).join('/');
document.getElementById('new-folder').onclick = async () => {{
  const name = prompt('Folder name'); if (name) {{ await call('folders', {{path: join(CFG.folder, name)}}); location.reload(); }}
}};
const editor = document.getElementById('editor');
let editing = null;
function openEditor(title, name, content, path) {{
  document.getElementById('editor-title').textContent = title;
  document.getElementById('editor-name').value = name; document.getElementById('editor-name').disabled = !!path;
  document.getElementById('editor-content').value = content; editing = path; editor.showModal();
}}
document.getElementById('new-file').onclick = () => openEditor('New text file', 'New document.txt', '', null);
editor.addEventListener('close', async () => {{
  if (editor.returnValue !== 'save') return;
  const path = editing || join(CFG.folder, document.getElementById('editor-name').value);
  await call('files', {{path, content: document.getElementById('editor-content').value}}); location.reload();
}});
document.getElementById('upload').onclick = () => document.getElementById('file-input').click();
document.getElementById('file-input').onchange = async (e) => {{
  for (const file of e.target.files) {{
    const bytes = new Uint8Array(await file.arrayBuffer()); let bin = '';
    for (let i = 0; i < bytes.length; i += 32768) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 32768));
    await call('files', {{path: join(CFG.folder, file.name), content_base64: btoa(bin)}});
  }}
  location.reload();
}};
document.querySelectorAll('[data-edit]').forEach(b => b.onclick = async () => {{
  const path = b.dataset.edit; const r = await fetch(CFG.api + '/content?path=' + encodeURIComponent(path));
  openEditor('Edit ' + path.split('/').pop(), path.split('/').pop(), await r.text(), path);
}});
document.querySelectorAll('[data-rename]').forEach(b => b.onclick = async () => {{
  const path = b.dataset.rename; const name = prompt('New name', path.split('/').pop());
  if (name) {{ await call('rename', {{path, name}}); location.reload(); }}
}});
const mover = document.getElementById('mover'); const moverFolder = document.getElementById('mover-folder');
let moving = null;
document.querySelectorAll('[data-move]').forEach(b => b.onclick = () => {{
  moving = b.dataset.move; const name = moving.split('/').pop();
  document.getElementById('mover-title').textContent = 'Move ' + name;
  // Not into itself, its own subfolders, or where it already is.
  const choices = CFG.folders.filter(f => f !== moving && !f.startsWith(moving + '/') && f !== parent(moving));
  moverFolder.replaceChildren(...choices.map(f => new Option(f ? f : 'My files (the top)', f)));
  mover.showModal();
}});
mover.addEventListener('close', async () => {{
  if (mover.returnValue !== 'move' || moving === null) return;
  await call('move', {{from: moving, to: join(moverFolder.value, moving.split('/').pop())}}); location.reload();
}});
document.querySelectorAll('[data-delete]').forEach(b => b.onclick = async () => {{
  const path = b.dataset.delete;
  if (confirm('Delete ' + path + '?')) {{ await call('delete', {{path}}); location.reload(); }}
}});
</script>"""
    return _document("My files - OneDrive emulator", DRIVE_CSS, body)


def _users_page(state: State) -> str:
    cards = "".join(
        f"<a href='/drive?user={escape(u.id)}'><div style='display:flex;gap:10px;align-items:center'>"
        f"<span class='avatar' style='width:36px;height:36px;border-radius:50%;background:#8764b8;color:#fff;"
        f"display:flex;align-items:center;justify-content:center'>{escape(_initials(u.display_name))}</span>"
        f"<div><div>{escape(u.display_name)}</div><div class='muted'>{escape(u.email)}</div></div></div></a>"
        for u in state.users
    )
    body = f"""
<header><span class='title'>OneDrive</span><span style='color:#cfe4fa'>emulator</span></header>
<main>
  <div class='crumbs'>Accounts</div>
  <div class='users'>{cards or "<div class='empty'>No accounts yet.</div>"}</div>
  <form id='add' style='margin-top:24px;background:#fff;padding:16px;display:flex;gap:8px;align-items:end'>
    <div style='flex:1'><label class='muted'>Email</label><input type='text' name='email' value='new.user@example.com'></div>
    <div style='flex:1'><label class='muted'>Name</label><input type='text' name='display_name' value='New User'></div>
    <button class='primary'>Add account</button></form>
  <div class='meta'>Sign-in: {escape(state.authority)} &middot; Graph: {escape(state.graph_base_url)} &middot;
  Control API: {escape(state.control_url)}</div>
</main>
<script>
document.getElementById('add').onsubmit = async (e) => {{
  e.preventDefault(); const f = new FormData(e.target);
  const r = await fetch('/_emulator/users', {{method: 'POST', headers: {{'Content-Type': 'application/json'}},
    body: JSON.stringify({{email: f.get('email'), display_name: f.get('display_name')}})}});
  const u = await r.json(); location = '/drive?user=' + u.id;
}};
</script>"""
    return _document("OneDrive emulator", DRIVE_CSS, body)


def routes(services: Services) -> list[Route]:
    state = services.state

    async def home(request: Request) -> Response:
        if len(state.users) == 1:
            return RedirectResponse(f"/drive?user={state.users[0].id}", status_code=302)
        return HTMLResponse(_users_page(state))

    async def drive(request: Request) -> Response:
        user = state.user_by_id(request.query_params.get("user", ""))
        if user is None:
            return HTMLResponse(_users_page(state))
        folder_id = request.query_params.get("folder") or user.drive.root_id
        folder = user.drive.live(folder_id)
        if folder is None or not folder.is_folder_like:
            folder = user.drive.get(user.drive.root_id)
        return HTMLResponse(_drive_page(state, user, folder))  # type: ignore[arg-type]

    return [Route("/", home), Route("/drive", drive)]
