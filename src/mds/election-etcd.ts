// MDS leader election on etcd (npm etcd3's Election: campaign / observe / resign), as CurveFS does.
// The leader steps down the moment its lease may have expired (tracked locally from keepalive
// round trips, not when etcd3 notices), and exposes a fence: an etcd compare on its own election
// key that every leader-only write carries, so a deposed leader's write can never apply.
import { Campaign, Election, Etcd3, ICompare, Lease, Watcher } from 'etcd3';
import { LeaderElection } from './leader';
import { moduleLogger } from '../common/logger';
import { gauge } from '../common/metrics';

const log = moduleLogger('election');

const isLeaderGauge = gauge({ name: 'kurve_mds_is_leader', help: '1 while this MDS replica is the leader' });

export interface ElectionOptions {
  readonly client: Etcd3;
  /** Cluster name: the election lives under kurve/<cluster>/. */
  readonly cluster?: string;
  /** This replica's client-facing address, announced while it leads. */
  readonly address: string;
  /** Lease TTL in seconds (etcd's unit; ≥ 1). Default 5. */
  readonly ttlSec?: number;
}

/** What the leader announces in its election key (and `kurve status` shows). */
export interface LeaderValue {
  readonly addr: string;
  readonly pid: number;
}

export class NotLeaderError extends Error {
  constructor(readonly leader: string | undefined) {
    super(leader ? `not the MDS leader; the leader is ${leader}` : 'not the MDS leader; no leader elected yet');
    this.name = 'NotLeaderError';
  }
}

/** etcd3 keeps the campaign's lease private; we need its keepalive events to know when it may have expired. */
function campaignLease(c: Campaign): Lease {
  const lease = (c as unknown as { lease?: unknown }).lease;
  if (!(lease instanceof Lease)) throw new Error('etcd3 Campaign has no lease field: unsupported etcd3 version');
  return lease;
}

export class EtcdElection implements LeaderElection {
  private readonly election: Election;
  private readonly ttlSec: number;
  private readonly value: LeaderValue;
  private readonly listeners = new Set<(leader: boolean) => void>();
  private campaign: Campaign | undefined;
  private watcher: Watcher | undefined;
  private readonly electionPrefix: string;
  private leading = false;
  private fenceCompare: ICompare | undefined;
  private observed: LeaderValue | undefined;
  /** Our lease is certainly alive until this time (ms): the send time of the last acknowledged keepalive + TTL. */
  private validUntil = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Every lease we campaigned with: all are revoked at close (an unrevoked one keeps Node alive). */
  private readonly leases = new Set<Lease>();

  constructor(private readonly opts: ElectionOptions) {
    this.ttlSec = opts.ttlSec ?? 5;
    if (!Number.isInteger(this.ttlSec) || this.ttlSec < 1) throw new Error(`election TTL must be a whole number of seconds ≥ 1, got ${this.ttlSec}`);
    const ns = `kurve/${opts.cluster ?? 'default'}/`;
    this.election = opts.client.namespace(ns).election('mds', this.ttlSec);
    this.electionPrefix = `${ns}${Election.prefix}/mds/`;
    this.value = { addr: opts.address, pid: process.pid };
  }

  /** Starts observing and campaigning; resolves once the observer runs (not when elected). */
  async start(): Promise<void> {
    await this.observe();
    this.runCampaign();
    this.watchdog = setInterval(() => this.checkLease(), Math.max(20, Math.min(200, (this.ttlSec * 1000) / 20)));
    this.watchdog.unref();
  }

  isLeader(): boolean {
    return this.leading && Date.now() < this.validUntil - this.margin();
  }

  leaderAddress(): string | undefined {
    if (this.isLeader()) return this.opts.address;
    const v = this.observed;
    // Our own stale value (we just stepped down) is no hint.
    return v && !(v.addr === this.opts.address && v.pid === process.pid) ? v.addr : undefined;
  }

  leaderValue(): LeaderValue | undefined {
    return this.isLeader() ? this.value : this.observed;
  }

  onChange(cb: (leader: boolean) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** The compare every leader-only write must carry; throws NotLeaderError when not leading. */
  fence(): ICompare {
    if (!this.isLeader() || !this.fenceCompare) throw new NotLeaderError(this.leaderAddress());
    return this.fenceCompare;
  }

  /** Leaves the election (the lease is revoked, so a follower takes over at once). Bounded. */
  async resign(timeoutMs = 2000): Promise<void> {
    const c = this.campaign;
    this.campaign = undefined;
    this.setLeading(false);
    if (c) await withTimeout(this.drop(c), timeoutMs).catch((err) => log.warn({ err: (err as Error).message }, 'resign failed; the lease will expire'));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.resign();
    await Promise.all(
      [...this.leases].map(async (l) => {
        await withTimeout(l.revoke(), 1000).catch(() => undefined);
        l.release();
      }),
    );
    this.leases.clear();
    await this.watcher?.cancel().catch(() => undefined);
    this.listeners.clear();
  }

  /** Ends a campaign: its lease is revoked (its key goes at once) and forgotten once that worked. */
  private async drop(c: Campaign): Promise<void> {
    await c.resign();
    this.leases.delete(campaignLease(c));
  }

  private margin(): number {
    return Math.min(500, Math.max(100, (this.ttlSec * 1000) / 10));
  }

  /**
   * Follows who leads: the election key with the lowest create revision, re-read on every change
   * under the election prefix. (etcd3's ElectionObserver can pick a later candidate when several
   * campaigns start in the same watch response, so it is not used.)
   */
  private async observe(): Promise<void> {
    const w = await this.opts.client.watch().prefix(this.electionPrefix).create();
    this.watcher = w;
    w.on('data', () => this.refreshLeader());
    w.on('connected', () => this.refreshLeader());
    w.on('error', (err) => log.warn({ err: err.message }, 'election watch failed'));
    await this.refreshLeader();
  }

  private refreshing: Promise<void> | undefined;
  private refreshAgain = false;
  private refreshLeader(): Promise<void> {
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.refreshAgain = false;
        try {
          const raw = await this.election.leader();
          this.observed = raw ? (JSON.parse(raw) as LeaderValue) : undefined;
        } catch (err) {
          log.debug({ err: (err as Error).message }, 'cannot read the election leader');
        }
      } while (this.refreshAgain && !this.closed);
      this.refreshing = undefined;
    })();
    return this.refreshing;
  }

  private runCampaign(): void {
    if (this.closed) return;
    const started = Date.now();
    const c = this.election.campaign(JSON.stringify(this.value));
    this.campaign = c;
    const lease = campaignLease(c);
    this.leases.add(lease);
    this.validUntil = started + this.ttlSec * 1000;
    // Keepalives go out on one stream in order; each answer extends the lease from its send time.
    const fired: number[] = [];
    lease.on('keepaliveFired', () => fired.push(Date.now()));
    lease.on('keepaliveFailed', () => (fired.length = 0));
    lease.on('keepaliveSucceeded', (res) => {
      const sent = fired.shift() ?? started;
      if (this.campaign === c) this.validUntil = Math.max(this.validUntil, sent + Number(res.TTL) * 1000);
    });
    c.on('elected', () => void this.onElected(c, lease));
    c.on('error', (err) => {
      if (this.campaign !== c) return;
      log.warn({ err: err.message }, 'election campaign failed (lease lost?); campaigning again');
      this.campaign = undefined;
      this.setLeading(false);
      this.drop(c).catch(() => undefined);
      this.retryTimer = setTimeout(() => this.runCampaign(), 200);
    });
  }

  private async onElected(c: Campaign, lease: Lease): Promise<void> {
    try {
      const key = await c.getCampaignKey();
      const res = await this.opts.client.kv.range({ key: Buffer.from(key) }, { deadline: new Date(Date.now() + 2000) });
      const kv = res.kvs[0];
      if (!kv || kv.lease !== (await lease.grant())) throw new Error('election key vanished right after the election');
      if (this.campaign !== c) return;
      this.fenceCompare = { key: Buffer.from(key), target: 'Create', result: 'Equal', create_revision: kv.create_revision };
      this.setLeading(true);
      log.info({ addr: this.opts.address, key }, 'elected MDS leader');
    } catch (err) {
      if (this.campaign !== c) return;
      c.emit('error', err);
    }
  }

  private checkLease(): void {
    if (this.leading && !this.isLeader()) {
      log.warn({ ttlSec: this.ttlSec }, 'lease may have expired (no keepalive answer): stepping down');
      const c = this.campaign;
      this.campaign = undefined;
      this.setLeading(false);
      if (c) this.drop(c).catch(() => undefined);
      this.retryTimer = setTimeout(() => this.runCampaign(), 100);
    }
  }

  private setLeading(v: boolean): void {
    if (this.leading === v) return;
    this.leading = v;
    if (!v) this.fenceCompare = undefined;
    isLeaderGauge.set(v ? 1 : 0);
    for (const cb of this.listeners) {
      try {
        cb(v);
      } catch (err) {
        log.error({ err: (err as Error).message }, 'leader change listener threw');
      }
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/** Creates an election for this MDS replica and starts campaigning. */
export async function startElection(opts: ElectionOptions): Promise<EtcdElection> {
  const e = new EtcdElection(opts);
  await e.start();
  return e;
}
