// EtcdWatchFeed's logic over a scripted engine: events of 'E' keys become numbered change events
// for the right file system, repeats after a resumed watch are dropped, and a watch that ends
// (compacted history) ends every subscription and restarts from the current revision.
import type { ChangeEvent } from '../../src/metaserver/api';
import type { KvEngine } from '../../src/metaserver/engine';
import type { KvWatchHandlers, WatchableKvEngine } from '../../src/metaserver/engines/etcd';
import { EtcdWatchFeed } from '../../src/metaserver/feed-etcd';
import { EVENTS_PER_REVISION, encodeEvents } from '../../src/metaserver/feed';
import { eventsKey } from '../../src/metaserver/keys';

class ScriptedEngine {
  rev = 10;
  watches: Array<{ after: number; h: KvWatchHandlers; closed: boolean }> = [];
  readonly kind = 'scripted';
  async revision(): Promise<number> {
    return this.rev;
  }
  async watch(_prefix: Buffer, after: number, h: KvWatchHandlers) {
    const w = { after, h, closed: false };
    this.watches.push(w);
    return { close: async () => void (w.closed = true) };
  }
  get current() {
    return this.watches[this.watches.length - 1];
  }
}

const flush = () => new Promise((r) => setImmediate(r));

describe('EtcdWatchFeed', () => {
  it('numbers the events of each E key by revision, per file system, and drops repeats', async () => {
    const eng = new ScriptedEngine();
    const feed = await EtcdWatchFeed.start(eng as unknown as WatchableKvEngine & KvEngine);
    expect(eng.current.after).toBe(10);
    const got: ChangeEvent[] = [];
    feed.subscribe(7, 0, { event: (e) => got.push(e), error: () => got.push({ seq: -1, kind: 'reset' }) });
    const ev = encodeEvents([{ kind: 'entry', parent: 1, name: Buffer.from('a') }, { kind: 'attr', ino: 1 }]);
    eng.current.h.batch({ revision: 11, changes: [{ key: eventsKey(7), value: ev }, { key: eventsKey(8), value: ev }, { key: Buffer.from('Ixx'), value: Buffer.from('') }] });
    eng.current.h.batch({ revision: 11, changes: [{ key: eventsKey(7), value: ev }] }); // a resumed watch repeating itself
    eng.current.h.batch({ revision: 12, changes: [{ key: eventsKey(7), value: undefined }] }); // a delete carries no events
    await flush();
    expect(got.map((e) => [e.seq, e.kind])).toEqual([[11 * EVENTS_PER_REVISION, 'entry'], [11 * EVENTS_PER_REVISION + 1, 'attr']]);
    expect((got[0] as { name: Buffer }).name.toString()).toBe('a');
    expect(feed.lastSeq(7)).toBe(11 * EVENTS_PER_REVISION + 1);
    feed.close();
    expect(eng.current.closed).toBe(true);
  });

  it('a watch that ends (compacted) ends every subscription and rewatches from the current revision', async () => {
    const eng = new ScriptedEngine();
    const feed = await EtcdWatchFeed.start(eng as unknown as WatchableKvEngine & KvEngine);
    const errors: string[] = [];
    feed.subscribe(1, 0, { event: () => undefined, error: (err) => errors.push(err.message) });
    eng.rev = 500;
    eng.current.h.error(Object.assign(new Error('mvcc: required revision has been compacted'), { compacted: true }));
    await flush();
    await flush();
    expect(errors).toHaveLength(1);
    expect(eng.watches).toHaveLength(2);
    expect(eng.current.after).toBe(500);
    // New subscriptions work on the new watch; asking for events from before it gets a reset.
    const got: ChangeEvent[] = [];
    feed.subscribe(1, 12 * EVENTS_PER_REVISION, { event: (e) => got.push(e), error: () => undefined });
    eng.current.h.batch({ revision: 501, changes: [{ key: eventsKey(1), value: encodeEvents([{ kind: 'attr', ino: 5 }]) }] });
    await flush();
    expect(got.map((e) => e.kind)).toEqual(['reset', 'attr']);
    feed.close();
  });
});
