"""Table transactions (entity group transactions), written and read here rather than by the SDK.

The SDK builds a transaction's multipart body and parses its answer with the email package:
about 1 ms of CPU per entity (110 ms for 100 upserts, where one lone upsert costs 3 ms), and a
sync writes every item's rows in transactions, on the thread that runs the sync. This module
writes the same request (the service's `$batch`: one changeset of HTTP requests) in a few string
joins and reads the answer's status lines; the entities' JSON is the SDK's own serializer's,
and the request goes through the SDK client's pipeline (its credential, retries, transport).
`bench/transactions.py` measures both. (Azure Storage's tables, the app's; a Cosmos DB table
endpoint wants merges as POSTs, which only the SDK's path does.)
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from functions.storage.faults import status_error

if TYPE_CHECKING:
    from azure.data.tables import TableClient

Kind = Literal["upsert", "update", "delete"]  # upsert and update merge; update and delete need the row
_STATUS = re.compile(rb"^HTTP/1\.1 (\d{3})", re.MULTILINE)
_ERROR_CODE = re.compile(rb'"code"\s*:\s*"([^"]*)"')


def submit(client: TableClient, operations: Sequence[tuple[Kind, Mapping[str, Any]]], operation: str) -> None:
    """Run `operations` (at most 100, all of one partition) as one transaction: all or none. A
    failed one raises the project's error for its status (`NotFound`, `Conflict`, ...)."""
    from azure.core.rest import HttpRequest
    from azure.data.tables._serialize import _add_entity_properties

    if len({entity["PartitionKey"] for _, entity in operations}) > 1:
        raise ValueError("a transaction's operations must all be of one partition")  # as the SDK checks
    base = f"{client.scheme}://{client._primary_hostname}"  # as the SDK addresses its own requests
    changeset = f"changeset_{uuid.uuid4()}"
    parts = []
    for index, (kind, entity) in enumerate(operations):
        target = (f"{base}/{client.table_name}(PartitionKey='{_key(entity['PartitionKey'])}',"
                  f"RowKey='{_key(entity['RowKey'])}')")
        body = "" if kind == "delete" else json.dumps(_add_entity_properties(entity))
        lines = [f"--{changeset}", "Content-Type: application/http", "Content-Transfer-Encoding: binary",
                 f"Content-ID: {index}", "", f"{'DELETE' if kind == 'delete' else 'PATCH'} {target} HTTP/1.1",
                 f"x-ms-version: {client.api_version}", "DataServiceVersion: 3.0",
                 "Accept: application/json;odata=minimalmetadata"]
        if kind != "upsert":
            lines.append("If-Match: *")  # the row must exist, whatever its version
        if body:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body.encode())}"]
        parts.append("\r\n".join([*lines, "", body]))
    batch = f"batch_{uuid.uuid4()}"
    content = "\r\n".join([f"--{batch}", f"Content-Type: multipart/mixed; boundary={changeset}", "",
                           *parts, f"--{changeset}--", f"--{batch}--", ""]).encode()
    request = HttpRequest("POST", f"{base}/$batch", content=content, headers={
        "x-ms-version": client.api_version, "DataServiceVersion": "3.0", "MaxDataServiceVersion": "3.0;NetFx",
        "Content-Type": f"multipart/mixed; boundary={batch}", "Accept": "application/json"})
    # stream: the pipeline would decode the body by its content type, and knows no multipart
    response = client._client.send_request(request, stream=True)
    answer = response.read()
    if response.status_code != 202:
        raise status_error(operation, response.status_code, _error_code(answer))
    answered = list(_STATUS.finditer(answer))
    # A failed changeset is answered with the one operation that failed; else one answer each.
    failed = next((line for line in answered if not 200 <= int(line.group(1)) < 300), None)
    if failed is not None:
        raise status_error(operation, int(failed.group(1)), _error_code(answer[failed.end():]))
    if len(answered) != len(operations):
        raise status_error(operation, 0, "UnreadableTransactionAnswer")


def _key(value: str) -> str:
    """A key inside `(PartitionKey='…')`: quotes doubled (OData), then percent-encoded whole."""
    return quote(value.replace("'", "''"), safe="")


def _error_code(body: bytes) -> str | None:
    found = _ERROR_CODE.search(body)
    return found.group(1).decode(errors="replace") if found else None
