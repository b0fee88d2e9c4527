// The namespace semantics suite, part 2: readdir, setattr, xattrs, data maps, orphans, the change
// feed, statfs and concurrency. Called by namespaceSuite (metaserver-suite.ts) inside its describe.
import { Attr, ChangeEvent, MetaService, ROOT_INO, XATTR_CREATE, XATTR_REPLACE } from '../../src/metaserver/api';
import { b, C, errOf, later, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK, tick } from './metaserver-suite-util';

export function moreCases(get: () => { ms: MetaService; fs: number }): void {
  let ms: MetaService;
  let fs: number;
  beforeEach(() => {
    ({ ms, fs } = get());
  });
  const file = (name: string, parent = ROOT_INO, mode = 0o644) => ms.mknod(fs, parent, b(name), S_IFREG | mode, 0, C);
  const dir = (name: string, parent = ROOT_INO) => ms.mkdir(fs, parent, b(name), 0o755, C);
  const attr = (ino: number) => ms.getattr(fs, ino);

  describe('readdir', () => {
    it('lists entries with their types and inode numbers, then eof', async () => {
      const d = await dir('d');
      const f = await file('f');
      const l = await ms.symlink(fs, ROOT_INO, b('l'), b('f'), C);
      const r = await ms.readdir(fs, ROOT_INO, 0, 100, false);
      expect(r.eof).toBe(true);
      expect(r.entries.map((e) => [e.name.toString(), e.ino, e.type])).toEqual([
        ['d', d.ino, S_IFDIR], ['f', f.ino, S_IFREG], ['l', l.ino, S_IFLNK],
      ]);
      expect(r.entries.every((e) => e.attr === undefined)).toBe(true);
    });
    it('pages with limit and resumes after a cookie', async () => {
      for (let i = 0; i < 7; i++) await file(`f${i}`);
      const p1 = await ms.readdir(fs, ROOT_INO, 0, 3, false);
      expect(p1.eof).toBe(false);
      const p2 = await ms.readdir(fs, ROOT_INO, p1.entries[2].cookie, 3, false);
      const p3 = await ms.readdir(fs, ROOT_INO, p2.entries[2].cookie, 3, false);
      expect(p3.eof).toBe(true);
      expect([...p1.entries, ...p2.entries, ...p3.entries].map((e) => e.name.toString())).toEqual(['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6']);
    });
    it('cookies are stable while the directory changes: unchanged entries come exactly once', async () => {
      for (let i = 0; i < 10; i++) await file(`f${i}`);
      const p1 = await ms.readdir(fs, ROOT_INO, 0, 4, false);
      // Remove some seen and unseen entries, add new ones, rename one.
      await ms.unlink(fs, ROOT_INO, b('f0'), C);
      await ms.unlink(fs, ROOT_INO, b('f5'), C);
      await file('n1');
      await ms.rename(fs, ROOT_INO, b('f1'), ROOT_INO, b('r1'), 0, C);
      const rest: string[] = [];
      let cookie = p1.entries[p1.entries.length - 1].cookie;
      for (;;) {
        const p = await ms.readdir(fs, ROOT_INO, cookie, 2, false);
        rest.push(...p.entries.map((e) => e.name.toString()));
        if (p.eof) break;
        cookie = p.entries[p.entries.length - 1].cookie;
      }
      const seen = [...p1.entries.map((e) => e.name.toString()), ...rest];
      for (const n of ['f2', 'f3', 'f4', 'f6', 'f7', 'f8', 'f9']) expect(seen.filter((s) => s === n)).toHaveLength(1);
      expect(seen).not.toContain('f5');
    });
    it('plus returns each entry with its attributes', async () => {
      const f = await file('f', ROOT_INO, 0o600);
      const r = await ms.readdir(fs, ROOT_INO, 0, 10, true);
      expect(r.entries[0].attr).toEqual(f);
    });
    it('readdir of a file is ENOTDIR; of a missing inode ENOENT', async () => {
      const f = await file('f');
      expect(await errOf(ms.readdir(fs, f.ino, 0, 10, false))).toBe('ENOTDIR');
      expect(await errOf(ms.readdir(fs, 313131, 0, 10, false))).toBe('ENOENT');
    });
  });

  describe('setattr', () => {
    it('chmod changes permission bits only, keeps the type, updates ctime not mtime', async () => {
      const f = await file('f');
      await tick();
      const a = await ms.setattr(fs, f.ino, { mode: 0o4711 }, C);
      expect(a.mode).toBe(S_IFREG | 0o4711);
      expect(a.mtime).toEqual(f.mtime);
      expect(later(a.ctime, f.ctime)).toBe(true);
      expect(a.uid).toBe(1000);
    });
    it('chmod with type bits in the argument still keeps the file type', async () => {
      const d = await dir('d');
      expect((await ms.setattr(fs, d.ino, { mode: S_IFREG | 0o700 }, C)).mode).toBe(S_IFDIR | 0o700);
    });
    it('chown sets uid and gid', async () => {
      const f = await file('f');
      expect(await ms.setattr(fs, f.ino, { uid: 5, gid: 6 }, C)).toMatchObject({ uid: 5, gid: 6, mode: S_IFREG | 0o644 });
    });
    it('truncate up sets the size, bumps dataVersion and mtime', async () => {
      const f = await file('f');
      await tick();
      const a = await ms.setattr(fs, f.ino, { size: 10_000 }, C);
      expect(a.size).toBe(10_000);
      expect(a.dataVersion).toBe(f.dataVersion + 1);
      expect(later(a.mtime, f.mtime)).toBe(true);
    });
    it('truncate down drops chunks past the size and trims the last one', async () => {
      const f = await file('f');
      const cs = (await ms.getDataMap(fs, f.ino)).chunkSize;
      const v = await ms.allocChunkVersions(fs, 3);
      await ms.commitData(fs, f.ino, { chunks: [{ index: 0, version: v, length: cs }, { index: 1, version: v + 1, length: cs }, { index: 2, version: v + 2, length: 100 }], size: 2 * cs + 100, touch: true });
      await ms.setattr(fs, f.ino, { size: cs + 10 }, C);
      const m = await ms.getDataMap(fs, f.ino);
      expect(m.size).toBe(cs + 10);
      expect(m.chunks).toEqual([{ index: 0, version: v, length: cs }, { index: 1, version: v + 1, length: 10 }]);
      await ms.setattr(fs, f.ino, { size: 0 }, C);
      expect((await ms.getDataMap(fs, f.ino)).chunks).toEqual([]);
    });
    it('truncate of a directory is EISDIR, of a symlink EINVAL', async () => {
      const d = await dir('d');
      const l = await ms.symlink(fs, ROOT_INO, b('l'), b('d'), C);
      expect(await errOf(ms.setattr(fs, d.ino, { size: 0 }, C))).toBe('EISDIR');
      expect(await errOf(ms.setattr(fs, l.ino, { size: 0 }, C))).toBe('EINVAL');
    });
    it('sets explicit atime/mtime and "now"', async () => {
      const f = await file('f');
      const a = await ms.setattr(fs, f.ino, { atime: { sec: 1000, nsec: 5 }, mtime: { sec: 2000, nsec: 7 } }, C);
      expect(a.atime).toEqual({ sec: 1000, nsec: 5 });
      expect(a.mtime).toEqual({ sec: 2000, nsec: 7 });
      const n = await ms.setattr(fs, f.ino, { mtime: 'now' }, C);
      expect(n.mtime.sec).toBeGreaterThan(1_700_000_000);
      expect(n.atime).toEqual({ sec: 1000, nsec: 5 });
    });
    it('setattr of a missing inode is ENOENT', async () => {
      expect(await errOf(ms.setattr(fs, 818181, { mode: 0o600 }, C))).toBe('ENOENT');
    });
  });

  describe('xattrs', () => {
    it('set, get, list and remove', async () => {
      const f = await file('f');
      await ms.setxattr(fs, f.ino, 'user.a', b('1'), 0);
      await ms.setxattr(fs, f.ino, 'user.b', Buffer.alloc(0), 0);
      expect((await ms.getxattr(fs, f.ino, 'user.a')).toString()).toBe('1');
      expect((await ms.getxattr(fs, f.ino, 'user.b')).length).toBe(0);
      expect((await ms.listxattr(fs, f.ino)).sort()).toEqual(['user.a', 'user.b']);
      await ms.removexattr(fs, f.ino, 'user.a');
      expect(await ms.listxattr(fs, f.ino)).toEqual(['user.b']);
    });
    it('XATTR_CREATE on an existing name is EEXIST', async () => {
      const f = await file('f');
      await ms.setxattr(fs, f.ino, 'user.a', b('1'), XATTR_CREATE);
      expect(await errOf(ms.setxattr(fs, f.ino, 'user.a', b('2'), XATTR_CREATE))).toBe('EEXIST');
    });
    it('XATTR_REPLACE on a missing name is ENODATA, on an existing one replaces', async () => {
      const f = await file('f');
      expect(await errOf(ms.setxattr(fs, f.ino, 'user.a', b('1'), XATTR_REPLACE))).toBe('ENODATA');
      await ms.setxattr(fs, f.ino, 'user.a', b('1'), 0);
      await ms.setxattr(fs, f.ino, 'user.a', b('2'), XATTR_REPLACE);
      expect((await ms.getxattr(fs, f.ino, 'user.a')).toString()).toBe('2');
    });
    it('get or remove of a missing name is ENODATA', async () => {
      const f = await file('f');
      expect(await errOf(ms.getxattr(fs, f.ino, 'user.x'))).toBe('ENODATA');
      expect(await errOf(ms.removexattr(fs, f.ino, 'user.x'))).toBe('ENODATA');
    });
    it('a value of 64 KiB is fine, one byte more is E2BIG', async () => {
      const f = await file('f');
      await ms.setxattr(fs, f.ino, 'user.big', Buffer.alloc(65536, 1), 0);
      expect((await ms.getxattr(fs, f.ino, 'user.big')).length).toBe(65536);
      expect(await errOf(ms.setxattr(fs, f.ino, 'user.big', Buffer.alloc(65537), 0))).toBe('E2BIG');
    });
    it('an empty or longer-than-255-byte name is ERANGE', async () => {
      const f = await file('f');
      expect(await errOf(ms.setxattr(fs, f.ino, '', b('1'), 0))).toBe('ERANGE');
      expect(await errOf(ms.setxattr(fs, f.ino, 'user.' + 'n'.repeat(251), b('1'), 0))).toBe('ERANGE');
      await ms.setxattr(fs, f.ino, 'user.' + 'n'.repeat(250), b('1'), 0);
    });
    it('setxattr changes ctime; xattrs of a missing inode are ENOENT', async () => {
      const f = await file('f');
      await tick();
      await ms.setxattr(fs, f.ino, 'user.a', b('1'), 0);
      expect(later((await attr(f.ino)).ctime, f.ctime)).toBe(true);
      expect(await errOf(ms.listxattr(fs, 717171))).toBe('ENOENT');
    });
    it('directories have xattrs too', async () => {
      const d = await dir('d');
      await ms.setxattr(fs, d.ino, 'trusted.t', b('x'), 0);
      expect(await ms.listxattr(fs, d.ino)).toEqual(['trusted.t']);
    });
  });

  describe('data maps', () => {
    it('commitData replaces chunks, sets size, bumps dataVersion and mtime', async () => {
      const f = await file('f');
      const v = await ms.allocChunkVersions(fs, 2);
      await tick();
      const a = await ms.commitData(fs, f.ino, { chunks: [{ index: 0, version: v, length: 5 }], size: 5, touch: true });
      expect(a).toMatchObject({ size: 5, dataVersion: 1 });
      expect(later(a.mtime, f.mtime)).toBe(true);
      const b2 = await ms.commitData(fs, f.ino, { chunks: [{ index: 0, version: v + 1, length: 9 }], size: 9, touch: false });
      expect(b2.dataVersion).toBe(2);
      expect(b2.mtime).toEqual(a.mtime);
      expect(await ms.getDataMap(fs, f.ino)).toMatchObject({ ino: f.ino, size: 9, dataVersion: 2, chunks: [{ index: 0, version: v + 1, length: 9 }] });
    });
    it('blocks count what the chunks hold in 4 KiB units: holes nothing, replacements and truncates adjust it', async () => {
      const f = await file('f');
      expect(f.blocks).toBe(0);
      const cs = (await ms.getDataMap(fs, f.ino)).chunkSize;
      const v = await ms.allocChunkVersions(fs, 4);
      // Chunk 0 holds 5000 bytes (2 blocks of 4 KiB), chunk 3 a whole chunk; 1 and 2 are holes.
      let a = await ms.commitData(fs, f.ino, { chunks: [{ index: 0, version: v, length: 5000 }, { index: 3, version: v + 1, length: cs }], size: 4 * cs, touch: true });
      expect(a.blocks).toBe((8192 + cs) / 512);
      a = await ms.commitData(fs, f.ino, { chunks: [{ index: 3, version: v + 2, length: 0 }], size: 4 * cs, touch: true });
      expect(a.blocks).toBe(16);
      a = await ms.setattr(fs, f.ino, { size: 100 }, C);
      expect(a.blocks).toBe(8);
      expect((await attr(f.ino)).blocks).toBe(8);
      const d = await dir('d');
      expect(d.blocks).toBeUndefined();
    });
    it('a setgid directory gives new inodes its group; new subdirectories stay setgid', async () => {
      const d = await dir('g');
      await ms.setattr(fs, d.ino, { mode: 0o2775, gid: 4242 }, C);
      const f = await file('f', d.ino);
      const sub = await dir('sub', d.ino);
      const l = await ms.symlink(fs, d.ino, b('l'), b('f'), C);
      expect([f.gid, sub.gid, l.gid]).toEqual([4242, 4242, 4242]);
      expect([f.mode & 0o2000, sub.mode & 0o7777]).toEqual([0, 0o2755]);
      const plain = await dir('plain');
      expect((await file('f', plain.ino)).gid).toBe(C.gid);
    });
    it('allocChunkVersions hands out unique increasing ranges', async () => {
      const a = await ms.allocChunkVersions(fs, 10);
      const c = await ms.allocChunkVersions(fs, 1);
      expect(a).toBeGreaterThan(0);
      expect(c).toBeGreaterThanOrEqual(a + 10);
      expect(await errOf(ms.allocChunkVersions(fs, 0))).toBe('EINVAL');
    });
    it('commitData on a directory is EISDIR; a chunk longer than the chunk size EINVAL', async () => {
      const d = await dir('d');
      expect(await errOf(ms.commitData(fs, d.ino, { chunks: [], size: 0, touch: true }))).toBe('EISDIR');
      const f = await file('f');
      const cs = (await ms.getDataMap(fs, f.ino)).chunkSize;
      expect(await errOf(ms.commitData(fs, f.ino, { chunks: [{ index: 0, version: 1, length: cs + 1 }], size: 1, touch: true }))).toBe('EINVAL');
    });
    it('getDataMap of a directory is EISDIR, of a missing inode ENOENT', async () => {
      const d = await dir('d');
      expect(await errOf(ms.getDataMap(fs, d.ino))).toBe('EISDIR');
      expect(await errOf(ms.getDataMap(fs, 626262))).toBe('ENOENT');
    });
  });

  describe('open files and orphans', () => {
    it('an unlinked file held open stays (nlink 0) until released', async () => {
      const f = await file('f');
      await ms.openInode(fs, f.ino, 's1');
      expect(await ms.unlink(fs, ROOT_INO, b('f'), C)).toEqual({ ino: f.ino, nlink: 0, orphaned: true });
      expect(await errOf(ms.lookup(fs, ROOT_INO, b('f')))).toBe('ENOENT');
      expect((await attr(f.ino)).nlink).toBe(0);
      expect((await ms.commitData(fs, f.ino, { chunks: [], size: 3, touch: true })).size).toBe(3);
      await ms.releaseInode(fs, f.ino, 's1');
      expect(await errOf(attr(f.ino))).toBe('ENOENT');
    });
    it('a file opened twice by one session survives the first release', async () => {
      const f = await file('f');
      await ms.openInode(fs, f.ino, 's1');
      await ms.openInode(fs, f.ino, 's1');
      await ms.unlink(fs, ROOT_INO, b('f'), C);
      await ms.releaseInode(fs, f.ino, 's1');
      expect((await attr(f.ino)).nlink).toBe(0);
      await ms.releaseInode(fs, f.ino, 's1');
      expect(await errOf(attr(f.ino))).toBe('ENOENT');
    });
    it('two sessions: the orphan goes with the last one', async () => {
      const f = await file('f');
      await ms.openInode(fs, f.ino, 'sa');
      await ms.openInode(fs, f.ino, 'sb');
      await ms.unlink(fs, ROOT_INO, b('f'), C);
      await ms.releaseInode(fs, f.ino, 'sa');
      expect((await attr(f.ino)).nlink).toBe(0);
      await ms.releaseInode(fs, f.ino, 'sb');
      expect(await errOf(attr(f.ino))).toBe('ENOENT');
    });
    it('expireSession releases everything the session held', async () => {
      const f = await file('f');
      const g = await file('g');
      const sid = `exp-${fs}`;
      await ms.openInode(fs, f.ino, sid);
      await ms.openInode(fs, g.ino, sid);
      await ms.unlink(fs, ROOT_INO, b('f'), C);
      expect(await ms.expireSession(sid)).toBe(2);
      expect(await errOf(attr(f.ino))).toBe('ENOENT');
      expect((await attr(g.ino)).nlink).toBe(1);
      expect(await ms.expireSession(sid)).toBe(0);
    });
    it('rename over an open file keeps it as an orphan', async () => {
      await file('a');
      const c = await file('c');
      await ms.openInode(fs, c.ino, 's1');
      await ms.rename(fs, ROOT_INO, b('a'), ROOT_INO, b('c'), 0, C);
      expect((await attr(c.ino)).nlink).toBe(0);
      await ms.releaseInode(fs, c.ino, 's1');
      expect(await errOf(attr(c.ino))).toBe('ENOENT');
    });
    it('opening a missing inode is ENOENT; releasing one not held is harmless', async () => {
      expect(await errOf(ms.openInode(fs, 515151, 's1'))).toBe('ENOENT');
      const f = await file('f');
      await ms.releaseInode(fs, f.ino, 'never-opened');
      expect((await attr(f.ino)).nlink).toBe(1);
    });
  });

  describe('change feed', () => {
    const collect = (fromSeq: number) => {
      const events: ChangeEvent[] = [];
      const errors: Error[] = [];
      const sub = ms.subscribe(fs, fromSeq, { event: (e) => events.push(e), error: (e) => errors.push(e) });
      return { events, errors, sub };
    };
    const waitFor = async (cond: () => boolean, what: string) => {
      for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
      if (!cond()) throw new Error(`timed out waiting for ${what}`);
    };
    it('a create publishes an entry event and the parent attr event, in increasing seq', async () => {
      const c = collect(0);
      try {
        await new Promise((r) => setTimeout(r, 50)); // stream established
        const f = await file('f');
        await waitFor(() => c.events.some((e) => e.kind === 'entry'), 'entry event');
        const entry = c.events.find((e) => e.kind === 'entry') as Extract<ChangeEvent, { kind: 'entry' }>;
        expect(entry.parent).toBe(ROOT_INO);
        expect(entry.name.toString()).toBe('f');
        await ms.commitData(fs, f.ino, { chunks: [], size: 1, touch: true });
        await waitFor(() => c.events.some((e) => e.kind === 'data'), 'data event');
        expect(c.events.find((e) => e.kind === 'data')).toMatchObject({ ino: f.ino, dataVersion: 1 });
        expect(c.events.some((e) => e.kind === 'attr' && e.ino === ROOT_INO)).toBe(true);
        const seqs = c.events.map((e) => e.seq);
        expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
        expect(new Set(seqs).size).toBe(seqs.length);
      } finally {
        c.sub.close();
      }
    });
    it('resubscribing from the last seq delivers what was missed, nothing older', async () => {
      const c = collect(0);
      let last = 0;
      try {
        await new Promise((r) => setTimeout(r, 50));
        await file('a');
        await waitFor(() => c.events.some((e) => e.kind === 'entry'), 'first entry');
        last = c.events[c.events.length - 1].seq;
      } finally {
        c.sub.close();
      }
      await file('b');
      const d = collect(last);
      try {
        await waitFor(() => d.events.some((e) => e.kind === 'entry'), 'missed entry');
        const entries = d.events.filter((e) => e.kind === 'entry') as Array<Extract<ChangeEvent, { kind: 'entry' }>>;
        expect(entries.map((e) => e.name.toString())).toEqual(['b']);
        expect(d.events.every((e) => e.seq > last)).toBe(true);
      } finally {
        d.sub.close();
      }
    });
    it('a seq older than the server remembers gets a reset', async () => {
      const c = collect(1);
      try {
        await waitFor(() => c.events.length > 0, 'reset');
        expect(c.events[0].kind).toBe('reset');
      } finally {
        c.sub.close();
      }
    });
  });

  describe('statfs', () => {
    it('reports block size, name length and free inodes', async () => {
      const s = await ms.statfs(fs);
      expect(s).toMatchObject({ bsize: 4096, namelen: 255, frsize: 4096 });
      expect(s.ffree).toBeGreaterThan(0);
      expect(s.ffree).toBeLessThanOrEqual(s.files);
      expect(s.bavail).toBeLessThanOrEqual(s.blocks);
    });
  });

  describe('concurrency', () => {
    it('concurrent creates in one directory all succeed with distinct inodes and cookies', async () => {
      const d = await dir('d');
      const made = await Promise.all(Array.from({ length: 50 }, (_, i) => file(`c${i}`, d.ino)));
      expect(new Set(made.map((a: Attr) => a.ino)).size).toBe(50);
      const r = await ms.readdir(fs, d.ino, 0, 100, false);
      expect(r.entries).toHaveLength(50);
      expect(new Set(r.entries.map((e) => e.cookie)).size).toBe(50);
    });
    it('concurrent creates of one name: exactly one wins, the rest are EEXIST', async () => {
      const res = await Promise.all(Array.from({ length: 10 }, () => errOf(file('same'))));
      expect(res.filter((r) => r === 'OK')).toHaveLength(1);
      expect(res.filter((r) => r === 'EEXIST')).toHaveLength(9);
    });
    it('concurrent mkdirs keep the parent nlink exact', async () => {
      await Promise.all(Array.from({ length: 20 }, (_, i) => dir(`d${i}`)));
      expect((await attr(ROOT_INO)).nlink).toBe(22);
    });
  });

  it('every file type reports its type in readdir', async () => {
    await ms.mknod(fs, ROOT_INO, b('p'), S_IFIFO | 0o600, 0, C);
    await ms.mknod(fs, ROOT_INO, b('s'), S_IFSOCK | 0o600, 0, C);
    const types = (await ms.readdir(fs, ROOT_INO, 0, 10, false)).entries.map((e) => e.type & S_IFMT);
    expect(types).toEqual([S_IFIFO, S_IFSOCK]);
  });
}
