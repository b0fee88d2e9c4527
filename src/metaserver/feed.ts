// The change feed: namespace ops publish what they changed after their txn commits, subscribers
// get the events in commit order with increasing sequence numbers. The in-process feed keeps a
// bounded ring per file system so a client reconnecting with its last seq catches up; older than
// the ring (or from before a restart) gets one 'reset' event, after which it drops every cache.
//
// seq = store revision × 1024 + index of the event in its txn: monotonic across restarts (the
// revision is persisted) and the same on every metaserver sharing an etcd store, so a feed driven
// by an etcd watch on the 'E' keys (Namespace option `persistEvents`) numbers events identically.
import type { ChangeEvent, Ino, SubscribeHandlers, Subscription } from './api';
import { gauge } from '../common/metrics';
import { moduleLogger } from '../common/logger';

const log = moduleLogger('metaserver-feed');

export const EVENTS_PER_REVISION = 1024;

/** An event before it has a sequence number. */
export type EventDraft =
  | { readonly kind: 'entry'; readonly parent: Ino; readonly name: Buffer }
  | { readonly kind: 'attr'; readonly ino: Ino }
  | { readonly kind: 'data'; readonly ino: Ino; readonly dataVersion: number };

export interface ChangeFeed {
  /** Called once per committed txn that changed something, in revision order. */
  publish(fsId: number, revision: number, events: readonly EventDraft[]): void;
  /** From `fromSeq` exclusive (0 = only new events). Handlers are called asynchronously. */
  subscribe(fsId: number, fromSeq: number, handlers: SubscribeHandlers): Subscription;
  /** Ends every subscription (their error handler is called). */
  close(): void;
}

const subscribersGauge = gauge({ name: 'kurve_metaserver_feed_subscribers', help: 'Open change-feed subscriptions' });

export function numberEvents(revision: number, drafts: readonly EventDraft[]): ChangeEvent[] {
  const base = revision * EVENTS_PER_REVISION;
  // Drafts past the per-revision budget collapse into a reset: the client refetches everything.
  if (drafts.length >= EVENTS_PER_REVISION) return [{ seq: base, kind: 'reset' }];
  // Spelled out per kind: an object spread per event was a visible share of a create's CPU.
  return drafts.map((d, i): ChangeEvent => {
    const seq = base + i;
    switch (d.kind) {
      case 'entry': return { kind: 'entry', parent: d.parent, name: d.name, seq };
      case 'attr': return { kind: 'attr', ino: d.ino, seq };
      case 'data': return { kind: 'data', ino: d.ino, dataVersion: d.dataVersion, seq };
    }
  });
}

interface Sub {
  readonly fsId: number;
  readonly handlers: SubscribeHandlers;
  closed: boolean;
}

export interface InProcessFeedOptions {
  /** Events kept per file system for catching up (default 100k; up to a quarter more between trims). */
  readonly ringSize?: number;
  /** Store revision at startup: events at or before it were not seen by this process. */
  readonly startRevision: number;
}

export class InProcessFeed implements ChangeFeed {
  private readonly ringSize: number;
  private readonly rings = new Map<number, ChangeEvent[]>();
  /** Per fs: every event with seq > floor is in the ring (or never existed). */
  private readonly floors = new Map<number, number>();
  private readonly startFloor: number;
  private readonly subs = new Set<Sub>();
  private closed = false;

  constructor(opts: InProcessFeedOptions) {
    this.ringSize = opts.ringSize ?? 100_000;
    this.startFloor = opts.startRevision * EVENTS_PER_REVISION + EVENTS_PER_REVISION - 1;
  }

  publish(fsId: number, revision: number, drafts: readonly EventDraft[]): void {
    if (drafts.length === 0) return;
    const events = numberEvents(revision, drafts);
    let ring = this.rings.get(fsId);
    if (!ring) this.rings.set(fsId, (ring = []));
    ring.push(...events);
    // Trimmed a quarter ring at a time: dropping the oldest event or two at every publish moved the
    // whole array each time (~250 µs per file create once the ring was full).
    if (ring.length > this.ringSize + Math.floor(this.ringSize / 4)) {
      const dropped = ring.splice(0, ring.length - this.ringSize);
      this.floors.set(fsId, dropped[dropped.length - 1].seq);
    }
    for (const s of this.subs) if (s.fsId === fsId) this.deliver(s, events);
  }

  private deliver(s: Sub, events: readonly ChangeEvent[]): void {
    queueMicrotask(() => {
      for (const e of events) {
        if (s.closed) return;
        try {
          s.handlers.event(e);
        } catch (err) {
          // A subscriber's bug must not take the metaserver down (this runs in a microtask).
          log.error({ err }, 'change-feed subscriber threw; subscription closed');
          s.closed = true;
          this.subs.delete(s);
          subscribersGauge.set(this.subs.size);
          return;
        }
      }
    });
  }

  subscribe(fsId: number, fromSeq: number, handlers: SubscribeHandlers): Subscription {
    const sub: Sub = { fsId, handlers, closed: false };
    if (this.closed) {
      queueMicrotask(() => handlers.error(new Error('change feed closed')));
      return { close: () => undefined };
    }
    if (fromSeq > 0) {
      const floor = this.floors.get(fsId) ?? this.startFloor;
      const ring = this.rings.get(fsId) ?? [];
      if (fromSeq < floor) {
        this.deliver(sub, [{ seq: ring.length ? ring[ring.length - 1].seq : floor, kind: 'reset' }]);
      } else {
        this.deliver(sub, ring.filter((e) => e.seq > fromSeq));
      }
    }
    this.subs.add(sub);
    subscribersGauge.set(this.subs.size);
    return {
      close: () => {
        sub.closed = true;
        this.subs.delete(sub);
        subscribersGauge.set(this.subs.size);
      },
    };
  }

  /** The highest seq published for a file system (0 if none), for clients starting fresh. */
  lastSeq(fsId: number): number {
    const ring = this.rings.get(fsId);
    return ring && ring.length ? ring[ring.length - 1].seq : 0;
  }

  close(): void {
    this.closed = true;
    const err = new Error('change feed closed');
    for (const s of this.subs) {
      s.closed = true;
      queueMicrotask(() => s.handlers.error(err));
    }
    this.subs.clear();
    subscribersGauge.set(0);
  }
}

/** 'E' value codec for feeds driven by a store watch: the drafts of one txn. */
export function encodeEvents(drafts: readonly EventDraft[]): Buffer {
  return Buffer.from(JSON.stringify(drafts.map((d) => (d.kind === 'entry' ? { ...d, name: d.name.toString('base64') } : d))));
}
export function decodeEvents(b: Buffer): EventDraft[] {
  const raw = JSON.parse(b.toString()) as Array<Record<string, unknown>>;
  return raw.map((d) => (d.kind === 'entry' ? { ...d, name: Buffer.from(d.name as string, 'base64') } : d) as EventDraft);
}
