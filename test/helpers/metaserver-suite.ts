// The namespace semantics suite: POSIX rules of every MetaService op, each case asserting the exact
// result or errno. Runs against any MetaService (in-process Namespace, MetaClient over gRPC, and
// the etcd engine) through a factory; every case gets a fresh file system.
import {
  Attr, ChangeEvent, MetaService, RENAME_EXCHANGE, RENAME_NOREPLACE, ROOT_INO, XATTR_CREATE, XATTR_REPLACE,
} from '../../src/metaserver/api';
import { toErrno, errnoName } from '../../src/common/errno';

export interface SuiteTarget {
  readonly ms: MetaService;
  /** Creates a fresh, empty file system and returns its id. */
  newFs(opts?: { chunkSize?: number }): Promise<number>;
  close(): Promise<void>;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFIFO = 0o010000;
const S_IFSOCK = 0o140000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const C = { uid: 1000, gid: 1001 };
const b = (s: string): Buffer => Buffer.from(s);

/** The errno name a promise rejects with ('OK' if it resolves). */
export async function errOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    return errnoName(toErrno(err));
  }
}

const later = (a: { sec: number; nsec: number }, b0: { sec: number; nsec: number }) => a.sec > b0.sec || (a.sec === b0.sec && a.nsec > b0.nsec);
const tick = () => new Promise((r) => setTimeout(r, 2));

export function namespaceSuite(title: string, factory: () => Promise<SuiteTarget>): void {
  describe(title, () => {
    let t: SuiteTarget;
    let ms: MetaService;
    let fs: number;
    beforeAll(async () => {
      t = await factory();
      ms = t.ms;
    });
    afterAll(async () => {
      await t?.close();
    });
    beforeEach(async () => {
      fs = await t.newFs();
    });

    const file = (name: string, parent = ROOT_INO, mode = 0o644) => ms.mknod(fs, parent, b(name), S_IFREG | mode, 0, C);
    const dir = (name: string, parent = ROOT_INO) => ms.mkdir(fs, parent, b(name), 0o755, C);
    const names = async (ino = ROOT_INO) => (await ms.readdir(fs, ino, 0, 1000, false)).entries.map((e) => e.name.toString()).sort();
    const attr = (ino: number) => ms.getattr(fs, ino);

    describe('names', () => {
      it('lookup of a missing name is ENOENT', async () => {
        expect(await errOf(ms.lookup(fs, ROOT_INO, b('nope')))).toBe('ENOENT');
      });
      it('empty name is EINVAL', async () => {
        expect(await errOf(ms.mknod(fs, ROOT_INO, b(''), S_IFREG | 0o644, 0, C))).toBe('EINVAL');
      });
      it("'.' and '..' are EINVAL", async () => {
        expect(await errOf(ms.mkdir(fs, ROOT_INO, b('.'), 0o755, C))).toBe('EINVAL');
        expect(await errOf(ms.mknod(fs, ROOT_INO, b('..'), S_IFREG, 0, C))).toBe('EINVAL');
      });
      it("a name containing '/' is EINVAL", async () => {
        expect(await errOf(file('a/b'))).toBe('EINVAL');
      });
      it('a name containing NUL is EINVAL', async () => {
        expect(await errOf(ms.mknod(fs, ROOT_INO, Buffer.from([0x61, 0, 0x62]), S_IFREG, 0, C))).toBe('EINVAL');
      });
      it('255 bytes is fine, 256 is ENAMETOOLONG', async () => {
        expect((await file('x'.repeat(255))).nlink).toBe(1);
        expect(await errOf(file('y'.repeat(256)))).toBe('ENAMETOOLONG');
      });
      it('names are bytes: a non-UTF-8 name round-trips through lookup and readdir', async () => {
        const name = Buffer.from([0xff, 0xfe, 0x41]);
        const a = await ms.mknod(fs, ROOT_INO, name, S_IFREG | 0o600, 0, C);
        expect((await ms.lookup(fs, ROOT_INO, name)).ino).toBe(a.ino);
        const { entries } = await ms.readdir(fs, ROOT_INO, 0, 10, false);
        expect(entries.map((e) => e.name.toString('hex'))).toEqual(['fffe41']);
      });
      it('an unknown file system is ENOENT', async () => {
        expect(await errOf(ms.getattr(987654, ROOT_INO))).toBe('ENOENT');
      });
    });

    describe('mknod and mkdir', () => {
      it('creates a regular file with the caller ids and updates the parent times', async () => {
        const before = await attr(ROOT_INO);
        await tick();
        const a = await file('f', ROOT_INO, 0o640);
        expect(a).toMatchObject({ mode: S_IFREG | 0o640, nlink: 1, uid: 1000, gid: 1001, size: 0, rdev: 0 });
        const after = await attr(ROOT_INO);
        expect(later(after.mtime, before.mtime)).toBe(true);
        expect(later(after.ctime, before.ctime)).toBe(true);
        expect(after.nlink).toBe(2);
        expect(await ms.lookup(fs, ROOT_INO, b('f'))).toEqual(a);
      });
      it('an existing name is EEXIST', async () => {
        await file('f');
        expect(await errOf(file('f'))).toBe('EEXIST');
        expect(await errOf(dir('f'))).toBe('EEXIST');
      });
      it('makes fifos and sockets', async () => {
        expect((await ms.mknod(fs, ROOT_INO, b('p'), S_IFIFO | 0o600, 0, C)).mode).toBe(S_IFIFO | 0o600);
        expect((await ms.mknod(fs, ROOT_INO, b('s'), S_IFSOCK | 0o600, 0, C)).mode).toBe(S_IFSOCK | 0o600);
      });
      it('keeps rdev of character and block devices', async () => {
        expect(await ms.mknod(fs, ROOT_INO, b('c'), S_IFCHR | 0o600, 0x0103, C)).toMatchObject({ mode: S_IFCHR | 0o600, rdev: 0x0103 });
        expect(await ms.mknod(fs, ROOT_INO, b('k'), S_IFBLK | 0o600, 0x0801, C)).toMatchObject({ mode: S_IFBLK | 0o600, rdev: 0x0801 });
      });
      it('a mode without a type makes a regular file; rdev is ignored for it', async () => {
        expect(await ms.mknod(fs, ROOT_INO, b('r'), 0o644, 77, C)).toMatchObject({ mode: S_IFREG | 0o644, rdev: 0 });
      });
      it('mknod of a directory or symlink type is EINVAL', async () => {
        expect(await errOf(ms.mknod(fs, ROOT_INO, b('d'), S_IFDIR | 0o755, 0, C))).toBe('EINVAL');
        expect(await errOf(ms.mknod(fs, ROOT_INO, b('l'), S_IFLNK | 0o777, 0, C))).toBe('EINVAL');
      });
      it('a parent that is a file is ENOTDIR; a missing parent is ENOENT', async () => {
        const f = await file('f');
        expect(await errOf(file('x', f.ino))).toBe('ENOTDIR');
        expect(await errOf(file('x', 99999))).toBe('ENOENT');
        expect(await errOf(ms.lookup(fs, f.ino, b('x')))).toBe('ENOTDIR');
      });
      it('mkdir: nlink 2, and the parent gains a link', async () => {
        const d = await dir('d');
        expect(d).toMatchObject({ mode: S_IFDIR | 0o755, nlink: 2, uid: 1000 });
        expect((await attr(ROOT_INO)).nlink).toBe(3);
        await dir('e', d.ino);
        expect((await attr(d.ino)).nlink).toBe(3);
      });
      it('getattr of a missing inode is ENOENT', async () => {
        expect(await errOf(attr(424242))).toBe('ENOENT');
      });
      it('inode numbers are never reused', async () => {
        const a = await file('a');
        await ms.unlink(fs, ROOT_INO, b('a'), C);
        const c = await file('a');
        expect(c.ino).not.toBe(a.ino);
      });
    });

    describe('symlinks', () => {
      it('symlink and readlink round-trip; size is the target length', async () => {
        const l = await ms.symlink(fs, ROOT_INO, b('l'), b('../some/where'), C);
        expect(l).toMatchObject({ mode: S_IFLNK | 0o777, size: 13, nlink: 1 });
        expect((await ms.readlink(fs, l.ino)).toString()).toBe('../some/where');
      });
      it('readlink of a regular file is EINVAL', async () => {
        expect(await errOf(ms.readlink(fs, (await file('f')).ino))).toBe('EINVAL');
      });
      it('an empty target is ENOENT, a 4096-byte one ENAMETOOLONG', async () => {
        expect(await errOf(ms.symlink(fs, ROOT_INO, b('l'), b(''), C))).toBe('ENOENT');
        expect(await errOf(ms.symlink(fs, ROOT_INO, b('l'), b('t'.repeat(4096)), C))).toBe('ENAMETOOLONG');
        expect((await ms.symlink(fs, ROOT_INO, b('l'), b('t'.repeat(4095)), C)).size).toBe(4095);
      });
    });

    describe('link', () => {
      it('adds a name: nlink 2, ctime updated, both names the same inode', async () => {
        const f = await file('f');
        await tick();
        const l = await ms.link(fs, f.ino, ROOT_INO, b('g'));
        expect(l.nlink).toBe(2);
        expect(later(l.ctime, f.ctime)).toBe(true);
        expect((await ms.lookup(fs, ROOT_INO, b('g'))).ino).toBe(f.ino);
      });
      it('a directory is EPERM', async () => {
        const d = await dir('d');
        expect(await errOf(ms.link(fs, d.ino, ROOT_INO, b('e')))).toBe('EPERM');
      });
      it('an existing new name is EEXIST, a missing inode ENOENT', async () => {
        const f = await file('f');
        await file('g');
        expect(await errOf(ms.link(fs, f.ino, ROOT_INO, b('g')))).toBe('EEXIST');
        expect(await errOf(ms.link(fs, 555555, ROOT_INO, b('h')))).toBe('ENOENT');
      });
      it('unlinking one name keeps the other; nlink goes down', async () => {
        const f = await file('f');
        await ms.link(fs, f.ino, ROOT_INO, b('g'));
        expect(await ms.unlink(fs, ROOT_INO, b('f'), C)).toEqual({ ino: f.ino, nlink: 1, orphaned: false });
        expect((await ms.lookup(fs, ROOT_INO, b('g'))).nlink).toBe(1);
      });
    });

    describe('unlink and rmdir', () => {
      it('unlink removes the name and the inode', async () => {
        const f = await file('f');
        expect(await ms.unlink(fs, ROOT_INO, b('f'), C)).toEqual({ ino: f.ino, nlink: 0, orphaned: false });
        expect(await errOf(ms.lookup(fs, ROOT_INO, b('f')))).toBe('ENOENT');
        expect(await errOf(attr(f.ino))).toBe('ENOENT');
      });
      it('unlink of a missing name is ENOENT; of a directory EISDIR', async () => {
        expect(await errOf(ms.unlink(fs, ROOT_INO, b('f'), C))).toBe('ENOENT');
        await dir('d');
        expect(await errOf(ms.unlink(fs, ROOT_INO, b('d'), C))).toBe('EISDIR');
      });
      it('unlink updates the parent mtime and ctime', async () => {
        await file('f');
        const before = await attr(ROOT_INO);
        await tick();
        await ms.unlink(fs, ROOT_INO, b('f'), C);
        const after = await attr(ROOT_INO);
        expect(later(after.mtime, before.mtime) && later(after.ctime, before.ctime)).toBe(true);
      });
      it('rmdir of an empty directory gives the parent its link back', async () => {
        const d = await dir('d');
        await ms.rmdir(fs, ROOT_INO, b('d'));
        expect((await attr(ROOT_INO)).nlink).toBe(2);
        expect(await errOf(attr(d.ino))).toBe('ENOENT');
      });
      it('rmdir of a non-empty directory is ENOTEMPTY', async () => {
        const d = await dir('d');
        await file('f', d.ino);
        expect(await errOf(ms.rmdir(fs, ROOT_INO, b('d')))).toBe('ENOTEMPTY');
      });
      it('rmdir of a file is ENOTDIR, of a missing name ENOENT', async () => {
        await file('f');
        expect(await errOf(ms.rmdir(fs, ROOT_INO, b('f')))).toBe('ENOTDIR');
        expect(await errOf(ms.rmdir(fs, ROOT_INO, b('g')))).toBe('ENOENT');
      });
      it('no entries can be created in a removed directory', async () => {
        const d = await dir('d');
        await ms.rmdir(fs, ROOT_INO, b('d'));
        expect(await errOf(file('x', d.ino))).toBe('ENOENT');
      });
    });

    describe('rename', () => {
      it('renames a file within a directory', async () => {
        const f = await file('a');
        await ms.rename(fs, ROOT_INO, b('a'), ROOT_INO, b('b'), 0, C);
        expect(await names()).toEqual(['b']);
        expect((await ms.lookup(fs, ROOT_INO, b('b'))).ino).toBe(f.ino);
      });
      it('moves a file across directories and updates both parents and the file ctime', async () => {
        const d = await dir('d');
        const f = await file('a');
        const rootBefore = await attr(ROOT_INO);
        await tick();
        await ms.rename(fs, ROOT_INO, b('a'), d.ino, b('a2'), 0, C);
        expect(await names()).toEqual(['d']);
        expect(await names(d.ino)).toEqual(['a2']);
        expect(later((await attr(ROOT_INO)).mtime, rootBefore.mtime)).toBe(true);
        expect(later((await attr(d.ino)).mtime, d.mtime)).toBe(true);
        expect(later((await attr(f.ino)).ctime, f.ctime)).toBe(true);
        expect((await attr(ROOT_INO)).nlink).toBe(3);
      });
      it('a file over a file replaces it; the replaced inode is gone', async () => {
        const a = await file('a');
        const c = await file('c');
        await ms.rename(fs, ROOT_INO, b('a'), ROOT_INO, b('c'), 0, C);
        expect((await ms.lookup(fs, ROOT_INO, b('c'))).ino).toBe(a.ino);
        expect(await errOf(attr(c.ino))).toBe('ENOENT');
        expect(await names()).toEqual(['c']);
      });
      it('a file over a hard-linked file drops one link of it', async () => {
        await file('a');
        const c = await file('c');
        await ms.link(fs, c.ino, ROOT_INO, b('c2'));
        await ms.rename(fs, ROOT_INO, b('a'), ROOT_INO, b('c'), 0, C);
        expect((await attr(c.ino)).nlink).toBe(1);
      });
      it('a directory over an empty directory: nlink counts stay right', async () => {
        const d = await dir('d');
        const e = await dir('e');
        expect((await attr(ROOT_INO)).nlink).toBe(4);
        await ms.rename(fs, ROOT_INO, b('d'), ROOT_INO, b('e'), 0, C);
        expect((await ms.lookup(fs, ROOT_INO, b('e'))).ino).toBe(d.ino);
        expect(await errOf(attr(e.ino))).toBe('ENOENT');
        expect((await attr(ROOT_INO)).nlink).toBe(3);
      });
      it('a directory over a non-empty directory is ENOTEMPTY', async () => {
        await dir('d');
        const e = await dir('e');
        await file('x', e.ino);
        expect(await errOf(ms.rename(fs, ROOT_INO, b('d'), ROOT_INO, b('e'), 0, C))).toBe('ENOTEMPTY');
      });
      it('a directory over a file is ENOTDIR; a file over a directory EISDIR', async () => {
        await dir('d');
        await file('f');
        expect(await errOf(ms.rename(fs, ROOT_INO, b('d'), ROOT_INO, b('f'), 0, C))).toBe('ENOTDIR');
        expect(await errOf(ms.rename(fs, ROOT_INO, b('f'), ROOT_INO, b('d'), 0, C))).toBe('EISDIR');
      });
      it('moving a directory into itself or its subtree is EINVAL', async () => {
        const d = await dir('d');
        const e = await dir('e', d.ino);
        const g = await dir('g', e.ino);
        expect(await errOf(ms.rename(fs, ROOT_INO, b('d'), d.ino, b('x'), 0, C))).toBe('EINVAL');
        expect(await errOf(ms.rename(fs, ROOT_INO, b('d'), g.ino, b('x'), 0, C))).toBe('EINVAL');
      });
      it('a directory moved down then its old sibling moved into it works, and the reverse is EINVAL', async () => {
        const a = await dir('a');
        const c = await dir('c');
        await ms.rename(fs, ROOT_INO, b('c'), a.ino, b('c'), 0, C);
        expect(await errOf(ms.rename(fs, ROOT_INO, b('a'), c.ino, b('a'), 0, C))).toBe('EINVAL');
      });
      it('two names of the same inode: rename does nothing', async () => {
        const f = await file('a');
        await ms.link(fs, f.ino, ROOT_INO, b('b'));
        await ms.rename(fs, ROOT_INO, b('a'), ROOT_INO, b('b'), 0, C);
        expect(await names()).toEqual(['a', 'b']);
        expect((await attr(f.ino)).nlink).toBe(2);
      });
      it('renaming a name to itself is a no-op', async () => {
        await file('a');
        await ms.rename(fs, ROOT_INO, b('a'), ROOT_INO, b('a'), 0, C);
        expect(await names()).toEqual(['a']);
      });
      it('a missing source is ENOENT; a missing target parent ENOENT', async () => {
        expect(await errOf(ms.rename(fs, ROOT_INO, b('a'), ROOT_INO, b('b'), 0, C))).toBe('ENOENT');
        await file('a');
        expect(await errOf(ms.rename(fs, ROOT_INO, b('a'), 777777, b('b'), 0, C))).toBe('ENOENT');
      });
      it("a directory moved to another parent fixes both parents' nlink", async () => {
        const p = await dir('p');
        const q = await dir('q');
        await dir('d', p.ino);
        expect((await attr(p.ino)).nlink).toBe(3);
        await ms.rename(fs, p.ino, b('d'), q.ino, b('d'), 0, C);
        expect((await attr(p.ino)).nlink).toBe(2);
        expect((await attr(q.ino)).nlink).toBe(3);
        // and p can now be removed, q cannot
        await ms.rmdir(fs, ROOT_INO, b('p'));
        expect(await errOf(ms.rmdir(fs, ROOT_INO, b('q')))).toBe('ENOTEMPTY');
      });
      it('RENAME_NOREPLACE: EEXIST when the target exists, renames when it does not', async () => {
        await file('a');
        await file('b');
        expect(await errOf(ms.rename(fs, ROOT_INO, b('a'), ROOT_INO, b('b'), RENAME_NOREPLACE, C))).toBe('EEXIST');
        await ms.rename(fs, ROOT_INO, b('a'), ROOT_INO, b('c'), RENAME_NOREPLACE, C);
        expect(await names()).toEqual(['b', 'c']);
      });
      it('RENAME_EXCHANGE swaps two names; a missing target is ENOENT', async () => {
        const a = await file('a');
        const c = await file('c');
        await ms.rename(fs, ROOT_INO, b('a'), ROOT_INO, b('c'), RENAME_EXCHANGE, C);
        expect((await ms.lookup(fs, ROOT_INO, b('a'))).ino).toBe(c.ino);
        expect((await ms.lookup(fs, ROOT_INO, b('c'))).ino).toBe(a.ino);
        expect(await errOf(ms.rename(fs, ROOT_INO, b('a'), ROOT_INO, b('zz'), RENAME_EXCHANGE, C))).toBe('ENOENT');
      });
      it('RENAME_EXCHANGE of a directory and a file across parents moves the directory link', async () => {
        const p = await dir('p');
        const q = await dir('q');
        const d = await dir('d', p.ino);
        const f = await file('f', q.ino);
        await ms.rename(fs, p.ino, b('d'), q.ino, b('f'), RENAME_EXCHANGE, C);
        expect((await ms.lookup(fs, q.ino, b('f'))).ino).toBe(d.ino);
        expect((await ms.lookup(fs, p.ino, b('d'))).ino).toBe(f.ino);
        expect((await attr(p.ino)).nlink).toBe(2);
        expect((await attr(q.ino)).nlink).toBe(3);
      });
      it('unknown or contradictory flags are EINVAL', async () => {
        await file('a');
        expect(await errOf(ms.rename(fs, ROOT_INO, b('a'), ROOT_INO, b('b'), 8, C))).toBe('EINVAL');
        expect(await errOf(ms.rename(fs, ROOT_INO, b('a'), ROOT_INO, b('b'), RENAME_EXCHANGE | RENAME_NOREPLACE, C))).toBe('EINVAL');
      });
    });

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
  });
}
