// Benchmarks only (devtools/azurite.py, `Azurite(indexed_lookups=True)`): Azurite finds a table
// row with LokiJS `findOne({PartitionKey, RowKey})` and a blob with `findOne({accountName,
// containerName, name, snapshot})`, and LokiJS uses the index of the first key only. Every row
// of a connection shares its PartitionKey and every blob its account, so each read or write
// scans them all: a 100,000-item sync becomes quadratic on the emulator, which real storage is
// not. Putting the most selective key first makes LokiJS use Azurite's own index on it; the
// query is the same conjunction, so the results are the same documents.
// Queue messages likewise: every message of the account (the change events of a 100,000-file
// initial sync, which no product consumes in a benchmark) was scanned by each receive and count
// of the sync queue, stalling every service of the process; `queueName` comes first.
"use strict";
const Loki = require("lokijs");

const SELECTIVE = ["RowKey", "messageId", "blobName", "name", "queueName"];

function selectiveFirst(query) {
  if (!query || typeof query !== "object" || Array.isArray(query)) return query;
  const keys = Object.keys(query);
  if (keys.length < 2 || keys.some((key) => key.startsWith("$"))) return query;
  const first = SELECTIVE.find((key) => key in query);
  if (first === undefined || keys[0] === first) return query;
  const reordered = { [first]: query[first] };
  for (const key of keys) if (key !== first) reordered[key] = query[key];
  return reordered;
}

// Every lookup (findOne, find, findAndRemove, chain().find) goes through Resultset.find.
const find = Loki.Resultset.prototype.find;
Loki.Resultset.prototype.find = function (query, firstOnly) {
  return find.call(this, selectiveFirst(query), firstOnly);
};
