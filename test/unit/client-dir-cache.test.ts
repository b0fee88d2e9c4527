// DirCache: which opendirs may let the kernel cache a listing, and when a cached listing must be
// dropped (a remote change now, and again at the last release of a handle open across it).
import { DirCache } from '../../src/fuse/dir-cache';
import { FOPEN_CACHE_DIR, FOPEN_KEEP_CACHE } from '../../src/fuse/protocol/raw-fs';

describe('DirCache', () => {
  const make = (): { dc: DirCache; sent: number[] } => {
    const sent: number[] = [];
    return { dc: new DirCache((ino) => sent.push(ino)), sent };
  };

  it('caches and keeps the cache only when allowed (change feed connected)', () => {
    const { dc } = make();
    expect(dc.open(5, true)).toBe(FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE);
    expect(dc.open(6, false)).toBe(0);
    expect([dc.has(5), dc.has(6)]).toEqual([true, false]);
  });

  it('a change in a directory nobody cached sends nothing', () => {
    const { dc, sent } = make();
    dc.changed(9);
    expect(sent).toEqual([]);
  });

  it('a change in a cached, closed directory invalidates once', () => {
    const { dc, sent } = make();
    dc.open(5, true);
    dc.release(5);
    dc.changed(5);
    expect(sent).toEqual([5]);
    dc.release(5); // a stray release does not invalidate again
    expect(sent).toEqual([5]);
  });

  it('a change while a handle is open invalidates now and again at the last release', () => {
    const { dc, sent } = make();
    dc.open(5, true);
    dc.open(5, true);
    dc.changed(5);
    expect(sent).toEqual([5]);
    dc.release(5);
    expect(sent).toEqual([5, 5]);
    dc.release(5);
    expect(sent).toEqual([5, 5, 5]);
    dc.open(5, true);
    dc.release(5); // no change since: nothing
    expect(sent).toEqual([5, 5, 5]);
  });

  it('a feed reset marks open handles stale (the caller invalidates every inode itself)', () => {
    const { dc, sent } = make();
    dc.open(5, true);
    dc.open(7, true);
    dc.release(7);
    dc.reset();
    expect(sent).toEqual([]);
    dc.release(5);
    expect(sent).toEqual([5]);
  });

  it('forget drops a closed directory, keeps an open one', () => {
    const { dc } = make();
    dc.open(5, true);
    dc.forget(5);
    expect(dc.has(5)).toBe(true);
    dc.release(5);
    dc.forget(5);
    expect(dc.has(5)).toBe(false);
  });
});
