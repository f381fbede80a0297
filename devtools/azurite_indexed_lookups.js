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

// LokiJS updates an array of documents by rebuilding every binary index of the collection, and
// removes one (even an empty one) by first mapping every document's position. Azurite does both on
// each queue receive (the expired messages, the received ones): every poll of the sync queue cost
// all the messages of the account (0.25 s at 20,000 unconsumed change events), stalling every
// service of the process. One document at a time, the indices are kept in place instead: the
// same documents change.
const update = Loki.Collection.prototype.update;
Loki.Collection.prototype.update = function (doc) {
  if (!Array.isArray(doc)) return update.call(this, doc);
  for (const one of doc) update.call(this, one);
};
// (A long array still goes as one batch: its one mapping costs less than many removals.)
const remove = Loki.Collection.prototype.remove;
Loki.Collection.prototype.remove = function (doc) {
  if (!Array.isArray(doc) || doc.length > 100) return remove.call(this, doc);
  for (const one of doc) remove.call(this, one);
};
