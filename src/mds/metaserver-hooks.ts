// MetaserverHooks over gRPC, for a standalone MDS: file system roots are created and sessions
// expired on every healthy metaserver in the topology (both calls are idempotent there). With a
// shared etcd namespace one call would do; calling each also covers per-metaserver lmdb stores.
import { fsError } from '../common/errno';
import { moduleLogger } from '../common/logger';
import { MetaClient } from '../metaserver/client';
import { FsInfo } from './api';
import { MetaserverHooks } from './mds';

const log = moduleLogger('mds-hooks');

export interface MetaserverTopology {
  /** Addresses of metaservers that heartbeat in time. */
  healthy(kind: 'metaserver'): string[];
  /** How many metaservers are registered at all (healthy or not). */
  registered(kind: 'metaserver'): number;
}

export interface GrpcHooks extends MetaserverHooks {
  close(): void;
}

export function grpcMetaserverHooks(topology: MetaserverTopology, opts: { token?: string; deadlineMs?: number } = {}): GrpcHooks {
  const clients = new Map<string, MetaClient>();
  const client = (address: string) => {
    let c = clients.get(address);
    if (!c) {
      c = new MetaClient(address, { token: opts.token, deadlineMs: opts.deadlineMs ?? 5000 });
      clients.set(address, c);
    }
    return c;
  };
  const createOn = async (address: string, fs: FsInfo) => {
    const created = await client(address).createFs(fs.fsId, { chunkSize: fs.chunkSize });
    if (created) log.info({ fs: fs.name, fsId: fs.fsId, metaserver: address }, 'file system root created');
  };
  return {
    onFsCreated: async (fs) => {
      const targets = topology.healthy('metaserver');
      // ENODEV tells the MDS to record the file system now; roots follow when a metaserver joins.
      if (targets.length === 0) throw fsError('ENODEV', 'no healthy metaserver');
      await Promise.all(targets.map((a) => createOn(a, fs)));
    },
    onMetaserverJoined: async (address, fsList) => {
      for (const fs of fsList) await createOn(address, fs);
    },
    expireSession: async (sessionId) => {
      if (topology.registered('metaserver') === 0) return; // nobody can hold anything
      const targets = topology.healthy('metaserver');
      if (targets.length === 0) throw new Error('no healthy metaserver to release the session on');
      const released = await Promise.all(targets.map((a) => client(a).expireSession(sessionId)));
      log.info({ sessionId, released: released.reduce((a, b) => a + b, 0) }, 'session released on metaservers');
    },
    close: () => {
      for (const c of clients.values()) c.close();
      clients.clear();
    },
  };
}
