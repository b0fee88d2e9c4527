// A stateless metaserver over etcd: the etcd engine, a Namespace that persists each txn's events,
// and the etcd-watch change feed, behind the same gRPC service as the lmdb metaserver. Any number
// of these serve one file system at once (`kurve metaserver --etcd …`, `kurve dev cluster`).
import type { DataService } from '../../datastore/api';
import { startServiceProcess, ServiceProcess } from '../../common/service';
import { Heartbeat, startHeartbeat } from '../../mds/heartbeat';
import { EtcdWatchFeed } from '../feed-etcd';
import { Namespace, NamespaceOptions } from '../namespace';
import { metaserverRpcService } from '../service';
import { createEtcdEngine, EtcdEngine, metaPrefix } from './etcd';

export interface EtcdMetaserverOptions {
  /** HOST:PORT (port 0 = free port). */
  readonly listen: string;
  /** etcd endpoints: "host:port,host:port". */
  readonly etcd: string | readonly string[];
  /** Cluster name: the namespace lives under kurve/<cluster>/meta/ in etcd. Default "default". */
  readonly cluster?: string;
  readonly token?: string;
  readonly datastore?: DataService;
  readonly metricsListen?: string;
  /** Create these file systems (root directory) at start if missing (idempotent across metaservers). */
  readonly createFs?: readonly number[];
  readonly namespace?: Omit<NamespaceOptions, 'datastore' | 'feed' | 'persistEvents'>;
  /** MDS addresses: register and heartbeat as a metaserver when given. */
  readonly mds?: string | readonly string[];
  readonly advertise?: string;
  /** Server id registered with the MDS (default: ms-<address>; the server keeps no local state). */
  readonly id?: string;
  /** Deadline of one etcd call attempt and of its retries (ms). */
  readonly etcdAttemptMs?: number;
  readonly etcdTotalMs?: number;
  readonly graceMs?: number;
}

export interface EtcdMetaserver {
  readonly namespace: Namespace;
  readonly engine: EtcdEngine;
  readonly rpc: ServiceProcess;
  readonly address: string;
  close(): Promise<void>;
}

export async function startEtcdMetaserver(opts: EtcdMetaserverOptions): Promise<EtcdMetaserver> {
  const engine = await createEtcdEngine({
    endpoints: opts.etcd,
    prefix: metaPrefix(opts.cluster),
    attemptTimeoutMs: opts.etcdAttemptMs,
    totalTimeoutMs: opts.etcdTotalMs,
  });
  let feed: EtcdWatchFeed | undefined;
  let namespace: Namespace | undefined;
  let rpc: ServiceProcess;
  let heartbeat: Heartbeat | undefined;
  try {
    feed = await EtcdWatchFeed.start(engine, { ringSize: opts.namespace?.feedRingSize });
    namespace = await Namespace.open(engine, { ...opts.namespace, datastore: opts.datastore, feed, persistEvents: true });
    for (const fsId of opts.createFs ?? []) await namespace.createFs(fsId);
    const ns = namespace;
    rpc = await startServiceProcess({
      name: 'metaserver',
      listen: opts.listen,
      token: opts.token,
      metricsListen: opts.metricsListen,
      services: [metaserverRpcService(ns, { token: opts.token })],
      graceMs: opts.graceMs,
      onClose: [() => heartbeat?.stop(), () => ns.close(), () => engine.close()],
    });
  } catch (err) {
    await namespace?.close();
    feed?.close();
    await engine.close();
    throw err;
  }
  const ns = namespace;
  const mds = typeof opts.mds === 'string' ? opts.mds.split(',').map((s) => s.trim()).filter(Boolean) : [...(opts.mds ?? [])];
  const address = opts.advertise ?? rpc.address;
  if (mds.length > 0) {
    heartbeat = startHeartbeat({ mds, token: opts.token, kind: 'metaserver', id: opts.id ?? `ms-${address}`, address });
  }
  let closing: Promise<void> | undefined;
  return {
    namespace: ns,
    engine,
    rpc,
    address: rpc.address,
    close: () => {
      // Streams never finish by themselves: end them first so draining only waits for unary calls.
      closing ??= (ns.feed.close(), rpc.close());
      return closing;
    },
  };
}
