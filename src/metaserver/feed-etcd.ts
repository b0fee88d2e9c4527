// A change feed driven by an etcd watch on the namespace's 'E' keys, so every metaserver sharing
// one etcd store delivers every txn's events — its own and other metaservers' — to its subscribers,
// numbered identically (seq = etcd revision × 1024 + index). Needs Namespace({persistEvents: true}).
import type { SubscribeHandlers, Subscription } from './api';
import { ChangeFeed, decodeEvents, EventDraft, InProcessFeed } from './feed';
import { T } from './keys';
import type { KvChangeBatch, KvWatch, WatchableKvEngine } from './engines/etcd';
import { moduleLogger } from '../common/logger';
import { counter } from '../common/metrics';

const log = moduleLogger('feed-etcd');
const gaps = counter({ name: 'kurve_metaserver_feed_gaps_total', help: 'Watch restarts that lost events (subscribers were ended)' });

export interface EtcdWatchFeedOptions {
  /** Events kept per file system for reconnecting subscribers (default 100k). */
  readonly ringSize?: number;
}

export class EtcdWatchFeed implements ChangeFeed {
  private inner: InProcessFeed;
  private watch: KvWatch | undefined;
  /** Last revision whose events were handed to the inner feed. */
  private revision: number;
  private closed = false;

  private constructor(private readonly engine: WatchableKvEngine, startRevision: number, private readonly opts: EtcdWatchFeedOptions) {
    this.revision = startRevision;
    this.inner = new InProcessFeed({ startRevision, ringSize: opts.ringSize });
  }

  /** Starts watching from the store's current revision. */
  static async start(engine: WatchableKvEngine, opts: EtcdWatchFeedOptions = {}): Promise<EtcdWatchFeed> {
    const feed = new EtcdWatchFeed(engine, await engine.revision(), opts);
    await feed.rewatch();
    return feed;
  }

  private async rewatch(): Promise<void> {
    this.watch = await this.engine.watch(Buffer.from([T.EVENTS]), this.revision, {
      batch: (b) => this.onBatch(b),
      error: (err) => void this.onError(err),
    });
  }

  private onBatch(b: KvChangeBatch): void {
    if (b.revision <= this.revision) return; // a resumed watch can repeat what we delivered
    this.revision = b.revision;
    for (const c of b.changes) {
      if (!c.value || c.key.length !== 5 || c.key[0] !== T.EVENTS) continue;
      let drafts: EventDraft[];
      try {
        drafts = decodeEvents(c.value);
      } catch (err) {
        log.error({ revision: b.revision, err: (err as Error).message }, 'undecodable events record; skipped');
        continue;
      }
      this.inner.publish(c.key.readUInt32BE(1), b.revision, drafts);
    }
  }

  /**
   * The watch ended (history compacted past our revision, or the engine closed): events are lost,
   * so every subscription ends with an error (clients drop their caches and resubscribe) and the
   * watch restarts from now.
   */
  private async onError(err: Error & { compacted?: boolean }): Promise<void> {
    if (this.closed) return;
    gaps.inc();
    log.warn({ err: err.message, compacted: err.compacted ?? false }, 'change feed watch ended; restarting, subscribers must resync');
    const old = this.inner;
    for (;;) {
      try {
        this.revision = await this.engine.revision();
        this.inner = new InProcessFeed({ startRevision: this.revision, ringSize: this.opts.ringSize });
        old.close();
        await this.rewatch();
        return;
      } catch (e) {
        if (this.closed) return;
        log.warn({ err: (e as Error).message }, 'cannot restart the change feed watch; retrying');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** Local commits arrive through the watch like everyone else's; publishing here would repeat them. */
  publish(): void {}

  subscribe(fsId: number, fromSeq: number, handlers: SubscribeHandlers): Subscription {
    return this.inner.subscribe(fsId, fromSeq, handlers);
  }

  lastSeq(fsId: number): number {
    return this.inner.lastSeq(fsId);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    void this.watch?.close();
    this.inner.close();
  }
}
