// `kurve mount`: a client of a distributed Kurve. Asks the MDS for the file system and where its
// services are (MountInfo), talks to a metaserver and to the datastores over gRPC (chunks spread
// over every datastore the MDS lists, see DatastoreDirectory), keeps the MDS session (lease)
// alive, and mounts. The FUSE side is the same mountKurve() as `kurve up`.
import * as os from 'node:os';
import * as path from 'node:path';
import { Errno, toErrno } from '../common/errno';
import { moduleLogger } from '../common/logger';
import { collectProcessMetrics, startMetricsServer, type MetricsServer } from '../common/metrics';
import { DatastoreDirectory } from '../datastore/directory';
import type { MountInfo } from '../mds/api';
import { MdsClient } from '../mds/client';
import { MetaClient } from '../metaserver/client';
import { mountKurve, type KurveMount } from './client';
import type { ClientOptions } from './client-options';

const log = moduleLogger('remote');

export interface RemoteMountOptions {
  /** MDS replica addresses (HOST:PORT). */
  readonly mds: string | readonly string[];
  readonly fsName: string;
  readonly mountpoint: string;
  readonly options: ClientOptions;
  readonly token?: string;
  /** /metrics address ('' or undefined = none). */
  readonly metrics?: string;
  /**
   * How long an MDS call (mount, session keepalive) keeps retrying through an MDS failover before
   * it fails (default 30 s): a leader election takes about one to two lease TTLs.
   */
  readonly mdsTimeoutMs?: number;
  /** How often the MDS's datastore list is read again (default 2 s). */
  readonly datastoreRefreshMs?: number;
}

export const DEFAULT_MDS_TIMEOUT_MS = 30_000;

export interface RemoteMount {
  readonly mount: KurveMount;
  readonly info: MountInfo;
  readonly metricsAddress?: string;
  close(): Promise<void>;
  readonly closed: Promise<void>;
}

export async function mountRemote(o: RemoteMountOptions): Promise<RemoteMount> {
  collectProcessMetrics();
  const mountpoint = path.resolve(o.mountpoint);
  const mds = new MdsClient(o.mds, { token: o.token, budgetMs: o.mdsTimeoutMs ?? DEFAULT_MDS_TIMEOUT_MS });
  let info: MountInfo;
  try {
    info = await mds.mount(o.fsName, `${os.hostname()}:${process.pid}`, mountpoint);
  } catch (err) {
    mds.close();
    throw err;
  }
  if (info.metaservers.length === 0 || info.datastores.length === 0) {
    await mds.unmount(info.session.sessionId).catch(() => undefined);
    mds.close();
    throw new Error(`the MDS knows no healthy ${info.metaservers.length === 0 ? 'metaserver' : 'datastore'} for "${o.fsName}"`);
  }
  const meta = new MetaClient(info.metaservers[0], { token: o.token });
  let datastores: DatastoreDirectory;
  try {
    datastores = await DatastoreDirectory.open(mds, { refreshMs: o.datastoreRefreshMs, client: { token: o.token }, replicas: info.fs.replicas });
  } catch (err) {
    await mds.unmount(info.session.sessionId).catch(() => undefined);
    meta.close();
    mds.close();
    throw err;
  }
  let sessionId = info.session.sessionId;
  let metrics: MetricsServer | undefined;
  let mount: KurveMount;
  try {
    if (o.metrics) metrics = await startMetricsServer(o.metrics);
    mount = await mountKurve({ meta, data: datastores.router, fs: info.fs, sessionId, mountpoint, options: o.options });
  } catch (err) {
    await metrics?.close();
    await mds.unmount(sessionId).catch(() => undefined);
    meta.close();
    datastores.close();
    mds.close();
    throw err;
  }
  // Keep the lease: a third of it between beats, so one lost beat is not an expiry.
  const keep = setInterval(() => {
    mds.keepalive(sessionId).catch((err: unknown) => {
      if (toErrno(err) === Errno.ENOENT) {
        // Expired (e.g. we were partitioned): open handles lost orphan protection; get a new session.
        log.error({ sessionId }, 'MDS session expired; registering a new one');
        mds.mount(o.fsName, `${os.hostname()}:${process.pid}`, mountpoint).then((i) => (sessionId = i.session.sessionId), () => undefined);
      } else {
        log.warn({ err: String(err) }, 'session keepalive failed');
      }
    });
  }, Math.max(200, Math.floor(info.leaseMs / 3)));
  keep.unref();
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => (closing ??= (async () => {
    clearInterval(keep);
    try {
      await mount.close();
    } finally {
      await mds.unmount(sessionId).catch((err: unknown) => log.warn({ err: String(err) }, 'MDS unmount failed'));
      await metrics?.close();
      meta.close();
      datastores.close();
      mds.close();
    }
  })());
  const closed = mount.closed.then(() => close());
  log.info({ mountpoint, fs: info.fs.name, replicas: info.fs.replicas, metaserver: info.metaservers[0], datastores: datastores.addresses() }, 'kurve mount');
  return { mount, info, metricsAddress: metrics?.address, close, closed };
}
