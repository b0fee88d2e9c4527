// The kurve.metaserver.Metaserver gRPC service over a Namespace: request validation (malformed or
// out-of-range -> INVALID_ARGUMENT with a reason), conversion, and the change-feed stream. Exported
// as a {definition, impl} pair so `kurve up` can mount it on a shared server.
import type { RpcService } from '../common/service';
import * as grpc from '@grpc/grpc-js';
import { adaptService, AsyncService, invalidArgument, RpcError, ServerOptions } from '../common/rpc';
import type { Caller, SetAttrRequest, Subscription, Timespec } from './api';
import * as pb from '../gen/metaserver';
import { attrToPb, chunkFromPb, dataMapToPb, direntToPb, eventToPb, statfsToPb } from './convert';
import type { Namespace } from './namespace';
import { MAX_CHUNKS_PER_COMMIT } from './ns-data';

export { DEFAULT_METASERVER_PORT } from './defaults';
/** Largest name or symlink target accepted on the wire (longer names still get ENAMETOOLONG below it). */
const MAX_BYTES_FIELD = 8192;
const ACK: pb.Ack = {};
/** Events a slow subscriber may fall behind by before its stream is reset. */
const MAX_UNREAD = 10_000;

function ino(v: number, what = 'ino'): number {
  if (!Number.isSafeInteger(v) || v <= 0) throw invalidArgument(`${what} must be a positive integer (got ${v})`);
  return v;
}

function bytes(b: Buffer | Uint8Array | undefined, what: string): Buffer {
  if (!b) throw invalidArgument(`${what} is required`);
  if (b.length > MAX_BYTES_FIELD) throw invalidArgument(`${what} is ${b.length} bytes, more than ${MAX_BYTES_FIELD}`);
  return Buffer.isBuffer(b) ? b : Buffer.from(b);
}

function caller(c: pb.Caller | undefined): Caller {
  if (!c) throw invalidArgument('caller (uid, gid) is required');
  return c.sessionId ? { uid: c.uid, gid: c.gid, sessionId: c.sessionId } : { uid: c.uid, gid: c.gid };
}

function session(s: string): string {
  if (!s) throw invalidArgument('session_id is required');
  if (s.length > 200) throw invalidArgument('session_id is longer than 200 characters');
  return s;
}

function timeSet(t: pb.TimeSet | undefined, what: string): Timespec | 'now' | undefined {
  if (!t) return undefined;
  if (t.now) return 'now';
  if (!t.time) throw invalidArgument(`${what}: either now or time must be set`);
  return ts(t.time, what);
}

function ts(t: pb.Timespec, what: string): Timespec {
  if (!Number.isSafeInteger(t.sec) || t.nsec > 999_999_999) throw invalidArgument(`${what} is not a valid time`);
  return { sec: t.sec, nsec: t.nsec };
}

function setAttrRequest(r: pb.SetAttrRequest): SetAttrRequest {
  const out: { -readonly [K in keyof SetAttrRequest]: SetAttrRequest[K] } = {};
  if (r.mode !== undefined) out.mode = r.mode;
  if (r.uid !== undefined) out.uid = r.uid;
  if (r.gid !== undefined) out.gid = r.gid;
  if (r.size !== undefined) {
    if (!Number.isSafeInteger(r.size)) throw invalidArgument('size is out of range');
    out.size = r.size;
  }
  const atime = timeSet(r.atime, 'atime');
  if (atime) out.atime = atime;
  const mtime = timeSet(r.mtime, 'mtime');
  if (mtime) out.mtime = mtime;
  if (r.ctime) out.ctime = ts(r.ctime, 'ctime');
  return out;
}

export function metaserverImpl(ns: Namespace): AsyncService<typeof pb.MetaserverService> {
  return {
    statFs: async (r) => statfsToPb(await ns.statfs(r.fsId)),
    flush: async (r) => {
      await ns.flush(r.fsId);
      return ACK;
    },
    lookup: async (r) => attrToPb(await ns.lookup(r.fsId, ino(r.parent, 'parent'), bytes(r.name, 'name'))),
    getAttr: async (r) => attrToPb(await ns.getattr(r.fsId, ino(r.ino))),
    setAttr: async (r) => attrToPb(await ns.setattr(r.fsId, ino(r.ino), setAttrRequest(r), caller(r.caller))),
    mknod: async (r) => attrToPb(await ns.mknod(r.fsId, ino(r.parent, 'parent'), bytes(r.name, 'name'), r.mode, r.rdev, caller(r.caller))),
    mkdir: async (r) => attrToPb(await ns.mkdir(r.fsId, ino(r.parent, 'parent'), bytes(r.name, 'name'), r.mode, caller(r.caller))),
    symlink: async (r) => attrToPb(await ns.symlink(r.fsId, ino(r.parent, 'parent'), bytes(r.name, 'name'), bytes(r.target, 'target'), caller(r.caller))),
    readlink: async (r) => ({ target: await ns.readlink(r.fsId, ino(r.ino)) }),
    link: async (r) => attrToPb(await ns.link(r.fsId, ino(r.ino), ino(r.newParent, 'new_parent'), bytes(r.newName, 'new_name'))),
    unlink: async (r) => {
      const res = await ns.unlink(r.fsId, ino(r.parent, 'parent'), bytes(r.name, 'name'), caller(r.caller));
      return { ino: res.ino, nlink: res.nlink, orphaned: res.orphaned };
    },
    rmdir: async (r) => attrToPb(await ns.rmdir(r.fsId, ino(r.parent, 'parent'), bytes(r.name, 'name'))),
    rename: async (r) => {
      const removed = await ns.rename(r.fsId, ino(r.parent, 'parent'), bytes(r.name, 'name'), ino(r.newParent, 'new_parent'), bytes(r.newName, 'new_name'), r.flags, caller(r.caller));
      return { removedDir: removed ? attrToPb(removed) : undefined };
    },
    readDir: async (r) => {
      if (!Number.isSafeInteger(r.cookie)) throw invalidArgument('cookie is out of range');
      if (r.limit === 0) throw invalidArgument('limit must be at least 1');
      const res = await ns.readdir(r.fsId, ino(r.ino), r.cookie, r.limit, r.plus);
      return { entries: res.entries.map(direntToPb), eof: res.eof };
    },
    getXattr: async (r) => ({ value: await ns.getxattr(r.fsId, ino(r.ino), r.name) }),
    setXattr: async (r) => {
      await ns.setxattr(r.fsId, ino(r.ino), r.name, Buffer.from(r.value), r.flags);
      return ACK;
    },
    listXattr: async (r) => ({ names: await ns.listxattr(r.fsId, ino(r.ino)) }),
    removeXattr: async (r) => {
      await ns.removexattr(r.fsId, ino(r.ino), r.name);
      return ACK;
    },
    getDataMap: async (r) => dataMapToPb(await ns.getDataMap(r.fsId, ino(r.ino))),
    allocChunkVersions: async (r) => ({ first: await ns.allocChunkVersions(r.fsId, r.count) }),
    commitData: async (r) => {
      if (r.chunks.length > MAX_CHUNKS_PER_COMMIT) throw invalidArgument(`at most ${MAX_CHUNKS_PER_COMMIT} chunks per commit`);
      if (!Number.isSafeInteger(r.size)) throw invalidArgument('size is out of range');
      return attrToPb(await ns.commitData(r.fsId, ino(r.ino), { chunks: r.chunks.map(chunkFromPb), size: r.size, touch: r.touch }));
    },
    openInode: async (r) => {
      await ns.openInode(r.fsId, ino(r.ino), session(r.sessionId));
      return ACK;
    },
    releaseInode: async (r) => {
      await ns.releaseInode(r.fsId, ino(r.ino), session(r.sessionId));
      return ACK;
    },
    expireSession: async (r) => ({ released: await ns.expireSession(session(r.sessionId)) }),
    subscribe: async (r, sink) => {
      if (!Number.isSafeInteger(r.fromSeq)) throw invalidArgument('from_seq is out of range');
      await ns.core.fs(r.fsId);
      await new Promise<void>((resolve, reject) => {
        // A client that stops reading would make the stream buffer grow without bound: after
        // MAX_UNREAD events written past a full buffer, send a reset and end the stream.
        let backlog = 0;
        // A feed may call the handlers before subscribe() returns: `sub` can still be unset then.
        let sub: Subscription | undefined;
        sub = ns.subscribe(r.fsId, r.fromSeq, {
          event: (e) => {
            if (backlog > MAX_UNREAD) return;
            backlog = sink.write(eventToPb(e)) ? 0 : backlog + 1;
            if (backlog > MAX_UNREAD) {
              sink.write(eventToPb({ seq: e.seq, kind: 'reset' }));
              sub?.close();
              resolve();
            }
          },
          error: (err) => {
            sub?.close();
            reject(new RpcError(grpc.status.UNAVAILABLE, `change feed ended: ${err.message}`));
          },
        });
        void sink.closed.then(() => {
          sub?.close();
          resolve();
        });
      });
    },
    createFs: async (r) => {
      const opts = { chunkSize: r.chunkSize || undefined, rootMode: r.rootMode || undefined, uid: r.uid, gid: r.gid };
      return { created: await ns.createFs(r.fsId, opts) };
    },
    repair: async (r) => {
      const x = await ns.repair(r.all ? undefined : r.fsId);
      return {
        checked: x.checked, underReplicated: x.underReplicated, copied: x.copied, failed: x.failed, lost: x.lost, skipped: x.skipped,
        lostObjects: x.lostObjects.map((k) => ({ fsId: k.fsId, ino: k.ino, index: k.index, version: k.version })),
        durationMs: x.durationMs, fsIds: x.fsIds,
      };
    },
    listFs: async () => ({ fs: (await ns.listFs()).map((f) => ({ fsId: f.fsId, chunkSize: f.chunkSize, createdMs: f.createdMs })) }),
  };
}

/** The service ready to add to any grpc-js server (the metaserver's own, or `kurve up`'s shared one). */
export function metaserverRpcService(ns: Namespace, opts: ServerOptions = {}): RpcService {
  return { definition: pb.MetaserverService, impl: adaptService('metaserver', pb.MetaserverService, metaserverImpl(ns), opts) };
}
