// Defaults shared by the metaserver, its CLI and `kurve up` (kept free of heavy imports so the
// CLI can show them in --help without loading gRPC or lmdb).
/** gRPC port of a standalone metaserver (`kurve up` serves every service on 6700 instead). */
export const DEFAULT_METASERVER_PORT = 6702;
export const DEFAULT_METASERVER_LISTEN = `127.0.0.1:${DEFAULT_METASERVER_PORT}`;
/** Replaced chunk objects wait this long before deletion, so readers mid-read are not broken. */
export const DEFAULT_GC_GRACE_MS = 30_000;
/**
 * A regular file whose last link goes while no session holds it stays (nlink 0) this long before
 * it is purged: a client registers its opens lazily (after ~1 s, to keep opens free of metaserver
 * writes), and a registration arriving within this window keeps the file as its orphan.
 */
export const DEFAULT_UNLINK_GRACE_MS = 10_000;
