"""Print a fresh token-encryption key ring entry: `python -m devtools.keys [key-id]`."""

import base64
import secrets
import sys
import time


def new_key_entry(key_id: str | None = None) -> str:
    key_id = key_id or f"k{int(time.time())}"
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


if __name__ == "__main__":
    print(new_key_entry(sys.argv[1] if len(sys.argv) > 1 else None))
