// The all-in-one Kurve (`kurve up`): MDS, metaserver (lmdb) and datastore in this process, a
// default file system created on first start, the client mounted over the services IN-PROCESS
// (no gRPC hop), and the same services also on gRPC so a second client can `kurve mount` them.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Errno, FsError } from '../common/errno';
import { moduleLogger } from '../common/logger';
import { collectProcessMetrics, startMetricsServer, type MetricsServer } from '../common/metrics';
import { startServiceProcess, type RpcService, type ServiceProcess } from '../common/service';
import { ChunkStore } from '../datastore/chunk-store';
import { datastoreRpcService } from '../datastore/service';
import { hostOf, startBulkServer } from '../datastore/bulk-server';
import type { FsInfo, MountInfo } from '../mds/api';
import { Mds } from '../mds/mds';
import { LmdbMdsStore } from '../mds/lmdb-store';
import { mdsRpcService } from '../mds/service';
import { LmdbEngine } from '../metaserver/engines/lmdb';
import { Namespace, type NamespaceOptions } from '../metaserver/namespace';
import { metaserverRpcService } from '../metaserver/service';
import { mountKurve, type KurveMount } from '../fuse/client';
import { resolveMountOptions, type ClientOptions } from '../fuse/client-options';

const log = moduleLogger('embedded');

export const DEFAULT_LISTEN = '127.0.0.1:6700';
export const DEFAULT_METRICS = '127.0.0.1:9567';
export const DEFAULT_FS = 'default';

export interface EmbeddedOptions {
  /** Where metadata (lmdb), chunk objects and MDS state live. */
  readonly dataDir: string;
  /** Mount here (created if missing); omit to run the services only. */
  readonly mountpoint?: string;
  /** gRPC for other clients (HOST:PORT, port 0 = free); '' = none. Default 127.0.0.1:6700. */
  readonly listen?: string;
  /** /metrics (HOST:PORT); '' = none. Default 127.0.0.1:9567. */
  readonly metrics?: string;
  readonly fsName?: string;
  /** Chunk size for a NEW file system (default 4 MiB). */
  readonly chunkSize?: number;
  /** Client options (defaults from resolveMountOptions()); cacheDir defaults to <dataDir>/cache. */
  readonly client?: Partial<ClientOptions>;
  /** Skip fsync in lmdb and the datastore (benchmarks of the rest only: acknowledged data may be lost). */
  readonly noSync?: boolean;
  /** Metadata durability: 'written' (default; durable at fsync) or 'sync' (every change fsync'ed). */
  readonly durability?: 'sync' | 'written';
  readonly token?: string;
  /** Port of the datastore's bulk transport for other clients (on the listen host): 0 = free one (default), -1 = none. */
  readonly bulkPort?: number;
  /** Namespace GC timings (unlink grace of unheld files, stray-object sweep). */
  readonly namespace?: Pick<NamespaceOptions, 'unlinkGraceMs' | 'strayGraceMs' | 'sweepIntervalMs'>;
}

export interface EmbeddedHandle {
  readonly dataDir: string;
  readonly fs: FsInfo;
  readonly mds: Mds;
  readonly namespace: Namespace;
  readonly store: ChunkStore;
  /** gRPC address other clients use (`kurve mount --mds <rpcAddress>`), if listening. */
  readonly rpcAddress?: string;
  readonly metricsAddress?: string;
  readonly mount?: KurveMount;
  /** Unmounts (flushing dirty data), stops serving, closes the stores. Idempotent. */
  close(): Promise<void>;
  /** Resolves when the mount ended on its own (external umount) or close() finished. */
  readonly closed: Promise<void>;
}

export function defaultDataDir(): string {
  return process.getuid?.() === 0 ? '/var/lib/kurve' : path.join(os.homedir(), '.kurve');
}

export async function startEmbedded(opts: EmbeddedOptions): Promise<EmbeddedHandle> {
  const dataDir = path.resolve(opts.dataDir);
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  collectProcessMetrics();
  const undo: Array<() => Promise<void> | void> = [];
  const unwind = async (): Promise<void> => {
    for (const f of undo.reverse()) {
      try {
        await f();
      } catch (err) {
        log.warn({ err: String(err) }, 'shutdown step failed');
      }
    }
    undo.length = 0;
  };
  try {
    const store = await ChunkStore.open(path.join(dataDir, 'data'), { sync: !opts.noSync });
    undo.push(() => store.close());
    // 'written': a change is acknowledged once journaled in the page cache (a kill -9 loses
    // nothing; a machine crash at most the last ~50 ms), like a local file system; fsync and
    // fsyncdir make it durable through MetaService.flush(). Per-create fsyncs capped creates at
    // the disk's sync latency (~300/s here).
    const engine = new LmdbEngine({ path: path.join(dataDir, 'meta'), noSync: opts.noSync, durability: opts.durability ?? 'written' });
    undo.push(() => engine.close());
    const namespace = await Namespace.open(engine, { ...opts.namespace, datastore: store });
    undo.push(() => namespace.close());
    const mdsStore = LmdbMdsStore.open(path.join(dataDir, 'mds.mdb'));
    undo.push(() => mdsStore.close());
    const mds = await Mds.open({
      store: mdsStore,
      hooks: {
        onFsCreated: async (info) => {
          await namespace.createFs(info.fsId, { chunkSize: info.chunkSize });
        },
        expireSession: async (sessionId) => {
          await namespace.expireSession(sessionId);
        },
      },
    });
    undo.push(() => mds.close());
    const fsName = opts.fsName ?? DEFAULT_FS;
    const info = await getOrCreateFs(mds, fsName, opts.chunkSize ?? 0);

    // gRPC for other clients; this process's own client never goes through it.
    let rpc: ServiceProcess | undefined;
    const listen = opts.listen ?? DEFAULT_LISTEN;
    if (listen) {
      // Object bytes for other clients go over raw TCP (gRPC tops out near 200 MB/s here).
      let bulkPort = 0;
      if ((opts.bulkPort ?? 0) >= 0) {
        const bulk = await startBulkServer(store, { host: hostOf(listen), port: opts.bulkPort, token: opts.token });
        undo.push(() => bulk.close());
        bulkPort = bulk.port;
      }
      const services: RpcService[] = [
        mdsRpcService(mds, { token: opts.token }),
        metaserverRpcService(namespace, { token: opts.token }),
        datastoreRpcService(store, { token: opts.token }, () => bulkPort),
      ];
      rpc = await startServiceProcess({ name: 'kurve', listen, token: opts.token, services });
      undo.push(() => rpc!.close());
      const address = rpc.address;
      const id = `embedded-${os.hostname()}-${path.basename(dataDir)}`;
      const beat = async (): Promise<void> => {
        await mds.heartbeat('metaserver', id, address);
        await mds.heartbeat('datastore', id, address);
        await mds.heartbeat('mds', id, address);
      };
      await mds.register('metaserver', id, address);
      await mds.register('datastore', id, address);
      await mds.register('mds', id, address);
      const timer = setInterval(() => beat().catch((err: unknown) => log.warn({ err: String(err) }, 'self heartbeat failed')), mds.heartbeatMs);
      timer.unref();
      undo.push(() => clearInterval(timer));
    }
    let metrics: MetricsServer | undefined;
    const metricsListen = opts.metrics ?? DEFAULT_METRICS;
    if (metricsListen) {
      metrics = await startMetricsServer(metricsListen);
      undo.push(() => metrics!.close());
    }

    let mount: KurveMount | undefined;
    let session: MountInfo | undefined;
    if (opts.mountpoint) {
      const mountpoint = path.resolve(opts.mountpoint);
      session = await mds.mount(fsName, `${os.hostname()}:${process.pid}`, mountpoint);
      const sid = session.session.sessionId;
      undo.push(() => mds.unmount(sid));
      const keep = setInterval(() => {
        mds.keepalive(sid).catch((err: unknown) => log.warn({ err: String(err) }, 'session keepalive failed'));
      }, Math.max(100, Math.floor(session.leaseMs / 3)));
      keep.unref();
      undo.push(() => clearInterval(keep));
      // The datastore shares this disk: uploading early measured no gain here (see ClientOptions).
      const options = resolveMountOptions({}, { cacheDir: path.join(dataDir, 'cache'), earlyUploads: 0, ...opts.client });
      mount = await mountKurve({ meta: namespace, data: store, fs: info, sessionId: sid, mountpoint, options });
      const m = mount;
      undo.push(() => m.close());
    }

    let closing: Promise<void> | undefined;
    let resolveClosed!: () => void;
    const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
    const close = (): Promise<void> => (closing ??= unwind().finally(resolveClosed));
    // An external umount of the mount point ends this instance too.
    void mount?.closed.then(() => close());
    log.info({ dataDir, fs: info.name, rpc: rpc?.address, metrics: metrics?.address, mountpoint: mount?.mountpoint }, 'kurve up');
    return {
      dataDir, fs: info, mds, namespace, store, rpcAddress: rpc?.address, metricsAddress: metrics?.address, mount,
      close, closed,
    };
  } catch (err) {
    await unwind();
    throw err;
  }
}

async function getOrCreateFs(mds: Mds, name: string, chunkSize: number): Promise<FsInfo> {
  try {
    return await mds.getFs(name);
  } catch (err) {
    if (!(err instanceof FsError) || err.errno !== Errno.ENOENT) throw err;
  }
  try {
    return await mds.createFs(name, chunkSize);
  } catch (err) {
    if (err instanceof FsError && err.errno === Errno.EEXIST) return mds.getFs(name);
    throw err;
  }
}

