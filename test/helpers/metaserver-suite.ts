// The namespace semantics suite: POSIX rules of every MetaService op, each case asserting the exact
// result or errno. Runs against any MetaService (in-process Namespace, MetaClient over gRPC, and
// the etcd engine) through a factory; every case gets a fresh file system.
import { MetaService, RENAME_EXCHANGE, RENAME_NOREPLACE, ROOT_INO } from '../../src/metaserver/api';
import { moreCases } from './metaserver-suite-data';
import { b, C, errOf, later, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK, tick } from './metaserver-suite-util';

export { errOf };

export interface SuiteTarget {
  readonly ms: MetaService;
  /** Creates a fresh, empty file system and returns its id. */
  newFs(opts?: { chunkSize?: number }): Promise<number>;
  close(): Promise<void>;
}

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
      it('mknod of a directory type is EPERM, of a symlink type EINVAL (as Linux)', async () => {
        expect(await errOf(ms.mknod(fs, ROOT_INO, b('d'), S_IFDIR | 0o755, 0, C))).toBe('EPERM');
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
      it('unlink removes the name; the unheld inode waits out the unlink grace with nlink 0', async () => {
        const f = await file('f');
        expect(await ms.unlink(fs, ROOT_INO, b('f'), C)).toEqual({ ino: f.ino, nlink: 0, orphaned: false });
        expect(await errOf(ms.lookup(fs, ROOT_INO, b('f')))).toBe('ENOENT');
        // A client may hold it open without having registered yet; metaserver-gc tests the purge.
        expect((await attr(f.ino)).nlink).toBe(0);
      });
      it('unlink of a symlink or fifo removes the inode at once', async () => {
        const l = await ms.symlink(fs, ROOT_INO, b('l'), b('t'), C);
        const p = await ms.mknod(fs, ROOT_INO, b('p'), S_IFIFO | 0o644, 0, C);
        await ms.unlink(fs, ROOT_INO, b('l'), C);
        await ms.unlink(fs, ROOT_INO, b('p'), C);
        expect([await errOf(attr(l.ino)), await errOf(attr(p.ino))]).toEqual(['ENOENT', 'ENOENT']);
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
        const gone = await ms.rmdir(fs, ROOT_INO, b('d'));
        expect((await attr(ROOT_INO)).nlink).toBe(2);
        expect(await errOf(attr(d.ino))).toBe('ENOENT');
        // Its last attributes, for a client that still holds it (fstat of an open fd, a cwd).
        expect(gone && [gone.ino, gone.mode, gone.uid, gone.nlink, gone.size]).toEqual([d.ino, d.mode, d.uid, 0, 0]);
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
      it('a file over a file replaces it; the replaced inode is unlinked (nlink 0, purged after the unlink grace)', async () => {
        const a = await file('a');
        const c = await file('c');
        await ms.rename(fs, ROOT_INO, b('a'), ROOT_INO, b('c'), 0, C);
        expect((await ms.lookup(fs, ROOT_INO, b('c'))).ino).toBe(a.ino);
        expect((await attr(c.ino)).nlink).toBe(0);
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
        const gone = await ms.rename(fs, ROOT_INO, b('d'), ROOT_INO, b('e'), 0, C);
        expect((await ms.lookup(fs, ROOT_INO, b('e'))).ino).toBe(d.ino);
        expect(await errOf(attr(e.ino))).toBe('ENOENT');
        expect((await attr(ROOT_INO)).nlink).toBe(3);
        // The replaced directory's last attributes, as rmdir answers them.
        expect(gone && [gone.ino, gone.mode, gone.nlink, gone.size]).toEqual([e.ino, e.mode, 0, 0]);
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

    moreCases(() => ({ ms, fs }));
  });
}
