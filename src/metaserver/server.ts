// A metaserver process (CLI `kurve metaserver`, tests, benchmarks): lmdb engine + Namespace +
// the gRPC service + Health + /metrics, with optional datastore for chunk GC and MDS heartbeats.
// Graceful close: end change-feed streams, stop accepting, drain in-flight calls, stop GC, close lmdb.
import * as path from 'node:path';
import type { DataService } from '../datastore/api';
import { startServiceProcess, ServiceProcess } from '../common/service';
import { parseAddressList, stableServerId } from '../datastore/server';
import { Heartbeat, startHeartbeat } from '../mds/heartbeat';
import { LmdbEngine } from './engines/lmdb';
import { Namespace, NamespaceOptions } from './namespace';
import { metaserverRpcService } from './service';

export { DEFAULT_METASERVER_LISTEN, DEFAULT_METASERVER_PORT } from './defaults';

export interface MetaserverOptions {
  /** HOST:PORT (port 0 = free port). */
  readonly listen: string;
  /** Directory of the lmdb store (created if missing). */
  readonly dataDir: string;
  readonly token?: string;
  /** Where replaced chunks and purged inodes are deleted. */
  readonly datastore?: DataService;
  /** HOST:PORT for /metrics; empty = none. */
  readonly metricsListen?: string;
  /** Create these file systems (root directory) at start if missing. */
  readonly createFs?: readonly number[];
  /** Namespace tuning (GC grace, feed ring size...). */
  readonly namespace?: Omit<NamespaceOptions, 'datastore'>;
  /** MDS addresses: register and heartbeat as a metaserver when given. */
  readonly mds?: string | readonly string[];
  /** Address to advertise to the MDS (default: the bound address). */
  readonly advertise?: string;
  /** Skip fsync (benchmarks of the logic only). */
  readonly noSync?: boolean;
  readonly graceMs?: number;
}

export interface Metaserver {
  readonly namespace: Namespace;
  readonly engine: LmdbEngine;
  readonly rpc: ServiceProcess;
  readonly address: string;
  close(): Promise<void>;
}

export async function startMetaserver(opts: MetaserverOptions): Promise<Metaserver> {
  const engine = new LmdbEngine({ path: path.resolve(opts.dataDir), noSync: opts.noSync });
  let namespace: Namespace | undefined;
  let rpc: ServiceProcess;
  let heartbeat: Heartbeat | undefined;
  try {
    namespace = await Namespace.open(engine, { ...opts.namespace, datastore: opts.datastore });
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
    await engine.close();
    throw err;
  }
  const ns = namespace;
  const mds = parseAddressList(opts.mds);
  if (mds.length > 0) {
    const id = stableServerId(path.resolve(opts.dataDir), 'ms');
    heartbeat = startHeartbeat({ mds, token: opts.token, kind: 'metaserver', id, address: opts.advertise ?? rpc.address });
  }
  let closing: Promise<void> | undefined;
  return {
    namespace: ns,
    engine,
    rpc,
    address: rpc.address,
    close: () => {
      if (!closing) {
        // Streams never finish by themselves: end them first so draining only waits for unary calls.
        ns.feed.close();
        closing = rpc.close();
      }
      return closing;
    },
  };
}
