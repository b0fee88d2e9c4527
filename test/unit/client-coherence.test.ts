// Coherence: change-feed events become precise kernel notifications; our own changes are not
// echoed; a broken feed invalidates everything, shortens timeouts and resubscribes from the last seq.
import type { ChangeEvent, MetaService, SubscribeHandlers } from '../../src/metaserver/api';
import type { Notifier } from '../../src/fuse/protocol/raw-fs';
import { Coherence } from '../../src/fuse/coherence';

function fakeFeed() {
  const subs: Array<{ fromSeq: number; h: SubscribeHandlers; closed: boolean }> = [];
  const meta = {
    subscribe: (_fsId: number, fromSeq: number, h: SubscribeHandlers) => {
      const s = { fromSeq, h, closed: false };
      subs.push(s);
      return { close: () => void (s.closed = true) };
    },
  } as unknown as MetaService;
  return { meta, subs, last: () => subs[subs.length - 1] };
}

function recordingNotifier() {
  const calls: string[] = [];
  const n: Notifier = {
    invalInode: async (ino, off, len) => { calls.push(`inode ${ino} ${off} ${len}`); return 0; },
    invalEntry: async (parent, name) => { calls.push(`entry ${parent} ${name.toString()}`); return 0; },
    delete: async () => 0,
    resend: async () => 0,
  };
  return { n, calls };
}

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

describe('Coherence', () => {
  const opts = { entryTimeout: 3600, attrTimeout: 3600, degradedTimeout: 1 };

  it('turns foreign events into precise notifications and keeps long timeouts', async () => {
    const feed = fakeFeed();
    const { n, calls } = recordingNotifier();
    const data: Array<[number, number]> = [];
    const c = new Coherence(feed.meta, 1, opts, { onData: (i, v) => data.push([i, v]), onReset: () => undefined, knownInodes: () => [1, 7] });
    c.start(n);
    await tick(5);
    expect(c.subscribed).toBe(true);
    expect(c.entryTimeout).toBe(3600);
    const h = feed.last().h;
    h.event({ seq: 1, kind: 'entry', parent: 1, name: Buffer.from('x') } as ChangeEvent);
    h.event({ seq: 2, kind: 'attr', ino: 7 } as ChangeEvent);
    h.event({ seq: 3, kind: 'data', ino: 7, dataVersion: 4 } as ChangeEvent);
    expect(calls).toEqual(['entry 1 x', 'inode 7 -1 0', 'inode 7 0 0']);
    expect(data).toEqual([[7, 4]]);
    c.close();
  });

  it('skips the echo of our own entry change once, and of our own data commit', async () => {
    const feed = fakeFeed();
    const { n, calls } = recordingNotifier();
    const c = new Coherence(feed.meta, 1, opts, { onData: () => undefined, onReset: () => undefined, knownInodes: () => [] });
    c.start(n);
    const h = feed.last().h;
    c.expectEntry(1, Buffer.from('mine'));
    c.expectData(9, 2);
    h.event({ seq: 1, kind: 'entry', parent: 1, name: Buffer.from('mine') } as ChangeEvent);
    h.event({ seq: 2, kind: 'data', ino: 9, dataVersion: 2 } as ChangeEvent);
    expect(calls).toEqual([]);
    // A second change of the same name (another client) is not swallowed.
    h.event({ seq: 3, kind: 'entry', parent: 1, name: Buffer.from('mine') } as ChangeEvent);
    h.event({ seq: 4, kind: 'data', ino: 9, dataVersion: 3 } as ChangeEvent);
    expect(calls).toEqual(['entry 1 mine', 'inode 9 0 0']);
    c.close();
  });

  it('a cancelled expectation (the op failed) does not swallow a foreign event', () => {
    const feed = fakeFeed();
    const { n, calls } = recordingNotifier();
    const c = new Coherence(feed.meta, 1, opts, { onData: () => undefined, onReset: () => undefined, knownInodes: () => [] });
    c.start(n);
    const cancel = c.expectEntry(1, Buffer.from('f'));
    cancel();
    feed.last().h.event({ seq: 1, kind: 'entry', parent: 1, name: Buffer.from('f') } as ChangeEvent);
    expect(calls).toEqual(['entry 1 f']);
    c.close();
  });

  it('on a feed error: invalidates every inode and dentry, short timeouts, resubscribes from the last seq', async () => {
    const feed = fakeFeed();
    const { n, calls } = recordingNotifier();
    let resets = 0;
    const c = new Coherence(feed.meta, 1, opts, { onData: () => undefined, onReset: () => resets++, knownInodes: () => [1, 5] });
    c.start(n);
    await tick(5);
    c.noteDentry(1, Buffer.from('a'), 9);
    c.noteDentry(5, Buffer.from('neg'), 0);
    feed.last().h.event({ seq: 41, kind: 'attr', ino: 5 } as ChangeEvent);
    calls.length = 0;
    feed.last().h.error(new Error('stream broke'));
    expect(resets).toBe(1);
    expect(c.subscribed).toBe(false);
    expect(c.entryTimeout).toBe(1);
    expect(c.attrTimeout).toBe(1);
    expect(calls.sort()).toEqual(['entry 1 a', 'entry 5 neg', 'inode 1 0 0', 'inode 5 0 0']);
    await tick(150);
    expect(feed.subs.length).toBe(2);
    expect(feed.last().fromSeq).toBe(41);
    expect(c.subscribed).toBe(false); // trusted only after it stayed up for a while
    await tick(1100);
    expect(c.subscribed).toBe(true);
    expect(c.entryTimeout).toBe(3600);
    c.close();
  });

  it('sends no notification for an inode the kernel does not hold, but still tells the daemon', () => {
    const feed = fakeFeed();
    const { n, calls } = recordingNotifier();
    const data: number[] = [];
    const attrs: number[] = [];
    const c = new Coherence(feed.meta, 1, opts, {
      onData: (i) => data.push(i), onAttr: (i) => attrs.push(i), onReset: () => undefined, knownInodes: () => [7], held: (i) => i === 7,
    });
    c.start(n);
    const h = feed.last().h;
    h.event({ seq: 1, kind: 'attr', ino: 8 } as ChangeEvent);
    h.event({ seq: 2, kind: 'data', ino: 8, dataVersion: 2 } as ChangeEvent);
    h.event({ seq: 3, kind: 'attr', ino: 7 } as ChangeEvent);
    h.event({ seq: 4, kind: 'data', ino: 7, dataVersion: 2 } as ChangeEvent);
    expect(calls).toEqual(['inode 7 -1 0', 'inode 7 0 0']);
    expect(attrs).toEqual([8, 7]);
    expect(data).toEqual([8, 7]);
    // An expectation is consumed by its echo even when nothing would have been sent.
    c.expectAttr(8);
    h.event({ seq: 5, kind: 'attr', ino: 8 } as ChangeEvent);
    c.expectAttr(7);
    h.event({ seq: 6, kind: 'attr', ino: 8 } as ChangeEvent);
    h.event({ seq: 7, kind: 'attr', ino: 7 } as ChangeEvent);
    h.event({ seq: 8, kind: 'attr', ino: 7 } as ChangeEvent);
    expect(calls).toEqual(['inode 7 -1 0', 'inode 7 0 0', 'inode 7 -1 0']);
    c.close();
  });

  it('remembers which inode each dentry handed out names, through our renames and unlinks and others\' changes', () => {
    const feed = fakeFeed();
    const { n, calls } = recordingNotifier();
    const c = new Coherence(feed.meta, 1, opts, { onData: () => undefined, onReset: () => undefined, knownInodes: () => [] });
    c.start(n);
    const b = (s: string): Buffer => Buffer.from(s);
    c.noteDentry(1, b('a'), 10);
    c.noteDentry(1, b('b'), 11);
    c.noteDentry(1, b('neg'), 0);
    expect([c.guessIno(1, b('a')), c.guessIno(1, b('b')), c.guessIno(1, b('neg')), c.guessIno(2, b('a'))]).toEqual([10, 11, undefined, undefined]);
    c.noteDentry(1, b('neg'), 12); // created since
    expect(c.guessIno(1, b('neg'))).toBe(12);
    c.renamed(1, b('a'), 2, b('x'), false); // a over nothing
    expect([c.guessIno(1, b('a')), c.guessIno(2, b('x'))]).toEqual([undefined, 10]);
    c.renamed(1, b('b'), 2, b('x'), false); // b over x: x now names 11
    expect([c.guessIno(1, b('b')), c.guessIno(2, b('x'))]).toEqual([undefined, 11]);
    c.renamed(1, b('neg'), 2, b('x'), true); // exchange
    expect([c.guessIno(1, b('neg')), c.guessIno(2, b('x'))]).toEqual([11, 12]);
    c.dropDentry(2, b('x')); // our unlink
    expect(c.guessIno(2, b('x'))).toBeUndefined();
    // Another client's change of a name: the kernel is told, and the name is no longer known.
    feed.last().h.event({ seq: 1, kind: 'entry', parent: 1, name: b('neg') } as ChangeEvent);
    expect(c.guessIno(1, b('neg'))).toBeUndefined();
    expect(calls).toEqual(['entry 1 neg']);
    c.close();
  });

  it('a reset event invalidates everything', () => {
    const feed = fakeFeed();
    const { n, calls } = recordingNotifier();
    const c = new Coherence(feed.meta, 1, opts, { onData: () => undefined, onReset: () => undefined, knownInodes: () => [3] });
    c.start(n);
    feed.last().h.event({ seq: 9, kind: 'reset' } as ChangeEvent);
    expect(calls).toEqual(['inode 3 0 0']);
    c.close();
  });
});
