"""The product API's OpenAPI 3.1 document, defined once here: served at GET /api/openapi.json and
written to docs/openapi.json by `python -m functions.api.openapi > docs/openapi.json`."""

from __future__ import annotations

import json
from typing import Any

_NULLABLE_STRING = {"type": ["string", "null"]}
_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}

SCHEMAS: dict[str, Any] = {
    "ConnectSessionRequest": {
        "type": "object",
        "required": ["ref"],
        "additionalProperties": False,
        "properties": {
            "ref": {"type": "string", "minLength": 1, "maxLength": 512,
                    "description": "Your own id of the user who connects; stored on the connection"},
            "return_to": {"type": "string", "format": "uri", "maxLength": 2048,
                          "description": "Where the browser goes afterwards, with ?connection=<id>; must match "
                                         "ALLOWED_RETURN_URLS. Without it the user sees a 'OneDrive connected' page."},
            "login_hint": {"type": "string", "maxLength": 320, "description": "The Microsoft account to preselect"},
            "prompt": {"type": "string", "enum": ["select_account", "login", "consent"]},
            "relink": {"type": "boolean", "default": False,
                       "description": "Allow moving the account's existing connection from another ref to this one "
                                      "(recorded as previousRef/refChangedAt). Without it such a sign-in changes nothing."},
            "choose": {"type": "boolean", "default": False,
                       "description": "After consent, send the browser to the picker ('choose what to share') for the "
                                      "new connection, then to return_to. Without it the whole drive is mirrored "
                                      "until a selection is set."},
        },
    },
    "ConnectSession": {
        "type": "object",
        "required": ["url", "expiresAt"],
        "properties": {
            "url": {"type": "string", "format": "uri",
                    "description": "Send this one user's browser here (GET /api/connect?session=...). Single-use."},
            "expiresAt": {"type": "string", "format": "date-time", "description": "15 minutes after creation"},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }},
    },
    "Connection": {
        "type": "object",
        "required": ["id", "state", "account", "driveId", "ref", "lastSync"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "state": {"type": "string", "enum": ["active", "reauth_required", "disconnected"]},
            "account": {
                "type": "object",
                "required": ["id", "name", "email"],
                "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "email": {"type": "string"}},
            },
            "driveId": {"type": "string"},
            "ref": {"type": "string", "description": "The product's own user id, from the connect session"},
            "previousRef": {**_NULLABLE_STRING, "description": "The ref before a re-link (a connect session with relink)"},
            "refChangedAt": {**_TIMESTAMP, "description": "When a re-link moved the connection to this ref"},
            "createdAt": _TIMESTAMP,
            "connectedAt": _TIMESTAMP,
            "subscriptionExpiresAt": _TIMESTAMP,
            "subscriptionError": {
                "description": "Why Graph refused the change subscription lately (null when all is well); "
                               "the next attempt is not before retryAt",
                "type": ["object", "null"],
                "required": ["message"],
                "properties": {"message": {"type": "string"}, "since": _TIMESTAMP, "retryAt": _TIMESTAMP},
            },
            "lastSync": {
                "type": "object",
                "properties": {
                    "startedAt": _TIMESTAMP,
                    "finishedAt": _TIMESTAMP,
                    "error": _NULLABLE_STRING,
                    **{name: {"type": "integer", "minimum": 0} for name in (
                        "itemsCopied", "bytesCopied", "itemsMoved", "itemsDeleted", "itemsSkipped", "itemsFailed")},
                },
            },
        },
    },
    "FailedItem": {
        "type": "object",
        "required": ["itemId", "path", "error", "attempts"],
        "properties": {
            "itemId": {"type": "string"},
            "path": _NULLABLE_STRING,
            "error": _NULLABLE_STRING,
            "attempts": {"type": "integer", "minimum": 0},
            "updatedAt": _TIMESTAMP,
        },
    },
    "SkippedItem": {
        "type": "object",
        "required": ["itemId", "path", "reason"],
        "properties": {
            "itemId": {"type": "string"},
            "path": _NULLABLE_STRING,
            "reason": {"type": "string"},
        },
    },
    "ConnectionDetail": {
        "allOf": [
            {"$ref": "#/components/schemas/Connection"},
            {
                "type": "object",
                "required": ["failedItems", "failedItemsTruncated", "skippedItems", "skippedItemsTruncated"],
                "properties": {
                    "failedItems": {"type": "array", "items": {"$ref": "#/components/schemas/FailedItem"}},
                    "failedItemsTruncated": {"type": "boolean"},
                    # OneNote notebooks, items shared from other drives, malware, names and paths
                    # a blob can't carry: what the mirror leaves out on purpose, and why.
                    "skippedItems": {"type": "array", "items": {"$ref": "#/components/schemas/SkippedItem"}},
                    "skippedItemsTruncated": {"type": "boolean"},
                },
            },
        ],
    },
    "ConnectionPage": {
        "type": "object",
        "required": ["connections", "nextCursor"],
        "properties": {
            "connections": {"type": "array", "items": {"$ref": "#/components/schemas/Connection"}},
            "nextCursor": _NULLABLE_STRING,
        },
    },
    "File": {
        "type": "object",
        "required": ["path", "size", "quickXorHash", "lastModified", "itemId", "etag"],
        "properties": {
            "path": {"type": "string", "description": "Path inside the drive, '/'-separated"},
            "size": {"type": "integer", "minimum": 0},
            "quickXorHash": {**_NULLABLE_STRING, "description": "base64, as OneDrive reports it; null if OneDrive gave none"},
            "lastModified": {"type": "string", "format": "date-time", "description": "When the mirror copy was written"},
            "itemId": _NULLABLE_STRING,
            "etag": {"type": "string", "description": "The ETag a download of this file answers with"},
        },
    },
    "FilePage": {
        "type": "object",
        "required": ["files", "nextCursor"],
        "properties": {
            "files": {"type": "array", "items": {"$ref": "#/components/schemas/File"}},
            "nextCursor": _NULLABLE_STRING,
        },
    },
    "SelectedItem": {
        "type": "object",
        "required": ["id", "kind", "name", "path"],
        "properties": {
            "id": {"type": "string", "description": "The OneDrive item id"},
            "kind": {"type": "string", "enum": ["folder", "file"]},
            "name": {"type": "string"},
            "path": {"type": "string", "description": "Its path in the drive when it was selected (the id is what counts)"},
        },
    },
    "Selection": {
        "type": "object",
        "required": ["mode", "items", "deselected", "applied", "fixed"],
        "properties": {
            "mode": {"type": "string", "enum": ["drive", "items", "appFolder"]},
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/SelectedItem"}},
            "deselected": {"type": "string", "enum": ["remove", "keep"]},
            "applied": {"type": "boolean", "description": "A sync has taken this selection up (false right after a PUT)"},
            "fixed": {"type": "boolean", "description": "The app folder, set by ONEDRIVE_SCOPES: can't be changed"},
        },
    },
    "SelectionRequest": {
        "type": "object",
        "description": ("`{\"mode\": \"drive\"}`, or `{\"items\": [...]}`. The OneDrive File Picker (v8) result "
                        "(`{\"command\": \"pick\", \"items\": [...]}`) is accepted as it is: unknown fields are ignored."),
        "properties": {
            "mode": {"type": "string", "enum": ["drive", "items"]},
            "items": {"type": "array", "minItems": 1, "maxItems": 100, "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "maxLength": 256},
                    "path": {"type": "string", "description": "Instead of an id: `/Documents/Project`"},
                    "parentReference": {"type": "object", "properties": {
                        "driveId": {"type": "string", "description": "Must be the connection's drive"}}},
                },
            }},
            "deselected": {"type": "string", "enum": ["remove", "keep"], "default": "remove",
                           "description": "What happens to mirrored files that are no longer selected"},
        },
    },
    "PickerSession": {
        "type": "object",
        "required": ["url", "expiresAt"],
        "properties": {
            "url": {"type": "string", "format": "uri", "description": "Send the user's browser here; single-use"},
            "expiresAt": {"type": "string", "format": "date-time"},
        },
    },
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


_UNAUTHORIZED = {"description": "Missing or wrong function key"}
_CONNECTION_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "Connection id"}
_LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}}
_CURSOR = {"name": "cursor", "in": "query", "schema": {"type": "string"},
           "description": "`nextCursor` of the previous page; omit for the first page"}
_TEXT = {"schema": {"type": "string"}}
_FILE_HEADERS = {name: _TEXT for name in ("ETag", "Last-Modified", "Content-Disposition", "Accept-Ranges")}


def _file_bytes(description: str, extra_headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {**_FILE_HEADERS, **(extra_headers or {})},
        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
    }


# The two download routes answer alike: the conditional and range headers they read, and their answers.
_DOWNLOAD_HEADERS: list[dict[str, Any]] = [
    {"name": "Range", "in": "header", "schema": {"type": "string"}, "example": "bytes=0-1023"},
    {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
    {"name": "If-Modified-Since", "in": "header", "schema": {"type": "string"}},
    {"name": "If-Range", "in": "header", "schema": {"type": "string"}},
]
_DOWNLOAD_RESPONSES: dict[str, Any] = {
    "200": _file_bytes("The whole file", {"Content-Type": _TEXT}),
    "206": _file_bytes("Part of the file; Content-Range says which (possibly less than asked)",
                       {"Content-Range": _TEXT}),
    "302": {"description": "Redirect to a read-only signed URL valid for 10 minutes",
            "headers": {"Location": {"schema": {"type": "string", "format": "uri"}, "required": True}}},
    "304": {"description": "Not modified (If-None-Match / If-Modified-Since)", "headers": {"ETag": _TEXT}},
    "400": _error("Invalid path"),
    "401": _UNAUTHORIZED,
    "404": _error("No such connection, or no such file"),
    "409": _error("The file kept changing during the download"),
    "413": _error("Too large to serve whole here, and redirects are disabled: use Range"),
    "416": {"description": "Range not satisfiable", "headers": {"Content-Range": _TEXT}},
}

PATHS: dict[str, Any] = {
    "/connect-sessions": {"post": {
        "operationId": "create_connect_session",
        "summary": "A single-use, 15-minute Connect OneDrive link for one of your users",
        "description": (
            "Call this from your backend when the user chooses Connect OneDrive, then redirect their browser to "
            "`url`. /api/connect accepts nothing else: a OneDrive is attached to a product user only through a "
            "session your backend created for that user."
        ),
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ConnectSessionRequest"},
            "example": {"ref": "user-42", "return_to": "https://app.example.com/settings/onedrive"}}}},
        "responses": {"201": _json("The link", "ConnectSession"),
                      "400": _error("Bad body, ref, return_to, login_hint, prompt, relink or choose"),
                      "401": _UNAUTHORIZED, "413": _error("Body over 16 KiB"),
                      "503": _error("Storage unavailable; retry after Retry-After seconds")},
    }},
    "/connections": {"get": {
        "operationId": "list_connections",
        "summary": "List connections, optionally those of one product user (ref), a page at a time",
        "parameters": [
            {"name": "ref", "in": "query", "schema": {"type": "string"}, "description": "Only connections of this product user (the connect session's ref)"},
            {**_LIMIT, "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
            _CURSOR,
        ],
        "responses": {"200": _json("A page of connections", "ConnectionPage"), "400": _error("Bad limit, ref or cursor"),
                      "401": _UNAUTHORIZED, "503": _error("Storage unavailable; retry after Retry-After seconds")},
    }},
    "/connections/{id}": {
        "get": {
            "operationId": "get_connection",
            "summary": "A connection's state, account, last sync, counters and failed items",
            "parameters": [_CONNECTION_ID],
            "responses": {"200": _json("The connection", "ConnectionDetail"), "401": _UNAUTHORIZED,
                          "404": _error("No such connection")},
        },
        "delete": {
            "operationId": "delete_connection",
            "summary": "Disconnect: remove the subscription and the tokens; delete the mirror only if asked",
            "parameters": [_CONNECTION_ID, {"name": "deleteMirror", "in": "query",
                                            "schema": {"type": "string", "enum": ["true", "false"], "default": "false"}}],
            "responses": {"204": {"description": "Disconnected (idempotent)"}, "400": _error("Bad deleteMirror"),
                          "401": _UNAUTHORIZED, "404": _error("No such connection")},
        },
    },
    "/connections/{id}/selection": {
        "get": {
            "operationId": "get_selection",
            "summary": "What the connection mirrors: the whole drive, some folders and files, or the app folder",
            "parameters": [_CONNECTION_ID],
            "responses": {"200": _json("The selection", "Selection"), "401": _UNAUTHORIZED,
                          "404": _error("No such connection")},
        },
        "put": {
            "operationId": "put_selection",
            "summary": "Choose what the connection mirrors; the next sync (queued at once) applies it",
            "parameters": [_CONNECTION_ID],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/SelectionRequest"}}}},
            "responses": {"200": _json("The new selection", "Selection"),
                          "400": _error("Bad body, or an item that is unknown, shared, a notebook or on another drive"),
                          "401": _UNAUTHORIZED, "404": _error("No such connection"),
                          "409": _error("The app folder is the selection, or the connection needs a new sign-in"),
                          "413": _error("Body too large"), "503": _error("Microsoft Graph did not answer")},
        },
    },
    "/connections/{id}/picker-sessions": {"post": {
        "operationId": "create_picker_session",
        "summary": "A single-use, 15-minute link to the picker page, where the user chooses what to share",
        "parameters": [_CONNECTION_ID],
        "requestBody": {"required": False, "content": {"application/json": {"schema": {
            "type": "object", "properties": {"return_to": {"type": "string", "format": "uri",
                                                            "description": "Must match ALLOWED_RETURN_URLS"}}}}}},
        "responses": {"201": _json("The link", "PickerSession"), "400": _error("Bad body or return_to"),
                      "401": _UNAUTHORIZED, "404": _error("No such connection"),
                      "409": _error("The connection is not active")},
    }},
    "/connections/{id}/files": {"get": {
        "operationId": "list_files",
        "summary": "List the mirrored files, ordered by path, a page at a time",
        "parameters": [
            _CONNECTION_ID,
            {"name": "prefix", "in": "query", "schema": {"type": "string"},
             "description": "Only paths starting with this text, e.g. `Photos/`"},
            {**_LIMIT, "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
            _CURSOR,
        ],
        "responses": {"200": _json("A page of files", "FilePage"), "400": _error("Bad prefix, limit or cursor"),
                      "401": _UNAUTHORIZED, "404": _error("No such connection")},
    }},
    "/connections/{id}/files/{path}": {"get": {
        "operationId": "download_file",
        "summary": "Download a mirrored file; supports Range, If-None-Match, If-Modified-Since and If-Range",
        "description": (
            "`path` is the file's path in the drive, '/'-separated, each segment URL-encoded. Paths with "
            "`.`/`..` segments, empty segments, backslashes, encoded slashes or control characters are refused "
            "(400); a name holding a literal `%2F` or `%5C` can't be told from an encoded separator here: use "
            "download_content (`/connections/{id}/content?path=`). Files larger than DOWNLOAD_INLINE_MAX_BYTES answer with a redirect to a short-lived read-only "
            "URL (or 413 when DOWNLOAD_REDIRECT=never; ranges are then served up to that size at a time)."
        ),
        "parameters": [
            _CONNECTION_ID,
            {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}},
            *_DOWNLOAD_HEADERS,
        ],
        "responses": _DOWNLOAD_RESPONSES,
    }},
    "/connections/{id}/content": {"get": {
        "operationId": "download_content",
        "summary": "Download a mirrored file named in ?path= (works for every listed name); same rules as download_file",
        "description": (
            "`path` is the file's path in the drive exactly as the listing shows it, in the query (decoded once "
            "by every host, so names holding a literal `%2F`, `%5C` or `%2e%2e` work too). Paths with `.`/`..` "
            "or empty segments, backslashes or control characters are refused (400)."
        ),
        "parameters": [
            _CONNECTION_ID,
            {"name": "path", "in": "query", "required": True, "schema": {"type": "string"}, "example": "Docs/a.txt"},
            *_DOWNLOAD_HEADERS,
        ],
        "responses": _DOWNLOAD_RESPONSES,
    }}
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "onedrive-mirror product API",
            "version": "1.0.0",
            "description": (
                "Connections of the product's users to their personal OneDrive, and the live mirror of their "
                "files. Every operation needs a function key, in the `x-functions-key` header or the `code` "
                "query parameter."
            ),
        },
        "servers": [{"url": "/api"}],
        "security": [{"functionKey": []}, {"functionKeyQuery": []}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
    }


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
