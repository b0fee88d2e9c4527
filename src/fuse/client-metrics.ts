// The FUSE client's own metrics (the session records per-opcode requests/latency/errors itself).
// Names follow the project rules: kurve_client_*, base units, counters end in _total, no inode labels.
import { fastCounter } from '../common/fast-metrics';
import { counter, gauge, histogram, LATENCY_BUCKETS } from '../common/metrics';

export const cacheHits = counter({
  name: 'kurve_client_cache_hits_total',
  help: 'Chunk reads served from the local chunk cache (by the daemon)',
});
export const cacheMisses = counter({
  name: 'kurve_client_cache_misses_total',
  help: 'Chunk reads that had to fetch the chunk from a datastore',
});
export const cacheFetchedBytes = counter({
  name: 'kurve_client_cache_fetched_bytes_total',
  help: 'Bytes fetched from datastores into the local chunk cache',
});
export const cacheEvictions = counter({
  name: 'kurve_client_cache_evictions_total',
  help: 'Chunks evicted from the local chunk cache (LRU, size limit)',
});
export const cacheUsedBytes = gauge({
  name: 'kurve_client_cache_used_bytes',
  help: 'Bytes of chunk data held in the local chunk cache',
});
export const cacheLimitBytes = gauge({
  name: 'kurve_client_cache_limit_bytes',
  help: 'Size limit of the local chunk cache',
});
export const passthroughOpens = counter({
  name: 'kurve_client_passthrough_opens_total',
  help: 'Opens answered with FUSE passthrough (the kernel does the I/O on the cached file)',
});
export const opens = fastCounter({
  name: 'kurve_client_opens_total',
  help: 'File opens by mode (passthrough or daemon-served)',
  labelNames: ['mode'] as const,
});
export const invalidations = fastCounter({
  name: 'kurve_client_invalidations_total',
  help: 'Notifications sent to the kernel to drop cached entries, attributes or data',
  labelNames: ['kind'] as const,
});
export const changeEvents = fastCounter({
  name: 'kurve_client_change_events_total',
  help: 'Change-feed events received from the metaserver, by kind',
  labelNames: ['kind'] as const,
});
export const readBytes = counter({
  name: 'kurve_client_read_bytes_total',
  help: 'Bytes returned by READ requests served by the daemon',
});
export const writtenBytes = counter({
  name: 'kurve_client_written_bytes_total',
  help: 'Bytes accepted by WRITE requests',
});
export const uploadedBytes = counter({
  name: 'kurve_client_uploaded_bytes_total',
  help: 'Bytes of chunk objects uploaded to datastores (flush, fsync, close)',
});
export const linkedBytes = counter({
  name: 'kurve_client_linked_bytes_total',
  help: 'Bytes of chunks copy_file_range stored by linking the source\'s object in a local datastore (nothing uploaded)',
});
export const commits = counter({
  name: 'kurve_client_commits_total',
  help: 'Data commits (new chunk versions) sent to the metaserver',
});
export const uploadDuration = histogram({
  name: 'kurve_client_upload_duration_seconds',
  help: 'Time to upload and commit an inode\'s dirty chunks',
  buckets: LATENCY_BUCKETS,
});
export const openHandles = gauge({
  name: 'kurve_client_open_handles',
  help: 'File and directory handles currently open',
});
export const inodesTracked = gauge({
  name: 'kurve_client_inodes_tracked',
  help: 'Inodes the kernel holds lookup counts on',
});
export const feedConnected = gauge({
  name: 'kurve_client_feed_connected',
  help: '1 while subscribed to the metaserver change feed (long kernel cache timeouts), 0 when degraded',
});
export const slowOps = counter({
  name: 'kurve_client_slow_operations_total',
  help: 'Operations slower than the slow-operation threshold',
  labelNames: ['op'] as const,
});

type Inc = { inc(n?: number): void };
/** One child per label value, made once: labels() (and inc({...})) hash their labels on every call. */
function perLabel(c: { labels(...values: string[]): Inc }): (value: string) => Inc {
  const children = new Map<string, Inc>();
  return (value) => {
    let ch = children.get(value);
    if (!ch) children.set(value, (ch = c.labels(value)));
    return ch;
  };
}
/**
 * Per-create hot paths: opens by mode, change events and invalidations by kind (fast counters:
 * a prom-client child validated its value and re-hashed its labels on every inc()).
 */
export const opensBy = perLabel(opens);
export const invalidationsBy = perLabel(invalidations);
export const changeEventsBy = perLabel(changeEvents);
