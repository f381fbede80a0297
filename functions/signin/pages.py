"""The HTML pages a person sees during sign-in: small, friendly, escaped, and never holding a secret."""

from __future__ import annotations

import html

# The callback URL carries the code: pages must not leak it through a Referer or load anything.
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#222}}
h1{{font-size:1.4rem}} .note{{color:#666;font-size:.9rem}}</style></head>
<body><h1>{title}</h1><p>{message}</p>{extra}</body></html>
"""


def render(title: str, message: str, *, link: tuple[str, str] | None = None, note: str = "",
           again: str = "") -> str:
    """`again`: the URL of "Connect again", offered on every page where the sign-in didn't succeed."""
    extra = ""
    if again:
        extra += f'<p><a class="again" href="{html.escape(again, quote=True)}">Connect again</a></p>'
    if link and link[0] != again:
        extra += f'<p><a href="{html.escape(link[0], quote=True)}">{html.escape(link[1])}</a></p>'
    if note:
        extra += f'<p class="note">{html.escape(note)}</p>'
    return _TEMPLATE.format(title=html.escape(title), message=html.escape(message), extra=extra)


def connected(display_name: str) -> str:
    who = f" as {display_name}" if display_name else ""
    return render("OneDrive connected", f"Your OneDrive is connected{who}. Your files will appear shortly; you can close this window.")


def denied(error: str, return_to: str, again: str = "") -> str:
    link = (return_to, "Go back") if return_to else None
    if error == "access_denied":
        return render(
            "OneDrive was not connected",
            "You chose not to give access to your OneDrive, so nothing was connected and nothing was stored.",
            link=link,
            note="You can connect again at any time.",
            again=again,
        )
    return render(
        "OneDrive was not connected",
        "Microsoft could not complete the sign-in, so nothing was connected. Please try again.",
        link=link,
        note=f"Error: {error[:64]}",
        again=again,
    )


def bad_request(message: str, again: str = "") -> str:
    return render("This sign-in link can't be used", message, again=again)


def already_linked(return_to: str, again: str = "") -> str:
    return render(
        "This OneDrive is connected to another account",
        "The OneDrive you signed in with is already connected to a different account here, so nothing was changed.",
        link=(return_to, "Go back") if return_to else None,
        note="If this is your OneDrive and you want to move it to this account, ask the service to let you re-link it.",
        again=again,
    )


def storage_unavailable(again: str = "") -> str:
    return render(
        "Connecting OneDrive is paused for a moment",
        "This service can't reach its storage right now, so nothing was connected. Please try again in a minute.",
        again=again,
    )


def unavailable(again: str = "") -> str:
    return render(
        "Microsoft is not answering right now",
        "Your OneDrive could not be connected because Microsoft's services did not respond. Please try again in a few minutes.",
        again=again,
    )


def misconfigured(again: str = "") -> str:
    return render(
        "Connecting OneDrive is not available",
        "This service is not set up correctly to connect OneDrive. The problem has been logged for the people who run it.",
        again=again,
    )
