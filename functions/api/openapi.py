"""The product API's OpenAPI 3.1 document, defined once here: served at GET /api/openapi.json and
written to docs/openapi.json by `python -m functions.api.openapi > docs/openapi.json`."""

from __future__ import annotations

import json
from typing import Any

_NULLABLE_STRING = {"type": ["string", "null"]}
_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}

SCHEMAS: dict[str, Any] = {
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
            "ref": {"type": "string", "description": "The product's own user id, given to /api/connect?ref="},
            "createdAt": _TIMESTAMP,
            "connectedAt": _TIMESTAMP,
            "subscriptionExpiresAt": _TIMESTAMP,
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
    "ConnectionDetail": {
        "allOf": [
            {"$ref": "#/components/schemas/Connection"},
            {
                "type": "object",
                "required": ["failedItems", "failedItemsTruncated"],
                "properties": {
                    "failedItems": {"type": "array", "items": {"$ref": "#/components/schemas/FailedItem"}},
                    "failedItemsTruncated": {"type": "boolean"},
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


PATHS: dict[str, Any] = {
    "/connections": {"get": {
        "operationId": "list_connections",
        "summary": "List connections, optionally those of one product user (ref), a page at a time",
        "parameters": [
            {"name": "ref", "in": "query", "schema": {"type": "string"}, "description": "Only connections made with /api/connect?ref=<ref>"},
            {**_LIMIT, "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
            _CURSOR,
        ],
        "responses": {"200": _json("A page of connections", "ConnectionPage"), "400": _error("Bad limit, ref or cursor"),
                      "401": _UNAUTHORIZED},
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
            "(400). Files larger than DOWNLOAD_INLINE_MAX_BYTES answer with a redirect to a short-lived read-only "
            "URL (or 413 when DOWNLOAD_REDIRECT=never; ranges are then served up to that size at a time)."
        ),
        "parameters": [
            _CONNECTION_ID,
            {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "Range", "in": "header", "schema": {"type": "string"}, "example": "bytes=0-1023"},
            {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
            {"name": "If-Modified-Since", "in": "header", "schema": {"type": "string"}},
            {"name": "If-Range", "in": "header", "schema": {"type": "string"}},
        ],
        "responses": {
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
        },
    }},
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
