"""Every switch of the emulator. The defaults are the real service's documented behaviour
(shared/reference/microsoft.md); a leniency is a switch someone turns on, saying why.

Set them on the emulator (``emu.delta_page_size = 3``), through ``PATCH /_emulator/options``, or
here directly (``emu.options``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Options:
    # --- sign-in ---
    app_name: str = "onedrive-mirror"
    auto_consent: bool = False  # authorize redirects back at once with a code
    access_token_lifetime: float = 3599  # seconds (expires_in)
    auth_code_lifetime: float = 600  # codes live about 10 minutes
    refresh_token_lifetime: float = 90 * 24 * 3600  # inactivity lifetime (web apps)

    # --- ids and items ---
    item_id_style: str = "current"  # "current": DRIVEID!s<32 hex> (since 2025) | "legacy": DRIVEID!123
    parent_id_drive_case: str | None = None  # None | "lower": parentReference.id with its drive part lowercased

    # --- delta ---
    delta_page_size: int = 200
    delta_order: str = "natural"  # "natural" (parents first) | "shuffled" | "children_first"
    delta_seed: int = 0  # for "shuffled"
    delta_empty_pages: bool = False  # an empty page after the first page, and before the deltaLink
    delta_repeat_ancestors: bool = True  # ancestors of the items of a page repeated on that page
    delta_link_style: str = "query"  # "query": delta?token=..., "function": delta(token='...')
    delta_resync_code: str = "resyncRequired"  # or resyncChangesApplyDifferences / ...UploadDifferences
    drive_id_quirk: str | None = None  # None | "drop_leading_zero" | "upper": parentReference.driveId
    tombstones: str = "partial"  # folder delete: "all" | "partial" | "folder_only" descendants tombstoned
    tombstone_parent_root: bool = True  # a tombstone's parentReference points at the root
    id_only_tombstones: bool = False  # tombstones as {"id", "deleted": {}} and nothing else (seen in the field)
    zero_byte_empty_hashes: bool = True  # zero-byte files listed with "hashes": {}

    # --- content ---
    content_redirect: bool = True  # False: /content answers 200 with the bytes itself, no 302
    ignore_range: bool = False  # answer 200 with the whole file even when Range is sent
    download_url_lifetime: float = 3600
    # Leniency for old clients (rclone < 1.67 sends Graph's bearer token to the download host):
    # the real service answers 401 there.
    allow_auth_on_download: bool = False
    download_rate: float = 0  # bytes/s per download (0: as fast as it goes), e.g. a home line

    # --- every request ---
    request_latency: float = 0.0  # seconds added to every Graph, sign-in and download request

    # --- subscriptions ---
    validation_timeout: float = 10.0
    validate_on_renewal: bool = False  # handshake again on PATCH and reauthorize
    # Leniency for local use: Graph refuses http:// notification URLs, but a local app has no TLS.
    allow_http_notification_urls: bool = False
    # Leniency for apps that don't handle 409 yet: Graph allows one subscription per resource and
    # changeType per app and user.
    allow_duplicate_subscriptions: bool = False
    max_subscription_minutes: int = 42300  # the enforced cap; the error text names it

    # --- notifications ---
    notification_debounce: float = 0.3  # seconds changes are gathered before one POST per URL
    notification_timeout: float = 3.0  # a delivery slower than this counts as failed (retried)
    # Retries of any non-2xx answer (and timeouts, refused connections) for up to 4 hours; the
    # delays are modelled seconds, the last one repeated until the window is over.
    notification_retry_delays: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1800)
    notification_retry_window: float = 4 * 3600
    # Modelled seconds per real second for the notifier's waits (retries, slow-endpoint delays):
    # 3600 makes Graph's 4 hours of retries pass in 4 seconds.
    time_scale: float = 1.0
    # Graph's slow-endpoint rule: answers over 2,900 ms are slow; with 10% slow (over at least
    # 100 notifications, counters reset every 10 minutes) delivery is delayed 10 minutes, with 15%
    # notifications are dropped.
    slow_response_seconds: float = 2.9
    slow_min_notifications: int = 100
    slow_window_seconds: float = 600
    slow_delay_fraction: float = 0.10
    slow_drop_fraction: float = 0.15
    slow_delay_seconds: float = 600
    notifications_paused: bool = False  # drop notifications (lost notifications)
    notifications_duplicate: bool = False  # every notification POST sent twice

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    def update(self, values: dict) -> None:
        unknown = set(values) - self.names()
        if unknown:
            raise KeyError(f"unknown options: {sorted(unknown)}")
        for name, value in values.items():
            if name == "notification_retry_delays":
                value = tuple(value)
            setattr(self, name, value)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}
