// Benchmarks only (devtools/azurite.py, `Azurite(gc_interval_ms=...)`): Azurite's blob garbage
// collection (BlobGCManager) runs a mark and sweep every 10 minutes over every blob and every
// uncommitted block, synchronously in pages (LokiJS filters and sorts the whole collection for
// each page of 5,000). This sets its interval from AZURITE_GC_INTERVAL_MS (0: never after the
// first) and writes each mark and sweep's start and duration to stderr (azurite.log), so a
// benchmark can tell whether a slow figure overlapped one.
"use strict";
const path = require("path");

const interval = Number(process.env.AZURITE_GC_INTERVAL_MS);
const manager = require(path.join(path.dirname(require.resolve("azurite/package.json")), "dist/src/blob/gc/BlobGCManager.js")).default;

const loop = manager.prototype.markSweepLoop;
manager.prototype.markSweepLoop = function () {
  if (Number.isFinite(interval)) this.gcIntervalInMS = interval > 0 ? interval : 2 ** 31 - 1;
  return loop.call(this);
};
const sweep = manager.prototype.markSweep;
manager.prototype.markSweep = async function () {
  const started = Date.now();
  try {
    return await sweep.call(this);
  } finally {
    process.stderr.write(`azurite-gc: mark and sweep at ${new Date(started).toISOString()} took ${Date.now() - started} ms\n`);
  }
};
