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

// A container's blobs under a prefix are listed with `name: {$regex: "^<escaped prefix>"}`, which
// no LokiJS index serves: each listing page (every folder move of the mirror) scanned all the
// blobs of the account. The names that start with a prefix are those of the name index's range
// [prefix, prefix with its last character incremented]; the regex stays on as a filter, so the
// results are the same documents.
const regexFilters = new WeakSet(); // the ones prefixRange made: not to be rewritten again
function prefixRange(query) {
  const name = query && typeof query === "object" ? query.name : undefined;
  if (!name || typeof name !== "object" || Object.keys(name).length !== 1 || typeof name.$regex !== "string" ||
      regexFilters.has(query)) {
    return query;
  }
  const prefix = literalPrefix(name.$regex);
  if (!prefix) return query;
  const upper = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  const regex = { name };
  regexFilters.add(regex);
  const filters = [{ name: { $between: [prefix, upper] } }, regex];
  for (const key of Object.keys(query)) if (key !== "name") filters.push({ [key]: query[key] });
  return { $and: filters };
}

// The literal a "^..." pattern of Azurite's escapeRegex stands for, or "" when it isn't one or no
// range of the index holds exactly its names.
function literalPrefix(pattern) {
  if (!pattern.startsWith("^")) return "";
  let literal = "";
  for (let i = 1; i < pattern.length; i++) {
    let char = pattern[i];
    if (char === "\\") {
      char = pattern[++i];
      if (char === undefined || /[A-Za-z0-9]/.test(char)) return ""; // a class such as \d, not a literal
    } else if ("^$*+?.()|[]{}".includes(char)) {
      return "";
    }
    literal += char;
  }
  // LokiJS orders strings that read as numbers first, numerically: a range holds a prefix's names
  // only if none of them can read as a number, i.e. the prefix (its last character aside) has a
  // character no number has ("/" in every mirror prefix).
  if (!/[^0-9A-Za-z.+\-\s]/.test(literal.slice(0, -1)) || literal.charCodeAt(literal.length - 1) === 0xffff) return "";
  return literal;
}

// Every lookup (findOne, find, findAndRemove, chain().find) goes through Resultset.find.
const find = Loki.Resultset.prototype.find;
Loki.Resultset.prototype.find = function (query, firstOnly) {
  return find.call(this, selectiveFirst(prefixRange(query)), firstOnly);
};

// LokiJS updates an array of documents by rebuilding every binary index of the collection, and
// removes one (even an empty one) as a batch (below). Azurite does both on
// each queue receive (the expired messages, the received ones): every poll of the sync queue cost
// all the messages of the account (0.25 s at 20,000 unconsumed change events), stalling every
// service of the process. One document at a time, the indices are kept in place instead: the
// same documents change.
const update = Loki.Collection.prototype.update;
Loki.Collection.prototype.update = function (doc) {
  if (!Array.isArray(doc)) return update.call(this, doc);
  for (const one of doc) update.call(this, one);
};
// Every removal by query (findAndRemove: each blob delete, each table row delete) or of an array
// is a batch, and a batch marks every binary index dirty: the next lookup sorted the whole
// collection again, per index (a blob delete took 5.6 ms among 2,000 blobs, 62 ms among 20,000).
// One document at a time, the indices are kept in place instead. (A long batch still goes as one:
// its one rebuild costs less than many removals.)
const removeBatchByPositions = Loki.Collection.prototype.removeBatchByPositions;
Loki.Collection.prototype.removeBatchByPositions = function (positions) {
  if (positions.length > 100) return removeBatchByPositions.call(this, positions);
  const docs = positions.map((position) => this.data[position]);
  for (const doc of docs) this.remove(doc);
};
