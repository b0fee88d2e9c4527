// A mounted Kurve client: the chunk cache, the Kurve file system over the given services, the
// FUSE session (src/fuse/protocol) and, when it can load, the kernel-side FUSE tracer (eBPF).
// Used by `kurve up` (services in-process), `kurve mount` (services over gRPC) and tests/bench.
import * as fs from 'node:fs';
import { moduleLogger } from '../common/logger';
import type { DataService } from '../datastore/api';
import type { MetaService } from '../metaserver/api';
import type { FsInfo } from '../mds/api';
import { mount } from './protocol/mount';
import { Opcode, opName } from './protocol/opcodes';
import type { FuseSessionApi, OpCounts } from './protocol/raw-fs';
import { ChunkCache } from './cache/chunk-cache';
import type { ClientOptions } from './client-options';
import { slowOps } from './client-metrics';
import { KurveFs } from './kurve-fs';

const log = moduleLogger('client');

export interface ClientDeps {
  readonly meta: MetaService;
  readonly data: DataService;
  readonly fs: FsInfo;
  readonly sessionId?: string;
  readonly mountpoint: string;
  readonly options: ClientOptions;
}

/** What the eBPF side offers us (src/ebpf/fuse-tracer.ts), kept structural to load it lazily. */
interface Tracer {
  addConnection(connId: number): void;
  removeConnection(connId: number): void;
  close(): void;
}

export interface KurveMount {
  readonly mountpoint: string;
  readonly kfs: KurveFs;
  readonly session: FuseSessionApi;
  readonly cache: ChunkCache;
  /** Kernel connection id (fuse tracepoints' `connection`). */
  readonly connectionId: number;
  /** Why the eBPF tracer is not running (undefined when it is). */
  readonly bpfUnavailable?: string;
  /** Requests the daemon received per opcode. */
  opCounts(): OpCounts;
  /** Flushes dirty data, unmounts, frees the cache. Idempotent. */
  close(): Promise<void>;
  /** Resolves once the mount ended (close(), external umount, or abort) and cleanup ran. */
  readonly closed: Promise<void>;
}

export async function mountKurve(d: ClientDeps): Promise<KurveMount> {
  const opts = d.options;
  if (!fs.existsSync(d.mountpoint)) fs.mkdirSync(d.mountpoint, { recursive: true });
  const cache = new ChunkCache({
    dir: opts.cacheDir, limitBytes: opts.cacheSize,
    fs: { fsId: d.fs.fsId, createdMs: d.fs.createdMs, chunkSize: d.fs.chunkSize },
  });
  const kfs = new KurveFs({ meta: d.meta, data: d.data, fs: d.fs, sessionId: d.sessionId, cache, options: opts });
  let session: FuseSessionApi;
  try {
    session = await mount(kfs, d.mountpoint, {
      allowOther: opts.allowOther,
      defaultPermissions: true,
      passthrough: opts.passthrough && process.getuid?.() === 0,
      fsname: `kurve:${d.fs.name}`,
      pollMicros: opts.pollUs,
      slowMs: opts.slowOpMs,
      onSlow: reportSlow,
    });
  } catch (err) {
    kfs.coherence.close();
    kfs.dataPath.close();
    // Nothing was served: what the cache adopted at start is still valid for the next mount.
    await cache.closeKeeping();
    throw err;
  }
  const connectionId = session.connectionId;
  raiseReadahead(connectionId, opts.readaheadKb);
  let traced: { tracer?: Tracer; why?: string };
  try {
    traced = await startTracer(opts, connectionId);
  } catch (err) {
    // --require-bpf: no mount without the tracer.
    await session.unmount().catch(() => undefined);
    kfs.coherence.close();
    kfs.dataPath.close();
    await cache.closeKeeping();
    throw err;
  }
  const { tracer, why } = traced;
  let closing: Promise<void> | undefined;
  const cleanup = async (): Promise<void> => {
    // Only a shutdown that uploaded everything keeps the cache for the next mount.
    let clean = false;
    try {
      await kfs.shutdown();
      clean = true;
    } finally {
      await session.unmount().catch(() => undefined);
      if (tracer) {
        try {
          tracer.removeConnection(connectionId);
        } catch {
          // the tracer may already be gone with its maps
        }
        tracer.close();
      }
      if (clean) kfs.dataPath.parkAll();
      kfs.dataPath.close();
      if (clean) await cache.closeKeeping();
      else cache.close();
    }
  };
  const close = (): Promise<void> => (closing ??= cleanup());
  // An external `umount` ends the session: clean up the same way.
  const closed = session.closed.then(() => close());
  log.info({ mountpoint: d.mountpoint, fs: d.fs.name, connectionId, bpf: why ?? 'on' }, 'mounted');
  return {
    mountpoint: d.mountpoint, kfs, session, cache, connectionId, bpfUnavailable: why,
    opCounts: () => session.opCounts(),
    close: async () => {
      await close();
      await session.closed;
    },
    closed,
  };
}

/**
 * The kernel clamps a FUSE mount's readahead to the bdi's read_ahead_kb (128 KiB by default) even
 * when INIT allowed more; daemon-served sequential reads went 121 -> 193 MB/s with 1 MiB here.
 */
function raiseReadahead(connectionId: number, kb: number): void {
  const file = `/sys/class/bdi/${Math.floor(connectionId / 2 ** 20)}:${connectionId % 2 ** 20}/read_ahead_kb`;
  try {
    fs.writeFileSync(file, String(kb));
  } catch (err) {
    log.debug({ file, err: String(err) }, 'cannot raise the mount\'s readahead');
  }
}

async function startTracer(opts: ClientOptions, connId: number): Promise<{ tracer?: Tracer; why?: string }> {
  if (opts.bpf === 'off') return { why: 'disabled (--no-bpf)' };
  let why: string;
  try {
    if (process.getuid?.() !== 0) throw new Error('not root (loading BPF needs CAP_BPF and CAP_PERFMON)');
    const mod = (await import('../ebpf/fuse-tracer')) as {
      FuseTracer: { open(): Tracer };
      registerFuseTracerMetrics?: () => void;
    };
    const tracer = mod.FuseTracer.open();
    tracer.addConnection(connId);
    mod.registerFuseTracerMetrics?.();
    // kurve_tcp_* (the `kurve rto` settings and per-prefix TCP statistics) are read from the pinned
    // tcp_tune maps at scrape time, so the mount's /metrics carries the kernel dashboard's TCP panels.
    (await import('../top/tcp-metrics')).registerTcpTuneMetrics();
    return { tracer };
  } catch (err) {
    why = (err as Error).message ?? String(err);
  }
  if (opts.bpf === 'require') throw new Error(`--require-bpf: the FUSE tracer cannot load: ${why}`);
  log.warn({ reason: why }, 'kernel FUSE tracing (eBPF) unavailable; the mount works without it (--no-bpf silences this)');
  return { why };
}

/**
 * Logs (op, inode, duration; never names or contents) and counts an operation the session saw
 * answered `ms` after it was read (MountOptions.slowMs). The op label is the file system method's
 * name, as when a wrapper around every method timed them.
 */
function reportSlow(opcode: number, nodeid: number, ms: number): void {
  const op = opcode === Opcode.RENAME2 ? 'rename' : opName(opcode).toLowerCase();
  slowOps.inc({ op });
  log.warn({ op, ino: nodeid, ms: Math.round(ms) }, 'slow operation');
}
