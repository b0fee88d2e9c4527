// Mds: the cluster manager. File system registry and client sessions live in an MdsStore.
// Session deadlines are store leases when the store has them (etcd: they survive a failover),
// else the leader's memory. Server heartbeats live in memory; a new leader presumes registered
// servers healthy for one health window. Metaservers are reached only through MetaserverHooks, so
// embedded mode calls the in-process Namespace and distributed mode calls over gRPC.
import { randomUUID } from 'node:crypto';
import { Errno, fsError, FsError } from '../common/errno';
import { moduleLogger } from '../common/logger';
import { gauge } from '../common/metrics';
import { FsInfo, MdsService, MountInfo, ServerInfo, ServerKind, SessionInfo } from './api';
import { AlwaysLeader, LeaderElection, notLeaderError } from './leader';
import { Keys, MdsStore, SessionLeases } from './store';
import { validateAddress, validateChunkSize, validateFsName, validateReplicas, validateKind, validateServerId, validateSessionId } from './validate';

const log = moduleLogger('mds');

const sessionsGauge = gauge({ name: 'kurve_mds_sessions', help: 'Client sessions (mounts) holding a lease' });
const serversGauge = gauge({
  name: 'kurve_mds_servers', help: 'Registered servers by kind and health', labelNames: ['kind', 'healthy'] as const,
});

export const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;
export const DEFAULT_LEASE_MS = 20_000;
export const DEFAULT_HEARTBEAT_MS = 2_000;
/** A server is healthy while its last heartbeat is at most this many intervals old. */
export const HEALTHY_INTERVALS = 3;
/** With store leases, how long past a session's known deadline the sweep waits for the watch before asking the store. */
const LEASE_CHECK_SLACK_MS = 1000;

/** `list` rotated left by `n` (an empty list stays empty). */
export function rotate<T>(list: readonly T[], n: number): T[] {
  if (list.length === 0) return [];
  const k = n % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

/**
 * How the MDS reaches metaservers. Both calls must be idempotent: they are retried after failures.
 */
export interface MetaserverHooks {
  /**
   * A file system was created: make its root (Namespace.createFs). Failing fails the create,
   * except with ENODEV (no metaserver reachable yet): the file system is recorded and its root
   * is made by onMetaserverJoined.
   */
  onFsCreated(fs: FsInfo): Promise<void>;
  /** A session expired (or unmounted): release everything it held so orphans get collected. */
  expireSession(sessionId: string): Promise<void>;
  /** A metaserver registered or came back to health: make sure it has every file system's root. */
  onMetaserverJoined?(address: string, fsList: FsInfo[]): Promise<void>;
}

export interface MdsOptions {
  readonly store: MdsStore;
  readonly hooks?: MetaserverHooks;
  readonly election?: LeaderElection;
  /** Session lease (default 20 s): a mount must keepalive within it. */
  readonly leaseMs?: number;
  /** Expected heartbeat period of servers (default 2 s); unhealthy after 3 missed. */
  readonly heartbeatMs?: number;
  /** How often expired sessions are looked for (default lease / 4, at most 1 s). */
  readonly sweepMs?: number;
}

/** As stored; records from before replication have no `replicas` (= 1). */
interface FsRecord { fsId: number; name: string; chunkSize: number; createdMs: number; replicas?: number }

function fsInfoOf(rec: FsRecord): FsInfo {
  return { fsId: rec.fsId, name: rec.name, chunkSize: rec.chunkSize, createdMs: rec.createdMs, replicas: rec.replicas || 1 };
}
interface ServerRecord { id: string; kind: ServerKind; address: string }
/** lastHeartbeatMs 0 = none seen by this leader; presumedUntil: healthy without one until then (after a failover). */
interface LiveServer extends ServerRecord { lastHeartbeatMs: number; presumedUntil: number }
interface SessionRecord { sessionId: string; fsId: number; client: string; mountpoint: string; createdMs: number }
interface LiveSession extends SessionRecord { expiresMs: number; expired: boolean; releasing?: Promise<void> }

export class Mds implements MdsService {
  readonly leaseMs: number;
  readonly heartbeatMs: number;
  readonly election: LeaderElection;
  private readonly store: MdsStore;
  private hooks?: MetaserverHooks;
  private readonly servers = new Map<string, LiveServer>();
  private readonly leases?: SessionLeases;
  private stopWatch?: () => Promise<void>;
  /** Rotates the metaserver list handed to successive mounts, so clients spread over metaservers. */
  private mounts = 0;
  private readonly sessions = new Map<string, LiveSession>();
  private sweepTimer?: NodeJS.Timeout;
  private sweeping?: Promise<void>;
  private unsubscribe?: () => void;
  private createLock: Promise<unknown> = Promise.resolve();
  private joins: Promise<void> = Promise.resolve();

  private constructor(opts: MdsOptions) {
    this.store = opts.store;
    this.leases = opts.store.sessionLeases;
    this.hooks = opts.hooks;
    this.election = opts.election ?? new AlwaysLeader();
    this.leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
    this.heartbeatMs = opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  }

  /** Opens the MDS over a store: loads topology and sessions, starts the expiry sweep. */
  static async open(opts: MdsOptions): Promise<Mds> {
    const mds = new Mds(opts);
    if (mds.leases) mds.stopWatch = await mds.leases.watch((id) => mds.leaseGone(id));
    if (mds.election.isLeader()) await mds.load(false);
    mds.unsubscribe = mds.election.onChange((leader) => {
      if (leader) mds.load(true).catch((err: unknown) => log.error({ err }, 'reloading state as new leader failed'));
    });
    const sweepMs = opts.sweepMs ?? Math.min(1000, Math.max(10, mds.leaseMs / 4));
    mds.sweepTimer = setInterval(() => {
      if (!mds.sweeping && mds.election.isLeader()) mds.sweeping = mds.sweep().finally(() => (mds.sweeping = undefined));
    }, sweepMs);
    mds.sweepTimer.unref();
    return mds;
  }

  /** Late wiring (e.g. once the in-process Namespace or a metaserver client exists). */
  setHooks(hooks: MetaserverHooks | undefined): void {
    this.hooks = hooks;
  }

  /**
   * (Re)builds in-memory state from the store. Sessions keep their store lease deadlines (an
   * expired one is released by the sweep); without store leases each gets a full lease from now.
   * `elected`: this replica just took over from another leader, which the servers were beating
   * to until moments ago, so they count as healthy for one health window unless they stop.
   */
  private async load(elected: boolean): Promise<void> {
    const now = Date.now();
    const presumedUntil = elected ? now + HEALTHY_INTERVALS * this.heartbeatMs : 0;
    this.servers.clear();
    for (const e of await this.store.list<ServerRecord>(Keys.serverPrefix())) {
      this.servers.set(`${e.value.kind}/${e.value.id}`, { ...e.value, lastHeartbeatMs: 0, presumedUntil });
    }
    const records = (await this.store.list<SessionRecord>(Keys.sessionPrefix)).map((e) => e.value);
    const leases = this.leases;
    // A deadline etcd cannot tell us right now is assumed a full lease away; the sweep asks again.
    const deadlines = leases
      ? await Promise.all(records.map((r) => leases.deadline(r.sessionId).catch(() => now + this.leaseMs)))
      : records.map(() => now + this.leaseMs);
    this.sessions.clear();
    records.forEach((r, i) => {
      const d = deadlines[i];
      this.sessions.set(r.sessionId, { ...r, expiresMs: d ?? now, expired: d === undefined });
      if (d === undefined) log.warn({ sessionId: r.sessionId, client: r.client }, 'session lease expired (found by the new leader)');
    });
    this.publish();
    log.info({ servers: this.servers.size, sessions: this.sessions.size }, 'mds state loaded');
  }

  private requireLeader(): void {
    if (!this.election.isLeader()) throw notLeaderError(this.election.leaderAddress());
  }

  private publish(): void {
    sessionsGauge.set([...this.sessions.values()].filter((s) => !s.expired).length);
    serversGauge.reset();
    for (const s of this.listServersSync()) serversGauge.labels(s.kind, String(s.healthy)).inc();
  }

  // ---- file systems --------------------------------------------------------------------------

  async createFs(name: string, chunkSize: number, replicas = 0): Promise<FsInfo> {
    this.requireLeader();
    validateFsName(name);
    const size = validateChunkSize(chunkSize || DEFAULT_CHUNK_SIZE);
    const copies = validateReplicas(replicas || 1);
    // One create at a time in this process; the store's compare-and-put guards across replicas.
    const run = this.createLock.then(() => this.createFsLocked(name, size, copies));
    this.createLock = run.catch(() => undefined);
    return run;
  }

  private async createFsLocked(name: string, chunkSize: number, replicas: number): Promise<FsInfo> {
    if (await this.store.get(Keys.fs(name))) throw fsError('EEXIST', `file system "${name}" already exists`);
    const fsId = await this.allocFsId();
    const info: FsInfo = { fsId, name, chunkSize, createdMs: Date.now(), replicas };
    // Root first: a registered file system always has a namespace. A failed attempt leaves an
    // unused fs id behind, which is harmless.
    if (this.hooks) {
      try {
        await this.hooks.onFsCreated(info);
      } catch (err) {
        if (!(err instanceof FsError && err.errno === Errno.ENODEV)) {
          throw fsError('EIO', `creating the root of "${name}" on the metaserver failed: ${(err as Error).message}`);
        }
        log.warn({ fs: name }, 'no metaserver reachable: the root will be created when one registers');
      }
    }
    const rec: FsRecord = { ...info };
    if (!(await this.store.txn([{ key: Keys.fs(name), version: 0 }], [{ type: 'put', key: Keys.fs(name), value: rec }]))) {
      throw fsError('EEXIST', `file system "${name}" already exists`);
    }
    log.info({ fs: info }, 'file system created');
    return info;
  }

  private async allocFsId(): Promise<number> {
    for (let attempt = 0; attempt < 100; attempt++) {
      const cur = await this.store.get<number>(Keys.nextFsId);
      const id = cur?.value ?? 1;
      if (await this.store.txn([{ key: Keys.nextFsId, version: cur?.version ?? 0 }], [{ type: 'put', key: Keys.nextFsId, value: id + 1 }])) {
        return id;
      }
    }
    throw fsError('EAGAIN', 'could not allocate a file system id (too much contention)');
  }

  async getFs(name: string): Promise<FsInfo> {
    this.requireLeader();
    validateFsName(name);
    const e = await this.store.get<FsRecord>(Keys.fs(name));
    if (!e) throw fsError('ENOENT', `no file system named "${name}"`);
    return fsInfoOf(e.value);
  }

  async listFs(): Promise<FsInfo[]> {
    this.requireLeader();
    return (await this.store.list<FsRecord>(Keys.fsPrefix)).map((e) => fsInfoOf(e.value)).sort((a, b) => a.fsId - b.fsId);
  }

  // ---- topology ------------------------------------------------------------------------------

  async register(kind: ServerKind, id: string, address: string): Promise<void> {
    this.requireLeader();
    validateKind(kind);
    validateServerId(id);
    validateAddress(address);
    const key = `${kind}/${id}`;
    const known = this.servers.get(key);
    if (!known || known.address !== address) {
      const rec: ServerRecord = { id, kind, address };
      await this.store.txn([], [{ type: 'put', key: Keys.server(kind, id), value: rec }]);
      log.info({ kind, id, address }, known ? 'server moved' : 'server registered');
    }
    const wasHealthy = known !== undefined && known.address === address && this.isHealthy(known.lastHeartbeatMs);
    this.servers.set(key, { id, kind, address, lastHeartbeatMs: Date.now(), presumedUntil: 0 });
    this.publish();
    if (kind === 'metaserver' && !wasHealthy) this.metaserverJoined(address);
  }

  /** Same as register (a heartbeat from an unknown server registers it), kept cheap when known. */
  async heartbeat(kind: ServerKind, id: string, address: string): Promise<void> {
    const known = this.servers.get(`${kind}/${id}`);
    if (known && known.address === address && this.healthyNow(known) && this.election.isLeader()) {
      known.lastHeartbeatMs = Date.now();
      known.presumedUntil = 0;
      return;
    }
    await this.register(kind, id, address);
  }

  private isHealthy(lastHeartbeatMs: number): boolean {
    return lastHeartbeatMs > 0 && Date.now() - lastHeartbeatMs <= HEALTHY_INTERVALS * this.heartbeatMs;
  }

  /** Healthy by a heartbeat to this leader, or presumed so just after a failover. */
  private healthyNow(s: LiveServer): boolean {
    return this.isHealthy(s.lastHeartbeatMs) || Date.now() < s.presumedUntil;
  }

  /** In the background: a (re)joining metaserver gets every file system's root. */
  private metaserverJoined(address: string): void {
    const hook = this.hooks?.onMetaserverJoined;
    if (!hook) return;
    const run = async () => hook.call(this.hooks, address, await this.listFs());
    this.joins = this.joins.then(run).catch((err: unknown) => {
      log.warn({ metaserver: address, err: (err as Error).message }, 'creating file system roots on a joining metaserver failed');
    });
  }

  private listServersSync(kind?: ServerKind): ServerInfo[] {
    return [...this.servers.values()]
      .filter((s) => !kind || s.kind === kind)
      .map((s) => ({ id: s.id, kind: s.kind, address: s.address, lastHeartbeatMs: s.lastHeartbeatMs, healthy: this.healthyNow(s) }))
      .sort((a, b) => a.kind.localeCompare(b.kind) || a.id.localeCompare(b.id));
  }

  async listServers(kind?: ServerKind): Promise<ServerInfo[]> {
    this.requireLeader();
    if (kind) validateKind(kind);
    this.publish();
    return this.listServersSync(kind);
  }

  /** Addresses of healthy servers of a kind: those seen beating first, then those presumed healthy after a failover. */
  healthy(kind: ServerKind): string[] {
    const list = this.listServersSync(kind).filter((s) => s.healthy);
    return [...list.filter((s) => s.lastHeartbeatMs > 0), ...list.filter((s) => s.lastHeartbeatMs === 0)].map((s) => s.address);
  }

  /** How many servers of a kind are registered, healthy or not. */
  registered(kind: ServerKind): number {
    return this.listServersSync(kind).length;
  }

  // ---- sessions ------------------------------------------------------------------------------

  private info(s: LiveSession): SessionInfo {
    return { sessionId: s.sessionId, fsId: s.fsId, client: s.client, mountpoint: s.mountpoint, expiresMs: s.expiresMs };
  }

  async mount(fsName: string, client: string, mountpoint: string): Promise<MountInfo> {
    const fs = await this.getFs(fsName);
    if (client.length > 256 || mountpoint.length > 4096) throw fsError('EINVAL', 'client or mountpoint too long');
    const rec: SessionRecord = { sessionId: randomUUID(), fsId: fs.fsId, client, mountpoint, createdMs: Date.now() };
    let expiresMs: number;
    if (this.leases) {
      expiresMs = await this.leases.open(rec.sessionId, rec, this.leaseMs);
    } else {
      await this.store.txn([{ key: Keys.session(rec.sessionId), version: 0 }], [{ type: 'put', key: Keys.session(rec.sessionId), value: rec }]);
      expiresMs = Date.now() + this.leaseMs;
    }
    const live: LiveSession = { ...rec, expiresMs, expired: false };
    this.sessions.set(rec.sessionId, live);
    this.publish();
    // Each mount gets the metaservers rotated one further: clients use the first entry, so
    // successive mounts land on different ones (metaservers over etcd share the namespace). The
    // healthy datastores only tell the client whether it can mount: it places chunks over the
    // whole registered list (listServers, by id), like every other client (DatastoreDirectory).
    const metaservers = rotate(this.healthy('metaserver'), this.mounts++);
    const datastores = this.listServersSync('datastore').filter((s) => s.healthy).map((s) => s.address);
    log.info({ sessionId: rec.sessionId, fs: fs.name, client, mountpoint, metaserver: metaservers[0], datastore: datastores[0] }, 'mounted');
    return { fs, session: this.info(live), metaservers, datastores, leaseMs: this.leaseMs };
  }

  async keepalive(sessionId: string): Promise<SessionInfo> {
    if (this.leases) return this.keepaliveLease(this.leases, sessionId);
    this.requireLeader();
    validateSessionId(sessionId);
    const s = this.sessions.get(sessionId);
    if (!s || s.expired) throw fsError('ENOENT', `session ${sessionId} is unknown or expired; mount again`);
    s.expiresMs = Date.now() + this.leaseMs;
    return this.info(s);
  }

  /**
   * Renews the session's store lease. Any replica may (renewing a lease needs no fence), so a
   * client keeps its session alive while the MDS fails over.
   */
  private async keepaliveLease(leases: SessionLeases, sessionId: string): Promise<SessionInfo> {
    validateSessionId(sessionId);
    const known = this.sessions.get(sessionId);
    const gone = () => fsError('ENOENT', `session ${sessionId} is unknown or expired; mount again`);
    if (known?.expired && this.election.isLeader()) throw gone();
    const expiresMs = await leases.renew(sessionId);
    if (expiresMs === undefined) {
      this.leaseGone(sessionId);
      throw gone();
    }
    if (known && this.election.isLeader()) {
      known.expiresMs = expiresMs;
      return this.info(known);
    }
    const rec = await this.store.get<SessionRecord>(Keys.session(sessionId));
    if (!rec) throw gone();
    return this.info({ ...rec.value, expiresMs, expired: false });
  }

  /** A session's store lease is gone (expired, or revoked by a release): the leader releases it. */
  private leaseGone(sessionId: string): void {
    if (!this.election.isLeader()) return;
    const s = this.sessions.get(sessionId);
    if (s) {
      if (s.expired) return;
      s.expired = true;
      log.warn({ sessionId, client: s.client, mountpoint: s.mountpoint }, 'session lease expired');
      this.release(s).catch(() => undefined);
      return;
    }
    // Not in memory (e.g. mounted through the previous leader just before it fell): release it if the record is there.
    this.store.get<SessionRecord>(Keys.session(sessionId)).then((rec) => {
      if (!rec || this.sessions.has(sessionId) || !this.election.isLeader()) return;
      const live: LiveSession = { ...rec.value, expiresMs: Date.now(), expired: true };
      this.sessions.set(sessionId, live);
      return this.release(live);
    }).catch((err: unknown) => log.warn({ sessionId, err: (err as Error).message }, 'releasing an expired session failed; the sweep retries'));
  }

  /** Ends the session; its leftovers on the metaservers are released like an expiry. Idempotent. */
  async unmount(sessionId: string): Promise<void> {
    this.requireLeader();
    validateSessionId(sessionId);
    const s = this.sessions.get(sessionId);
    if (!s) return;
    s.expired = true;
    log.info({ sessionId }, 'unmounted');
    await this.release(s);
  }

  async listSessions(): Promise<SessionInfo[]> {
    this.requireLeader();
    return [...this.sessions.values()].filter((s) => !s.expired).map((s) => this.info(s));
  }

  /**
   * Tells the metaservers, then forgets the session; on failure it is retried by the sweep. An
   * unmount racing with the sweep joins the release in progress instead of sending a second one.
   */
  private release(s: LiveSession): Promise<void> {
    s.releasing ??= this.releaseOnce(s).finally(() => (s.releasing = undefined));
    return s.releasing;
  }

  private async releaseOnce(s: LiveSession): Promise<void> {
    try {
      await this.hooks?.expireSession(s.sessionId);
    } catch (err) {
      log.warn({ sessionId: s.sessionId, err: (err as Error).message }, 'releasing session on metaservers failed; will retry');
      this.publish();
      return;
    }
    await this.store.txn([], [{ type: 'delete', key: Keys.session(s.sessionId) }]);
    this.sessions.delete(s.sessionId);
    this.publish();
    // The lease (if still alive, i.e. an unmount) is not needed any more; expiry would drop it too.
    await this.leases?.end(s.sessionId).catch((err: unknown) => log.debug({ sessionId: s.sessionId, err: (err as Error).message }, 'revoking a session lease failed'));
  }

  /**
   * Expires sessions past their lease (and retries releases that failed). With store leases the
   * store decides (the watch reports expiries); a session well past its known deadline is checked
   * against the store in case a watch event was missed.
   */
  async sweep(): Promise<void> {
    const now = Date.now();
    for (const s of [...this.sessions.values()]) {
      if (!s.expired && s.expiresMs >= now) continue;
      if (!s.expired && this.leases) {
        if (s.expiresMs + LEASE_CHECK_SLACK_MS >= now) continue;
        const d = await this.leases.deadline(s.sessionId).catch(() => now + LEASE_CHECK_SLACK_MS);
        if (d !== undefined) {
          s.expiresMs = d;
          continue;
        }
      }
      if (!s.expired) {
        s.expired = true;
        log.warn({ sessionId: s.sessionId, client: s.client, mountpoint: s.mountpoint }, 'session lease expired');
      }
      await this.release(s);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.sweepTimer);
    this.unsubscribe?.();
    await this.stopWatch?.();
    await this.sweeping;
    await this.createLock;
    await this.joins;
  }
}
