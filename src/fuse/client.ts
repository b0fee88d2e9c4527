// A mounted Kurve client: the chunk cache, the Kurve file system over the given services, the
// FUSE session (src/fuse/protocol) and, when it can load, the kernel-side FUSE tracer (eBPF).
// Used by `kurve up` (services in-process), `kurve mount` (services over gRPC) and tests/bench.
import * as fs from 'node:fs';
import { moduleLogger } from '../common/logger';
import type { DataService } from '../datastore/api';
import type { MetaService } from '../metaserver/api';
import type { FsInfo } from '../mds/api';
import { mount } from './protocol/mount';
import type { FuseSessionApi, OpCounts, RawFileSystem, RequestContext } from './protocol/raw-fs';
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
  const cache = new ChunkCache({ dir: opts.cacheDir, limitBytes: opts.cacheSize });
  const kfs = new KurveFs({ meta: d.meta, data: d.data, fs: d.fs, sessionId: d.sessionId, cache, options: opts });
  let session: FuseSessionApi;
  try {
    session = await mount(withSlowLog(kfs, opts.slowOpMs), d.mountpoint, {
      allowOther: opts.allowOther,
      defaultPermissions: true,
      passthrough: opts.passthrough && process.getuid?.() === 0,
      fsname: `kurve:${d.fs.name}`,
      pollMicros: opts.pollUs,
    });
  } catch (err) {
    kfs.coherence.close();
    kfs.dataPath.close();
    cache.close();
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
    cache.close();
    throw err;
  }
  const { tracer, why } = traced;
  let closing: Promise<void> | undefined;
  const cleanup = async (): Promise<void> => {
    try {
      await kfs.shutdown();
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
      kfs.dataPath.close();
      cache.close();
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
 * Wraps the file system so every asynchronous operation slower than `thresholdMs` is logged once
 * (op, inode, duration; never names or contents) and counted.
 */
function withSlowLog(kfs: KurveFs, thresholdMs: number): RawFileSystem {
  if (!(thresholdMs > 0)) return kfs;
  const wrapped: Record<string, unknown> = Object.create(kfs) as Record<string, unknown>;
  const proto = Object.getPrototypeOf(kfs) as object;
  for (const name of Object.getOwnPropertyNames(proto)) {
    // Descriptors, not values: reading a getter on the prototype would run it without an instance.
    const fn = Object.getOwnPropertyDescriptor(proto, name)?.value as unknown;
    if (name === 'constructor' || typeof fn !== 'function') continue;
    if (['init', 'destroy', 'forget', 'batchForget'].includes(name)) {
      // Must run on the real instance (init stores the connection on `this`).
      wrapped[name] = (fn as (...a: unknown[]) => unknown).bind(kfs);
      continue;
    }
    wrapped[name] = function (this: unknown, ...args: unknown[]) {
      const t0 = performance.now();
      const r = (fn as (...a: unknown[]) => unknown).apply(kfs, args);
      if (!(r instanceof Promise)) return r;
      const ctx = args[0] as RequestContext | undefined;
      return r.finally(() => {
        const ms = performance.now() - t0;
        if (ms >= thresholdMs) {
          slowOps.inc({ op: name });
          log.warn({ op: name, ino: ctx?.nodeid, ms: Math.round(ms) }, 'slow operation');
        }
      });
    };
  }
  return wrapped as unknown as RawFileSystem;
}
