// MetaClient: MetaService over gRPC. Every unary call has a deadline; every failure is an FsError
// (the server's errno when it sent one, otherwise the gRPC status mapped once: UNAVAILABLE -> EIO,
// DEADLINE_EXCEEDED -> ETIMEDOUT). The change feed is a server stream; when it ends for any
// reason other than close(), handlers.error is called and reconnecting is the caller's choice.
import * as grpc from '@grpc/grpc-js';
import { errnoName, FsError, toErrno } from '../common/errno';
import { clientChannelOptions, describeRpcError, unary } from '../common/rpc';
import type {
  Attr, Caller, CommitDataRequest, CreateFsOptions, DataMap, MetaAdmin, Ino, MetaService, ReadDirResult, SetAttrRequest, StatFs, SubscribeHandlers,
  Subscription, Timespec, UnlinkResult,
} from './api';
import { attrFromPb, dataMapFromPb, direntFromPb, eventFromPb, tsToPb } from './convert';
import * as pb from '../gen/metaserver';
import type { FsRecord } from './inode';

export interface MetaClientOptions {
  readonly token?: string;
  /** Per-call deadline in ms (default 10 s). */
  readonly deadlineMs?: number;
}

function asFsError(err: unknown): FsError {
  if (err instanceof FsError) return err;
  const e = err as Partial<grpc.ServiceError>;
  const errno = toErrno(err);
  const details = typeof e?.details === 'string' ? e.details : describeRpcError(err);
  // The server's FsError message already starts with the errno name.
  return new FsError(errno, details.startsWith(`${errnoName(errno)}: `) ? details.slice(errnoName(errno).length + 2) : details);
}

type UnaryFn<Req, Res> = (
  req: Req, md: grpc.Metadata, o: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void,
) => grpc.ClientUnaryCall;

function pbCaller(c: Caller): pb.Caller {
  return { uid: c.uid, gid: c.gid, sessionId: c.sessionId ?? '' };
}

function timeSet(t: Timespec | 'now' | undefined): pb.TimeSet | undefined {
  if (t === undefined) return undefined;
  return t === 'now' ? { now: true, time: undefined } : { now: false, time: tsToPb(t) };
}

export class MetaClient implements MetaService, MetaAdmin {
  private readonly client: pb.MetaserverClient;
  private readonly deadlineMs: number;

  constructor(readonly address: string, opts: MetaClientOptions = {}) {
    this.client = new pb.MetaserverClient(address, grpc.credentials.createInsecure(), clientChannelOptions({ token: opts.token }));
    this.deadlineMs = opts.deadlineMs ?? 10_000;
  }

  private async call<Req, Res>(method: UnaryFn<Req, Res>, req: Req): Promise<Res> {
    try {
      return await unary(this.client, method, req, this.deadlineMs);
    } catch (err) {
      throw asFsError(err);
    }
  }

  /**
   * Reads are idempotent: while the server is unreachable (restarting, failing over) retry them
   * with a short backoff inside the call's deadline instead of failing the client's syscall at once.
   */
  private async read<Req, Res>(method: UnaryFn<Req, Res>, req: Req): Promise<Res> {
    const end = Date.now() + this.deadlineMs;
    for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
      try {
        return await unary(this.client, method, req, Math.max(1, end - Date.now()));
      } catch (err) {
        const unavailable = (err as Partial<grpc.ServiceError>)?.code === grpc.status.UNAVAILABLE;
        if (!unavailable || Date.now() + delay >= end) throw asFsError(err);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  async statfs(fsId: number): Promise<StatFs> {
    return this.read(this.client.statFs, { fsId });
  }
  async lookup(fsId: number, parent: Ino, name: Buffer): Promise<Attr> {
    return attrFromPb(await this.read(this.client.lookup, { fsId, parent, name, caller: undefined }));
  }
  async getattr(fsId: number, ino: Ino): Promise<Attr> {
    return attrFromPb(await this.read(this.client.getAttr, { fsId, ino }));
  }
  async setattr(fsId: number, ino: Ino, req: SetAttrRequest, caller: Caller): Promise<Attr> {
    return attrFromPb(await this.call(this.client.setAttr, {
      fsId, ino, mode: req.mode, uid: req.uid, gid: req.gid, size: req.size, atime: timeSet(req.atime), mtime: timeSet(req.mtime),
      ctime: req.ctime ? tsToPb(req.ctime) : undefined, caller: pbCaller(caller),
    }));
  }
  async mknod(fsId: number, parent: Ino, name: Buffer, mode: number, rdev: number, caller: Caller): Promise<Attr> {
    return attrFromPb(await this.call(this.client.mknod, { fsId, parent, name, mode, rdev, caller: pbCaller(caller) }));
  }
  async mkdir(fsId: number, parent: Ino, name: Buffer, mode: number, caller: Caller): Promise<Attr> {
    return attrFromPb(await this.call(this.client.mkdir, { fsId, parent, name, mode, rdev: 0, caller: pbCaller(caller) }));
  }
  async symlink(fsId: number, parent: Ino, name: Buffer, target: Buffer, caller: Caller): Promise<Attr> {
    return attrFromPb(await this.call(this.client.symlink, { fsId, parent, name, target, caller: pbCaller(caller) }));
  }
  async readlink(fsId: number, ino: Ino): Promise<Buffer> {
    return Buffer.from((await this.read(this.client.readlink, { fsId, ino })).target);
  }
  async link(fsId: number, ino: Ino, newParent: Ino, newName: Buffer): Promise<Attr> {
    return attrFromPb(await this.call(this.client.link, { fsId, ino, newParent, newName }));
  }
  async unlink(fsId: number, parent: Ino, name: Buffer, caller: Caller): Promise<UnlinkResult> {
    const r = await this.call(this.client.unlink, { fsId, parent, name, caller: pbCaller(caller) });
    return { ino: r.ino, nlink: r.nlink, orphaned: r.orphaned };
  }
  async rmdir(fsId: number, parent: Ino, name: Buffer): Promise<Attr | undefined> {
    const r = await this.call(this.client.rmdir, { fsId, parent, name, caller: undefined });
    // A metaserver from before Rmdir answered the attributes replies an empty message (ino 0).
    return r.ino ? attrFromPb(r) : undefined;
  }
  async rename(fsId: number, parent: Ino, name: Buffer, newParent: Ino, newName: Buffer, flags: number, caller: Caller): Promise<Attr | undefined> {
    const r = await this.call(this.client.rename, { fsId, parent, name, newParent, newName, flags, caller: pbCaller(caller) });
    return r.removedDir?.ino ? attrFromPb(r.removedDir) : undefined;
  }
  async readdir(fsId: number, ino: Ino, cookie: number, limit: number, plus: boolean): Promise<ReadDirResult> {
    const r = await this.read(this.client.readDir, { fsId, ino, cookie, limit, plus });
    return { entries: r.entries.map(direntFromPb), eof: r.eof };
  }
  async getxattr(fsId: number, ino: Ino, name: string): Promise<Buffer> {
    return Buffer.from((await this.read(this.client.getXattr, { fsId, ino, name })).value);
  }
  async setxattr(fsId: number, ino: Ino, name: string, value: Buffer, flags: number): Promise<void> {
    await this.call(this.client.setXattr, { fsId, ino, name, value, flags });
  }
  async listxattr(fsId: number, ino: Ino): Promise<string[]> {
    return (await this.read(this.client.listXattr, { fsId, ino })).names;
  }
  async removexattr(fsId: number, ino: Ino, name: string): Promise<void> {
    await this.call(this.client.removeXattr, { fsId, ino, name });
  }
  async getDataMap(fsId: number, ino: Ino): Promise<DataMap> {
    return dataMapFromPb(await this.read(this.client.getDataMap, { fsId, ino }));
  }
  async allocChunkVersions(fsId: number, count: number): Promise<number> {
    return (await this.call(this.client.allocChunkVersions, { fsId, count })).first;
  }
  async commitData(fsId: number, ino: Ino, req: CommitDataRequest): Promise<Attr> {
    return attrFromPb(await this.call(this.client.commitData, { fsId, ino, chunks: req.chunks.map((c) => ({ ...c })), size: req.size, touch: req.touch }));
  }
  async openInode(fsId: number, ino: Ino, sessionId: string): Promise<void> {
    await this.call(this.client.openInode, { fsId, ino, sessionId });
  }
  async releaseInode(fsId: number, ino: Ino, sessionId: string): Promise<void> {
    await this.call(this.client.releaseInode, { fsId, ino, sessionId });
  }
  async expireSession(sessionId: string): Promise<number> {
    return (await this.call(this.client.expireSession, { sessionId })).released;
  }

  /** Admin: create a file system (what the MDS does when one is created). */
  async createFs(fsId: number, opts: CreateFsOptions = {}): Promise<boolean> {
    const r = await this.call(this.client.createFs, {
      fsId, chunkSize: opts.chunkSize ?? 0, rootMode: opts.rootMode ?? 0, uid: opts.uid ?? 0, gid: opts.gid ?? 0,
    });
    return r.created;
  }
  async listFs(): Promise<FsRecord[]> {
    return (await this.read(this.client.listFs, {})).fs.map((f) => ({ fsId: f.fsId, chunkSize: f.chunkSize, createdMs: f.createdMs }));
  }

  subscribe(fsId: number, fromSeq: number, handlers: SubscribeHandlers): Subscription {
    const call = this.client.subscribe({ fsId, fromSeq });
    let ended = false;
    const end = (err: Error) => {
      if (ended) return;
      ended = true;
      handlers.error(err);
    };
    call.on('data', (m: pb.ChangeEvent) => {
      if (!ended) handlers.event(eventFromPb(m));
    });
    call.on('error', (err) => end(asFsError(err)));
    call.on('end', () => end(new FsError(5, 'change feed stream ended')));
    return {
      close: () => {
        ended = true;
        call.cancel();
      },
    };
  }

  /**
   * MetaService.flush: a no-op on the server for `kurve metaserver` (it acknowledges only synced
   * changes), real for `kurve up` serving its 'written'-mode namespace. A server from before the
   * Flush RPC acknowledged only synced changes too, so UNIMPLEMENTED counts as done.
   */
  async flush(fsId: number): Promise<void> {
    try {
      await unary(this.client, this.client.flush, { fsId }, this.deadlineMs);
    } catch (err) {
      if ((err as Partial<grpc.ServiceError>)?.code === grpc.status.UNIMPLEMENTED) return;
      throw asFsError(err);
    }
  }

  close(): void {
    this.client.close();
  }
}
