// An HA MDS replica: the ordinary MDS server over the etcd store, led by the etcd election, with
// every store write fenced by the leader key. Several replicas share one etcd; one leads, the
// others answer with the leader's address. close() resigns first, so a SIGTERM hands over at once.
import * as fs from 'node:fs';
import { startMds, MdsServer, MdsServerOptions } from './server';
import { EtcdElection } from './election-etcd';
import { EtcdMdsStore } from './etcd-store';
import { createEtcdClient, parseEtcdEndpoints } from '../common/etcd-client';
import { freePorts } from '../dev/etcd-process';
import { parseHostPort } from '../common/metrics';

export interface EtcdMdsOptions extends Omit<MdsServerOptions, 'store' | 'election'> {
  /** etcd endpoints: "host:port,host:port". */
  readonly etcd: string | readonly string[];
  /** Cluster name (keys under kurve/<cluster>/). Default "default". */
  readonly cluster?: string;
  /** Election lease TTL in whole seconds (default 5): a crashed leader is replaced within ~1–2 TTL. */
  readonly electionTtlSec?: number;
  /** Address announced to clients while leading (default: the listen address). */
  readonly advertise?: string;
}

export interface EtcdMdsServer extends MdsServer {
  readonly election: EtcdElection;
}

export async function startEtcdMds(opts: EtcdMdsOptions): Promise<EtcdMdsServer> {
  const client = createEtcdClient({ endpoints: parseEtcdEndpoints(opts.etcd) });
  // The leader's address goes into the election value before the server listens, so port 0 is
  // resolved to a concrete free port here.
  let listen = opts.listen;
  const hp = parseHostPort(listen);
  if (hp.port === 0) listen = `${hp.host}:${(await freePorts(1, hp.host))[0]}`;
  const address = opts.advertise ?? listen;
  const election = new EtcdElection({ client, cluster: opts.cluster, address, ttlSec: opts.electionTtlSec });
  const store = new EtcdMdsStore({
    client,
    cluster: opts.cluster,
    fence: () => election.fence(),
    leaderHint: () => election.leaderAddress(),
  });
  let server: MdsServer;
  try {
    // The data dir only holds the replica's server id here (state is in etcd).
    fs.mkdirSync(opts.dataDir, { recursive: true });
    // Fail fast and clearly when etcd is not there (the store would otherwise retry for seconds per call).
    await store.get('meta/next-fs-id').catch((err: unknown) => {
      throw new Error(`cannot reach etcd at ${parseEtcdEndpoints(opts.etcd).join(',')}: ${(err as Error).message}`);
    });
    server = await startMds({ ...opts, listen, store, election });
  } catch (err) {
    await election.close().catch(() => undefined);
    client.close();
    throw err;
  }
  // Campaign only once the gRPC server answers, so a new leader can serve at once.
  await election.start();
  let closing: Promise<void> | undefined;
  return {
    ...server,
    election,
    close: () => {
      closing ??= (async () => {
        await election.resign();
        await server.close();
        client.close();
      })();
      return closing;
    },
  };
}
