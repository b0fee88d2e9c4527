// An MDS process: lmdb-backed Mds + Mds gRPC service + Health + /metrics. It registers itself in
// its own topology (kind "mds") so tools can list it. Metaserver hooks default to gRPC calls to
// the healthy metaservers; the store and the leader election can be replaced (etcd, HA).
import * as path from 'node:path';
import { startServiceProcess, ServiceProcess } from '../common/service';
import { stableServerId } from '../datastore/server';
import { AlwaysLeader, LeaderElection } from './leader';
import { LmdbMdsStore } from './lmdb-store';
import { Mds, MetaserverHooks } from './mds';
import { grpcMetaserverHooks } from './metaserver-hooks';
import { mdsRpcService } from './service';
import { MdsStore } from './store';

/** Default gRPC port of a standalone MDS. */
export const MDS_DEFAULT_PORT = 6701;
export const MDS_DEFAULT_LISTEN = `127.0.0.1:${MDS_DEFAULT_PORT}`;

export interface MdsServerOptions {
  /** HOST:PORT (port 0 = free port). */
  readonly listen: string;
  /** Directory for the embedded store (DIR/mds.mdb) and the server id. */
  readonly dataDir: string;
  readonly token?: string;
  /** HOST:PORT for /metrics; empty = none. */
  readonly metricsListen?: string;
  readonly leaseMs?: number;
  readonly heartbeatMs?: number;
  readonly sweepMs?: number;
  /**
   * How to reach metaservers (fs roots, session expiry). Default: gRPC to every healthy
   * metaserver in the topology (grpcMetaserverHooks).
   */
  readonly hooks?: MetaserverHooks;
  /** Replaces the embedded lmdb store (e.g. etcd). */
  readonly store?: MdsStore;
  /** Replaces always-leader (e.g. an etcd election). */
  readonly election?: LeaderElection;
  readonly graceMs?: number;
}

export interface MdsServer {
  readonly mds: Mds;
  readonly store: MdsStore;
  readonly rpc: ServiceProcess;
  readonly address: string;
  readonly id: string;
  close(): Promise<void>;
}

export async function startMds(opts: MdsServerOptions): Promise<MdsServer> {
  const store = opts.store ?? LmdbMdsStore.open(path.join(opts.dataDir, 'mds.mdb'));
  const id = stableServerId(opts.dataDir, 'mds');
  const election = opts.election ?? new AlwaysLeader();
  let selfBeat: NodeJS.Timeout | undefined;
  let mds: Mds | undefined;
  let rpc: ServiceProcess;
  try {
    mds = await Mds.open({
      store, hooks: opts.hooks, election, leaseMs: opts.leaseMs, heartbeatMs: opts.heartbeatMs, sweepMs: opts.sweepMs,
    });
    const m = mds;
    const grpcHooks = opts.hooks ? undefined : grpcMetaserverHooks(m, { token: opts.token });
    if (grpcHooks) m.setHooks(grpcHooks);
    rpc = await startServiceProcess({
      name: 'mds',
      listen: opts.listen,
      token: opts.token,
      metricsListen: opts.metricsListen,
      services: [mdsRpcService(m, { token: opts.token })],
      graceMs: opts.graceMs,
      onClose: [() => clearInterval(selfBeat), () => m.close(), () => grpcHooks?.close(), () => election.close(), () => store.close()],
    });
  } catch (err) {
    await mds?.close();
    await store.close();
    throw err;
  }
  if (election instanceof AlwaysLeader) election.setAddress(rpc.address);
  // The MDS lists itself in the topology (kind "mds") and keeps its own entry healthy.
  const m = mds;
  const beat = () => {
    if (election.isLeader()) m.heartbeat('mds', id, rpc.address).catch(() => undefined);
  };
  beat();
  selfBeat = setInterval(beat, m.heartbeatMs);
  selfBeat.unref();
  return { mds, store, rpc, address: rpc.address, id, close: () => rpc.close() };
}
