"""Every switch of the emulator, with the real service's behaviour as the default.

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
    zero_byte_empty_hashes: bool = True  # zero-byte files listed with "hashes": {}

    # --- content ---
    ignore_range: bool = False  # answer 200 with the whole file even when Range is sent
    download_url_lifetime: float = 3600
    reject_auth_on_download: bool = True  # an Authorization header on the download origin: 401
    download_rate: float = 0  # bytes/s per download (0: as fast as it goes), e.g. a home line

    # --- subscriptions and notifications ---
    validation_timeout: float = 10.0
    validate_on_renewal: bool = False  # handshake again on PATCH and reauthorize
    require_https_notification_url: bool = False  # the real service refuses http://
    max_subscription_minutes: int = 42300
    notification_debounce: float = 0.3  # seconds changes are gathered before one POST per URL
    notification_timeout: float = 3.0  # a delivery slower than this counts as failed (retried)
    notification_retry_delays: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 60, 120)
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
