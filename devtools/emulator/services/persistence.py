"""Keeping the state in a folder, so that a restarted emulator continues where it stopped.

``{folder}/state.json`` holds users (and the account that shares folders with them), drives (every item, tombstones included, with its change
number), sign-in's codes and tokens, pending consents, subscriptions and the URL signing key;
``{folder}/contents/{sha256}`` holds the bytes of literal files (generated files are kept as
their size and seed). Written atomically (a temporary file, then a rename) at most every
``interval`` seconds while something changed, and once more on stop. Delete the folder (or run
with ``--reset``) to start from nothing.

Not kept: switches, faults, the request and delivery logs, and delta enumerations in progress
(their nextLinks answer 410 after a restart, which clients handle as a resync).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from ..content import BytesContent, Content, GeneratedContent
from ..drive import Item, SeededSmallContent
from ..state import AuthCode, Grant, State, Subscription, User
from .drives import Drives

log = logging.getLogger(__name__)

FORMAT = 1
STATE_FILE = "state.json"
CONTENTS = "contents"


def reset_folder(folder: Path) -> None:
    """Forget everything kept in ``folder`` (what ``--reset`` does)."""
    for name in (STATE_FILE, CONTENTS):
        target = folder / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


class Persistence:
    def __init__(self, state: State, drives: Drives, folder: Path | str, interval: float = 0.5) -> None:
        self.state = state
        self.drives = drives
        self.folder = Path(folder)
        self.interval = interval
        self._saved_version = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----- the saver thread ----------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="emulator-persistence", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.save()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.save()
            except OSError as error:  # a full disk must not stop the emulator; the next round retries
                log.warning("could not save the emulator's state: %s", error)

    # ----- saving --------------------------------------------------------------------------------

    def save(self) -> bool:
        """Write the state if it changed since the last save; True if it did."""
        state = self.state
        with state.lock:
            version = state.version
            if version == self._saved_version:
                return False
            document, contents = self._document()
        self.folder.mkdir(parents=True, exist_ok=True)
        blob_dir = self.folder / CONTENTS
        blob_dir.mkdir(exist_ok=True)
        for digest, data in contents.items():
            target = blob_dir / digest
            if not target.exists():
                _write_atomically(target, data)
        _write_atomically(self.folder / STATE_FILE, json.dumps(document, separators=(",", ":")).encode())
        for stale in set(os.listdir(blob_dir)) - set(contents):
            if not stale.endswith(".tmp"):
                (blob_dir / stale).unlink(missing_ok=True)
        self._saved_version = version
        return True

    def _document(self) -> tuple[dict, dict[str, bytes]]:
        state = self.state
        contents: dict[str, bytes] = {}
        now = time.time()
        return {
            "format": FORMAT,
            "signing_key": state.signing_key.hex(),
            "download_epoch": state.download_epoch,
            "users": [self._user(user, contents) for user in state.users],
            "sharers": [self._user(user, contents) for user in state.sharers],
            # Expired codes and access tokens are dropped; refresh tokens die by epoch or expiry.
            "codes": {k: asdict(v) for k, v in state.codes.items() if v.expires_at > now},
            "access_tokens": {k: asdict(v) for k, v in state.access_tokens.items() if v.expires_at > now},
            "refresh_tokens": {k: asdict(v) for k, v in state.refresh_tokens.items() if v.expires_at > now},
            "pending": state.pending,
            "subscriptions": {k: _subscription(v) for k, v in state.subscriptions.items() if not v.expired},
        }, contents

    def _user(self, user: User, contents: dict[str, bytes]) -> dict:
        drive = user.drive
        return {
            "id": user.id,
            "email": user.email,
            "display_name": user.display_name,
            "consent_epoch": user.consent_epoch,
            "refresh_epoch": user.refresh_epoch,
            "consents": {client: sorted(scopes) for client, scopes in user.consents.items()},
            "drive": {
                "id": drive.id,
                "owner_name": drive.owner_name,
                "created": drive.created.isoformat(),
                "root_id": drive.root_id,
                "seq": drive.seq,
                "next_number": drive.next_number,
                "delta_epoch": drive.delta_epoch,
                "items": [_item(item, contents) for item in drive.items.values()],
            },
        }

    # ----- loading -------------------------------------------------------------------------------

    def load(self) -> bool:
        """Restore the saved state, if there is one; True if there was."""
        path = self.folder / STATE_FILE
        if not path.exists():
            return False
        document = json.loads(path.read_text())
        if document.get("format") != FORMAT:
            raise ValueError(f"{path}: saved by another version of the emulator; delete the folder or use --reset")
        state = self.state
        with state.lock:
            state.signing_key = bytes.fromhex(document["signing_key"])
            state.download_epoch = document["download_epoch"]
            state.users[:] = [self._restore_user(entry) for entry in document["users"]]
            state.sharers[:] = [self._restore_user(entry) for entry in document["sharers"]]
            state.codes.update({k: AuthCode(**v) for k, v in document["codes"].items()})
            state.access_tokens.update({k: Grant(**v) for k, v in document["access_tokens"].items()})
            state.refresh_tokens.update({k: Grant(**v) for k, v in document["refresh_tokens"].items()})
            state.pending.update(document["pending"])
            state.subscriptions.update({k: _restore_subscription(v) for k, v in document["subscriptions"].items()})
            self._saved_version = state.version
        return True

    def _restore_user(self, entry: dict) -> User:
        saved = entry["drive"]
        drive = self.drives.new_drive(saved["id"], saved["owner_name"])
        drive.created = datetime.fromisoformat(saved["created"])
        items = [self._restore_item(raw) for raw in saved["items"]]
        drive.restore(items, saved["root_id"], saved["seq"], saved["next_number"], saved["delta_epoch"])
        return User(
            id=entry["id"],
            email=entry["email"],
            display_name=entry["display_name"],
            drive=drive,
            consent_epoch=entry["consent_epoch"],
            refresh_epoch=entry["refresh_epoch"],
            consents={client: set(scopes) for client, scopes in entry["consents"].items()},
        )

    def _restore_item(self, raw: dict) -> Item:
        raw = dict(raw)
        content = raw.pop("content")
        raw["created"] = datetime.fromisoformat(raw["created"])
        raw["modified"] = datetime.fromisoformat(raw["modified"])
        item = Item(**raw)
        item.content = self._restore_content(content)
        return item

    def _restore_content(self, saved: dict | None) -> Content | None:
        if saved is None:
            return None
        if "sha256" in saved:
            return BytesContent((self.folder / CONTENTS / saved["sha256"]).read_bytes())
        if "generated" in saved:
            size, seed = saved["generated"]
            return GeneratedContent(size=size, seed=seed)
        size, seed = saved["seeded"]
        return SeededSmallContent(size, seed)


def _item(item: Item, contents: dict[str, bytes]) -> dict:
    return {
        "id": item.id,
        "name": item.name,
        "parent_id": item.parent_id,
        "kind": item.kind,
        "created": item.created.isoformat(),
        "modified": item.modified.isoformat(),
        "seq": item.seq,
        "version": item.version,
        "content_version": item.content_version,
        "content": _content(item.content, contents),
        "mime_type": item.mime_type,
        "malware": item.malware,
        "has_hash": item.has_hash,
        "listed_hash": item.listed_hash,
        "listed_size": item.listed_size,
        "deleted": item.deleted,
        "remote": item.remote,
    }


def _content(content: Content | None, contents: dict[str, bytes]) -> dict | None:
    if content is None:
        return None
    if isinstance(content, GeneratedContent):
        return {"generated": [content.size, content.seed]}
    if isinstance(content, SeededSmallContent):
        return {"seeded": [content.size, content.seed]}
    data = content.data if isinstance(content, BytesContent) else content.read()
    digest = hashlib.sha256(data).hexdigest()
    contents[digest] = data
    return {"sha256": digest}


def _subscription(subscription: Subscription) -> dict:
    saved = asdict(subscription)
    saved["expires_at"] = subscription.expires_at.isoformat()
    return saved


def _restore_subscription(saved: dict) -> Subscription:
    return Subscription(**{**saved, "expires_at": datetime.fromisoformat(saved["expires_at"])})


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)  # tokens: for this user only
        handle.write(data)
    os.replace(temporary, path)
