// Benchmarks only (devtools/azurite.py, `Azurite(indexed_lookups=True)`): Azurite finds a table row
// with LokiJS `findOne({PartitionKey, RowKey})`, and LokiJS uses the index of the first key only.
// Every row of a connection shares its PartitionKey, so each read or write scans the partition: a
// 100,000-item sync becomes quadratic on the emulator, which real Table Storage is not. Asking for
// RowKey first makes LokiJS use Azurite's own RowKey index; results are the same rows.
"use strict";
const Loki = require("lokijs");

const findOne = Loki.Collection.prototype.findOne;
Loki.Collection.prototype.findOne = function (query) {
  if (query && typeof query === "object" && "PartitionKey" in query && "RowKey" in query) {
    const { PartitionKey, RowKey, ...rest } = query;
    query = { RowKey, PartitionKey, ...rest };
  }
  return findOne.call(this, query);
};
