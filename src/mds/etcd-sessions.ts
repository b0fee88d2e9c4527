// Client sessions as etcd leases (SessionLeases for EtcdMdsStore): the session record is a plain
// key; its liveness key `session-leases/<id>` is attached to a lease with the session's TTL. Any
// replica can renew the lease; the leader watches liveness keys disappear (expiry) and releases the
// session. Only raw lease RPCs are used (no etcd3 Lease objects, whose timers keep Node alive), and
// nothing is revoked at MDS shutdown: sessions belong to clients and outlive MDS processes.
import { Watcher } from 'etcd3';
import { deadline, retryEtcd } from '../common/etcd-client';
import { moduleLogger } from '../common/logger';
import type { EtcdMdsStore } from './etcd-store';
import { Keys, SessionLeases } from './store';

const log = moduleLogger('mds-sessions');

/** etcd's "lease not found" (revoked or expired): not worth retrying, the answer is "gone". */
const isLeaseGone = (err: unknown) => err instanceof Error && /lease not found|EtcdLeaseInvalid/i.test(`${err.name} ${err.message}`);

export class EtcdSessionLeases implements SessionLeases {
  /** session id -> lease id, so a renewal costs one round trip. */
  private readonly leaseIds = new Map<string, string>();

  constructor(private readonly store: EtcdMdsStore) {}

  async open(id: string, record: unknown, ttlMs: number): Promise<number> {
    this.store.check();
    const ttlSec = Math.max(1, Math.ceil(ttlMs / 1000));
    const sent = Date.now();
    const grant = await retryEtcd('mds-lease-grant', this.store.policy, (ms) =>
      this.store.client.leaseClient.leaseGrant({ TTL: ttlSec }, deadline(ms)),
    );
    const leaseId = String(grant.ID);
    let ok = false;
    try {
      ok = await this.store.txn(
        [{ key: Keys.session(id), version: 0 }],
        [{ type: 'put', key: Keys.session(id), value: record }, { type: 'put', key: Keys.sessionLease(id), value: { sessionId: id }, lease: leaseId }],
      );
    } finally {
      if (!ok) await this.revoke(leaseId).catch(() => undefined);
    }
    this.leaseIds.set(id, leaseId);
    return sent + Number(grant.TTL) * 1000;
  }

  async renew(id: string): Promise<number | undefined> {
    const leaseId = await this.leaseOf(id);
    if (!leaseId) return undefined;
    const sent = Date.now();
    const ttl = await retryEtcd('mds-lease-keepalive', this.store.policy, (ms) => this.keepaliveOnce(leaseId, ms));
    if (ttl <= 0) {
      this.leaseIds.delete(id);
      return undefined;
    }
    return sent + ttl * 1000;
  }

  async deadline(id: string): Promise<number | undefined> {
    const leaseId = await this.leaseOf(id);
    if (!leaseId) return undefined;
    const now = Date.now();
    const res = await retryEtcd('mds-lease-ttl', this.store.policy, (ms) =>
      this.store.client.leaseClient.leaseTimeToLive({ ID: leaseId }, deadline(ms)),
    );
    // Whole seconds, rounded down ("expires in under TTL+1 s"); -1 = expired or unknown. So 0 is
    // a live lease with less than a second left, not an expired one.
    const ttl = Number(res.TTL);
    if (!(ttl >= 0)) {
      this.leaseIds.delete(id);
      return undefined;
    }
    return now + (ttl + 1) * 1000;
  }

  async end(id: string): Promise<void> {
    const leaseId = await this.leaseOf(id);
    this.leaseIds.delete(id);
    if (leaseId) await this.revoke(leaseId);
  }

  async watch(onGone: (id: string) => void): Promise<() => Promise<void>> {
    this.store.check();
    const prefix = this.store.k(Keys.sessionLeasePrefix).toString();
    const w: Watcher = await this.store.client.watch().prefix(prefix).create();
    w.on('delete', (kv) => {
      const id = kv.key.toString().slice(prefix.length);
      this.leaseIds.delete(id);
      onGone(id);
    });
    w.on('error', (err) => log.warn({ err: err.message }, 'session lease watch failed'));
    return async () => {
      await w.cancel().catch(() => undefined);
    };
  }

  /** The lease of a live session (from its liveness key), or undefined when there is none. */
  private async leaseOf(id: string): Promise<string | undefined> {
    this.store.check();
    const cached = this.leaseIds.get(id);
    if (cached) return cached;
    const res = await retryEtcd('mds-get', this.store.policy, (ms) =>
      this.store.client.kv.range({ key: this.store.k(Keys.sessionLease(id)) }, deadline(ms)),
    );
    const lease = res.kvs[0]?.lease;
    if (!lease || lease === '0') return undefined;
    this.leaseIds.set(id, String(lease));
    return String(lease);
  }

  private async revoke(leaseId: string): Promise<void> {
    try {
      await retryEtcd('mds-lease-revoke', this.store.policy, (ms) => this.store.client.leaseClient.leaseRevoke({ ID: leaseId }, deadline(ms)));
    } catch (err) {
      if (!isLeaseGone(err)) throw err;
    }
  }

  /** One keepalive on its own stream: the renewed TTL in seconds (0 = the lease is gone: a renewal answers the full TTL). */
  private async keepaliveOnce(leaseId: string, ms: number): Promise<number> {
    const stream = await this.store.client.leaseClient.leaseKeepAlive(deadline(ms));
    try {
      return await new Promise<number>((resolve, reject) => {
        stream.on('data', (res) => resolve(Number(res.TTL)));
        stream.on('error', reject);
        stream.on('end', () => reject(new Error('lease keepalive stream ended without an answer')));
        stream.write({ ID: leaseId });
      });
    } finally {
      stream.end();
    }
  }
}
