// The in-process change feed: ordering, catch-up from a seq, reset when the ring no longer covers
// the request, and isolation from a subscriber that throws.
import type { ChangeEvent } from '../../src/metaserver/api';
import { EVENTS_PER_REVISION, InProcessFeed } from '../../src/metaserver/feed';

const flush = () => new Promise((r) => setImmediate(r));
const collect = (feed: InProcessFeed, fsId: number, from: number) => {
  const got: ChangeEvent[] = [];
  const errors: Error[] = [];
  const sub = feed.subscribe(fsId, from, { event: (e) => got.push(e), error: (e) => errors.push(e) });
  return { got, errors, sub };
};

describe('InProcessFeed', () => {
  it('delivers events of its file system in order, numbered by revision', async () => {
    const feed = new InProcessFeed({ startRevision: 10 });
    const c = collect(feed, 1, 0);
    feed.publish(1, 11, [{ kind: 'attr', ino: 5 }, { kind: 'data', ino: 5, dataVersion: 2 }]);
    feed.publish(2, 12, [{ kind: 'attr', ino: 9 }]);
    feed.publish(1, 13, [{ kind: 'entry', parent: 1, name: Buffer.from('x') }]);
    await flush();
    expect(c.got.map((e) => e.seq)).toEqual([11 * EVENTS_PER_REVISION, 11 * EVENTS_PER_REVISION + 1, 13 * EVENTS_PER_REVISION]);
    expect(c.got.map((e) => e.kind)).toEqual(['attr', 'data', 'entry']);
    c.sub.close();
    feed.publish(1, 14, [{ kind: 'attr', ino: 1 }]);
    await flush();
    expect(c.got).toHaveLength(3);
  });
  it('catches up from a seq, and resets for one from before it started or past the ring', async () => {
    const feed = new InProcessFeed({ startRevision: 10, ringSize: 3 });
    for (let rev = 11; rev <= 14; rev++) feed.publish(1, rev, [{ kind: 'attr', ino: rev }]);
    const fromRing = collect(feed, 1, 12 * EVENTS_PER_REVISION);
    const beforeStart = collect(feed, 1, 5);
    const dropped = collect(feed, 1, 11 * EVENTS_PER_REVISION - 1);
    await flush();
    expect(fromRing.got.map((e) => (e.kind === 'attr' ? e.ino : -1))).toEqual([13, 14]);
    expect(beforeStart.got.map((e) => e.kind)).toEqual(['reset']);
    expect(dropped.got.map((e) => e.kind)).toEqual(['reset']);
  });
  it('stays cheap once the ring is full (200k events through a 100k ring), and still catches up', async () => {
    const feed = new InProcessFeed({ startRevision: 0, ringSize: 100_000 });
    const t0 = performance.now();
    for (let rev = 1; rev <= 200_000; rev++) feed.publish(1, rev, [{ kind: 'attr', ino: rev }]);
    // Trimming one event per publish took ~250 µs each here: 25 s for the second 100k.
    expect(performance.now() - t0).toBeLessThan(3000);
    const recent = collect(feed, 1, 150_000 * EVENTS_PER_REVISION);
    const old = collect(feed, 1, 50_000 * EVENTS_PER_REVISION);
    await flush();
    expect(recent.got).toHaveLength(50_000);
    expect(recent.got[0]).toMatchObject({ kind: 'attr', ino: 150_001 });
    expect(old.got.map((e) => e.kind)).toEqual(['reset']);
    expect(feed.lastSeq(1)).toBe(200_000 * EVENTS_PER_REVISION);
  });
  it('a subscriber that throws is dropped without affecting others', async () => {
    const feed = new InProcessFeed({ startRevision: 0 });
    feed.subscribe(1, 0, { event: () => { throw new Error('bug'); }, error: () => undefined });
    const good = collect(feed, 1, 0);
    feed.publish(1, 1, [{ kind: 'attr', ino: 1 }]);
    feed.publish(1, 2, [{ kind: 'attr', ino: 2 }]);
    await flush();
    expect(good.got).toHaveLength(2);
  });
  it('close ends every subscription with an error, and later subscribers too', async () => {
    const feed = new InProcessFeed({ startRevision: 0 });
    const a = collect(feed, 1, 0);
    feed.close();
    const b = collect(feed, 1, 0);
    await flush();
    expect(a.errors).toHaveLength(1);
    expect(b.errors).toHaveLength(1);
  });
});
