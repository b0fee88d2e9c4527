// MdsClient: MdsService over gRPC to a set of MDS replicas. Calls go to the last known leader;
// a follower's `kurve-leader` hint redirects at once; an unreachable replica moves on to the next,
// with exponential backoff once every address failed, all within a time budget. Calls that are
// not idempotent (createFs, mount) are retried only when the error shows the MDS did not act on
// them (unreachable, or a follower refusing).
import * as grpc from '@grpc/grpc-js';
import { FsError } from '../common/errno';
import { moduleLogger } from '../common/logger';
import { ClientOptions, clientChannelOptions, unary } from '../common/rpc';
import { rpcFsError } from '../common/service';
import * as pb from '../gen/mds';
import { FsInfo, MdsService, MountInfo, ServerInfo, ServerKind, SessionInfo } from './api';
import { leaderHint } from './leader';

export interface MdsClientOptions extends ClientOptions {
  /** Total time one call may take across retries and replicas (default 10 s). */
  readonly budgetMs?: number;
  /** Deadline of each attempt (default min(budget, 5 s)). */
  readonly attemptMs?: number;
}

const log = moduleLogger('mds-client');

const RETRY_ALWAYS = new Set([grpc.status.UNAVAILABLE]);
const RETRY_IDEMPOTENT = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.ABORTED, grpc.status.CANCELLED]);

function fsIn(f: pb.FsInfo | undefined): FsInfo {
  if (!f) throw new FsError(5, 'MDS reply without a file system');
  return { fsId: f.fsId, name: f.name, chunkSize: f.chunkSize, createdMs: f.createdMs, replicas: f.replicas || 1 };
}
function sessionIn(s: pb.SessionInfo | undefined): SessionInfo {
  if (!s) throw new FsError(5, 'MDS reply without a session');
  return { sessionId: s.sessionId, fsId: s.fsId, client: s.client, mountpoint: s.mountpoint, expiresMs: s.expiresMs };
}

type Method = keyof pb.MdsClient & keyof typeof pb.MdsService;

export class MdsClient implements MdsService {
  private readonly addresses: string[];
  private readonly clients = new Map<string, pb.MdsClient>();
  private preferred: string;
  private readonly budgetMs: number;
  private readonly attemptMs: number;
  /** The heartbeat interval the MDS asked for in its last Register/Heartbeat reply. */
  heartbeatIntervalMs?: number;

  constructor(addresses: string | readonly string[], private readonly opts: MdsClientOptions = {}) {
    const list = typeof addresses === 'string' ? addresses.split(',') : [...addresses];
    this.addresses = list.map((a) => a.trim()).filter((a) => a.length > 0);
    if (this.addresses.length === 0) throw new Error('no MDS address given');
    this.preferred = this.addresses[0];
    this.budgetMs = opts.budgetMs ?? 10_000;
    this.attemptMs = opts.attemptMs ?? Math.min(this.budgetMs, 5_000);
  }

  private client(address: string): pb.MdsClient {
    let c = this.clients.get(address);
    if (!c) {
      c = new pb.MdsClient(address, grpc.credentials.createInsecure(), clientChannelOptions(this.opts));
      this.clients.set(address, c);
    }
    return c;
  }

  /** One call with failover: leader hints are followed, unreachable replicas skipped, then backoff. */
  private async call<Req, Res>(method: Method, req: Req, idempotent: boolean): Promise<Res> {
    const deadline = Date.now() + this.budgetMs;
    const retryable = idempotent ? RETRY_IDEMPOTENT : RETRY_ALWAYS;
    let lastErr: unknown;
    let backoff = 50;
    let failedInRound = new Set<string>();
    for (;;) {
      const address = this.preferred;
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      try {
        const c = this.client(address);
        const fn = c[method] as unknown as Parameters<typeof unary<Req, Res>>[1];
        return await unary<Req, Res>(c, fn, req, Math.min(this.attemptMs, remaining));
      } catch (err) {
        lastErr = err;
        const hint = leaderHint(err);
        if (hint && hint !== address && !failedInRound.has(hint)) {
          this.preferred = hint;
          continue;
        }
        const code = (err as { code?: number }).code;
        // The MDS answered (e.g. EEXIST, EINVAL): its message says it all.
        if (typeof code !== 'number' || !retryable.has(code)) throw rpcFsError(err);
        failedInRound.add(address);
        const next = this.addresses.find((a) => !failedInRound.has(a));
        if (next) {
          this.preferred = next;
          continue;
        }
        // Every replica failed this round: wait, then start over from the first. Say so once when
        // the wait can be long, so that a user whose MDS is down is not left staring at a silent
        // command for its whole budget (a short budget just fails with the error).
        if (backoff === 50 && deadline - Date.now() > 5_000) {
          log.warn({ method, addresses: this.addresses, retryForMs: Math.max(0, deadline - Date.now()), err: (err as Error).message },
            'no MDS reachable; retrying');
        }
        failedInRound = new Set();
        this.preferred = this.addresses[0];
        const wait = Math.min(backoff, deadline - Date.now());
        if (wait <= 0) break;
        await new Promise((r) => setTimeout(r, wait));
        backoff = Math.min(backoff * 2, 1000);
      }
    }
    throw rpcFsError(lastErr ?? new Error('deadline exceeded'), `cannot reach MDS at ${this.addresses.join(',')}`);
  }

  async createFs(name: string, chunkSize: number, replicas = 0): Promise<FsInfo> {
    return fsIn(await this.call<pb.CreateFsRequest, pb.FsInfo>('createFs', { name, chunkSize, replicas }, false));
  }
  async getFs(name: string): Promise<FsInfo> {
    return fsIn(await this.call<pb.GetFsRequest, pb.FsInfo>('getFs', { name }, true));
  }
  async listFs(): Promise<FsInfo[]> {
    return (await this.call<pb.ListFsRequest, pb.ListFsResponse>('listFs', {}, true)).fs.map(fsIn);
  }
  async register(kind: ServerKind, id: string, address: string): Promise<void> {
    const res = await this.call<pb.ServerRequest, pb.ServerResponse>('register', { kind, id, address }, true);
    this.heartbeatIntervalMs = res.heartbeatIntervalMs || undefined;
  }
  async heartbeat(kind: ServerKind, id: string, address: string): Promise<void> {
    const res = await this.call<pb.ServerRequest, pb.ServerResponse>('heartbeat', { kind, id, address }, true);
    this.heartbeatIntervalMs = res.heartbeatIntervalMs || undefined;
  }
  async listServers(kind?: ServerKind): Promise<ServerInfo[]> {
    const res = await this.call<pb.ListServersRequest, pb.ListServersResponse>('listServers', { kind: kind ?? '' }, true);
    return res.servers.map((s) => ({ ...s, kind: s.kind as ServerKind }));
  }
  async mount(fsName: string, client: string, mountpoint: string): Promise<MountInfo> {
    const m = await this.call<pb.MountRequest, pb.MountInfo>('mount', { fsName, client, mountpoint }, false);
    return { fs: fsIn(m.fs), session: sessionIn(m.session), metaservers: m.metaservers, datastores: m.datastores, leaseMs: m.leaseMs };
  }
  async keepalive(sessionId: string): Promise<SessionInfo> {
    return sessionIn(await this.call<pb.SessionRequest, pb.SessionInfo>('keepalive', { sessionId }, true));
  }
  async unmount(sessionId: string): Promise<void> {
    await this.call<pb.SessionRequest, pb.UnmountResponse>('unmount', { sessionId }, true);
  }
  async listSessions(): Promise<SessionInfo[]> {
    return (await this.call<pb.ListSessionsRequest, pb.ListSessionsResponse>('listSessions', {}, true)).sessions.map(sessionIn);
  }
  /** Asks the replica this client currently talks to who leads. */
  async leader(): Promise<{ isLeader: boolean; leader: string }> {
    return this.call<pb.LeaderRequest, pb.LeaderResponse>('leader', {}, true);
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
