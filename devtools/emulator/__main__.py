"""python -m devtools.emulator --port 8090 [--demo] [--data DIR [--reset]]: run the emulator standalone."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from .server import Emulator
from .services.persistence import reset_folder

DEMO_EMAIL = "ada@example.com"


def add_demo_user(emu: Emulator):
    user = emu.add_user(DEMO_EMAIL, "Ada Lovelace")
    drive = user.drive
    drive.write_file("Documents/Welcome.txt", b"Welcome to the OneDrive emulator.\n")
    drive.write_file("Documents/Notes/ideas.md", b"# Ideas\n\n- mirror everything\n")
    drive.write_file("Pictures/holiday photo.jpg", size=2_500_000, seed=42)
    drive.write_file("empty.txt", b"")
    drive.add_onenote("Notebooks/Ada's notebook")
    drive.add_remote_item("Shared with me")
    return user


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--download-port", type=int, default=0, help="the download origin (default: any free port)")
    parser.add_argument("--client-id", default="emulator-client-id")
    parser.add_argument("--client-secret", default="emulator-client-secret")
    parser.add_argument("--redirect-uri", action="append", default=[], help="register exactly this redirect URI (repeatable)")
    parser.add_argument("--demo", action="store_true", help="add a demo user with a few files (once: kept in --data)")
    parser.add_argument("--auto-consent", action="store_true", help="skip the consent page")
    parser.add_argument("--allow-http-notification-urls", action="store_true",
                        help="accept http:// notification URLs (Graph demands https; a local app has no TLS)")
    parser.add_argument("--data", help="keep users, drives, tokens and subscriptions in this folder across restarts")
    parser.add_argument("--reset", action="store_true", help="forget what --data kept and start from nothing")
    args = parser.parse_args()

    if args.reset and args.data:
        reset_folder(Path(args.data))
    emu = Emulator(args.client_id, args.client_secret, args.redirect_uri, host=args.host, data_dir=args.data)
    emu.auto_consent = args.auto_consent
    emu.allow_http_notification_urls = args.allow_http_notification_urls
    emu.start(port=args.port, download_port=args.download_port)
    if args.demo:
        user = emu.user_by_email(DEMO_EMAIL)
        kept = user is not None
        user = user or add_demo_user(emu)
        print(f"demo user:       {user.email} (id {user.id}, drive {user.drive_id}){' kept from ' + args.data if kept else ''}")
    print(f"drive page:      {emu.base_url}/")
    print(f"authority:       {emu.authority}   (MICROSOFT_AUTHORITY)")
    print(f"graph:           {emu.graph_base_url}   (GRAPH_BASE_URL)")
    print(f"downloads:       {emu.download_base_url}")
    print(f"control API:     {emu.control_url}")
    print(f"client id:       {emu.client_id}   (MICROSOFT_CLIENT_ID; the secret is the one you passed)")
    if args.data:
        print(f"data:            {args.data}   (delete it, or pass --reset, to start from nothing)")
    print("Ctrl+C stops it.", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    emu.stop()


if __name__ == "__main__":
    main()
