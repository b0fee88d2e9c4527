// The kurve.mds.Mds gRPC service over an Mds: message <-> contract conversion only; validation
// and leader checks live in Mds, so the in-process and gRPC paths behave the same.
import { adaptService, AsyncService, ServerOptions } from '../common/rpc';
import type { RpcService } from '../common/service';
import * as pb from '../gen/mds';
import { FsInfo, ServerInfo, SessionInfo } from './api';
import { Mds } from './mds';
import { validateKind } from './validate';

function fsOut(f: FsInfo): pb.FsInfo {
  return { fsId: f.fsId, name: f.name, chunkSize: f.chunkSize, createdMs: f.createdMs, replicas: f.replicas };
}
function sessionOut(s: SessionInfo): pb.SessionInfo {
  return { sessionId: s.sessionId, fsId: s.fsId, client: s.client, mountpoint: s.mountpoint, expiresMs: s.expiresMs };
}
function serverOut(s: ServerInfo): pb.ServerInfo {
  return { id: s.id, kind: s.kind, address: s.address, lastHeartbeatMs: s.lastHeartbeatMs, healthy: s.healthy };
}

export function mdsHandlers(mds: Mds): AsyncService<typeof pb.MdsService> {
  const beat = (register: boolean) => async (req: pb.ServerRequest): Promise<pb.ServerResponse> => {
    validateKind(req.kind);
    if (register) await mds.register(req.kind, req.id, req.address);
    else await mds.heartbeat(req.kind, req.id, req.address);
    return { heartbeatIntervalMs: mds.heartbeatMs };
  };
  return {
    createFs: async (req) => fsOut(await mds.createFs(req.name, req.chunkSize, req.replicas)),
    getFs: async (req) => fsOut(await mds.getFs(req.name)),
    listFs: async () => ({ fs: (await mds.listFs()).map(fsOut) }),
    register: beat(true),
    heartbeat: beat(false),
    listServers: async (req) => {
      if (!req.kind) return { servers: (await mds.listServers()).map(serverOut) };
      validateKind(req.kind);
      return { servers: (await mds.listServers(req.kind)).map(serverOut) };
    },
    mount: async (req) => {
      const m = await mds.mount(req.fsName, req.client, req.mountpoint);
      return { fs: fsOut(m.fs), session: sessionOut(m.session), metaservers: m.metaservers, datastores: m.datastores, leaseMs: m.leaseMs };
    },
    keepalive: async (req) => sessionOut(await mds.keepalive(req.sessionId)),
    unmount: async (req) => {
      await mds.unmount(req.sessionId);
      return {};
    },
    listSessions: async () => ({ sessions: (await mds.listSessions()).map(sessionOut) }),
    leader: async () => ({ isLeader: mds.election.isLeader(), leader: mds.election.leaderAddress() ?? '' }),
  };
}

/** The Mds service ready for a grpc-js server (also the shared one of `kurve up`). */
export function mdsRpcService(mds: Mds, opts: ServerOptions = {}): RpcService {
  return { definition: pb.MdsService, impl: adaptService('mds', pb.MdsService, mdsHandlers(mds), opts) };
}
