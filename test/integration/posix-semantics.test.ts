// POSIX behaviour of a real Kurve mount, part 3: setgid directories and the privilege bits a write
// or chown clears, blocks actually allocated (st_blocks, du), and an open file's data surviving
// another client's unlink from the moment of the open. Each case asserts the exact result or errno.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { cleanupKurve, Daemon, kurveMount, kurveUp, py, sleep, waitFor } from '../helpers/kurve-mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

const MiB = 1024 * 1024;
const NOBODY = { uid: 65534, gid: 65534 };
const GROUP = 4242;

describeIf([whyNoFuse()], 'POSIX setgid, privilege bits, allocation and open-unlink on a Kurve mount', () => {
  let k: Daemon;
  let n = 0;
  const fresh = async (mode = 0o755): Promise<string> => {
    const d = path.join(k.mountpoint, `s${++n}`);
    await fsp.mkdir(d);
    await fsp.chmod(d, mode);
    return d;
  };
  /** A directory owned by root:GROUP with S_ISGID, writable by everyone. */
  const setgidDir = async (): Promise<string> => {
    const d = await fresh();
    await fsp.chown(d, 0, GROUP);
    await fsp.chmod(d, 0o2777);
    return d;
  };
  const J = JSON.stringify;
  const modeOf = async (p: string): Promise<number> => (await fsp.lstat(p)).mode & 0o7777;

  beforeAll(async () => {
    // A short unlink grace, so the open-unlink cases can wait past it.
    k = await kurveUp({ args: ['--no-bpf', '--allow-other', '--unlink-grace', '2s'] });
  });
  afterAll(async () => {
    await cleanupKurve();
  });

  describe('setgid directories', () => {
    it('a file created by root takes the directory\'s group, not the caller\'s', async () => {
      const d = await setgidDir();
      await fsp.writeFile(path.join(d, 'f'), '');
      expect((await fsp.stat(path.join(d, 'f'))).gid).toBe(GROUP);
    });
    it('a file created by a non-member takes the directory\'s group, owner stays the caller', async () => {
      const d = await setgidDir();
      const r = py(`p = ${J(path.join(d, 'f'))}; open(p, 'w').close(); st = os.stat(p); out([st.st_uid, st.st_gid])`, NOBODY);
      expect(r).toEqual([65534, GROUP]);
    });
    it('a new subdirectory takes the group and inherits S_ISGID', async () => {
      const d = await setgidDir();
      const r = py(`os.umask(0o022); p = ${J(path.join(d, 'sub'))}; os.mkdir(p, 0o777); st = os.stat(p); out([st.st_gid, oct(st.st_mode & 0o7777)])`, NOBODY);
      expect(r).toEqual([GROUP, '0o2755']);
    });
    it('inheritance carries on through nested subdirectories', async () => {
      const d = await setgidDir();
      await fsp.mkdir(path.join(d, 'a'));
      await fsp.mkdir(path.join(d, 'a', 'b'));
      await fsp.writeFile(path.join(d, 'a', 'b', 'f'), '');
      const b = await fsp.stat(path.join(d, 'a', 'b'));
      expect([b.gid, b.mode & 0o2000]).toEqual([GROUP, 0o2000]);
      expect((await fsp.stat(path.join(d, 'a', 'b', 'f'))).gid).toBe(GROUP);
    });
    it('symlinks, fifos and hard-linkable files all take the group', async () => {
      const d = await setgidDir();
      const r = py(`
d = ${J(d)}
os.symlink('target', d + '/l'); os.mkfifo(d + '/p'); os.mknod(d + '/n', 0o600 | stat.S_IFREG)
out([os.lstat(d + '/' + x).st_gid for x in ('l', 'p', 'n')])`, NOBODY);
      expect(r).toEqual([GROUP, GROUP, GROUP]);
    });
    it('a plain file does not inherit S_ISGID (only directories do)', async () => {
      const d = await setgidDir();
      await fsp.writeFile(path.join(d, 'f'), '', { mode: 0o755 });
      expect(await modeOf(path.join(d, 'f'))).toBe(0o755);
    });
    it('a non-member asking for S_ISGID on a new file in a setgid directory does not get it', async () => {
      const d = await setgidDir();
      const r = py(`
os.umask(0); p = ${J(path.join(d, 'f'))}
os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o2775))
out(oct(os.stat(p).st_mode & 0o7777))`, NOBODY);
      expect(r).toBe('0o775');
    });
    it('root asking for S_ISGID on a new file in a setgid directory keeps it', async () => {
      const d = await setgidDir();
      const r = py(`
os.umask(0); p = ${J(path.join(d, 'f'))}
os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o2775))
out(oct(os.stat(p).st_mode & 0o7777))`);
      expect(r).toBe('0o2775');
    });
    it('a directory without S_ISGID: the caller\'s group as before', async () => {
      const d = await fresh(0o777);
      await fsp.chown(d, 0, GROUP);
      const r = py(`p = ${J(path.join(d, 'f'))}; os.mkdir(p); st = os.stat(p); out([st.st_gid, st.st_mode & 0o2000])`, NOBODY);
      expect(r).toEqual([65534, 0]);
    });
  });

  describe('allocated blocks (st_blocks, du)', () => {
    const blocks = async (p: string): Promise<number> => (await fsp.stat(p)).blocks;
    it('a dense 5000-byte file holds two 4 KiB blocks (16 sectors), like ext4', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, Buffer.alloc(5000, 1));
      expect(await blocks(p)).toBe(16);
    });
    it('an empty file holds no blocks', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      expect(await blocks(p)).toBe(0);
    });
    it('a file grown by truncate alone holds no blocks', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      await fsp.truncate(p, 1024 * MiB);
      const st = await fsp.stat(p);
      expect([st.size, st.blocks]).toEqual([1024 * MiB, 0]);
    });
    it('one byte written at 100 MiB: one block, not size/512', async () => {
      const p = path.join(await fresh(), 'f');
      const fh = await fsp.open(p, 'w');
      await fh.write(Buffer.from('z'), 0, 1, 100 * MiB);
      await fh.close();
      const st = await fsp.stat(p);
      expect([st.size, st.blocks]).toEqual([100 * MiB + 1, 8]);
    });
    it('a sparse file across chunks counts only the chunks written', async () => {
      const p = path.join(await fresh(), 'f');
      const fh = await fsp.open(p, 'w');
      await fh.write(Buffer.alloc(4096, 1), 0, 4096, 0);
      await fh.write(Buffer.alloc(4096, 2), 0, 4096, 12 * MiB);
      await fh.close();
      const st = await fsp.stat(p);
      // Chunks 1 and 2 are holes; chunks 0 and 3 are stored up to the end of their 4 KiB.
      expect(st.size).toBe(12 * MiB + 4096);
      expect(st.blocks).toBe(16);
    });
    it('holes inside a chunk before the last write count; past it they do not', async () => {
      const p = path.join(await fresh(), 'f');
      const fh = await fsp.open(p, 'w');
      await fh.write(Buffer.alloc(4096, 1), 0, 4096, MiB);
      await fh.truncate(3 * MiB);
      const open = (await fh.stat()).blocks;
      await fh.close();
      // Chunk 0 is stored up to 1 MiB + 4 KiB (the first MiB reads as zeros but is stored).
      expect([open, await blocks(p)]).toEqual([(MiB + 4096) / 512, (MiB + 4096) / 512]);
      const b = await fsp.readFile(p);
      expect([b.length, b.subarray(MiB, MiB + 4096).every((x) => x === 1), b.subarray(MiB + 4096).every((x) => x === 0)]).toEqual([3 * MiB, true, true]);
    });
    it('fstat of an open file with unflushed writes counts them', async () => {
      const p = path.join(await fresh(), 'f');
      const fh = await fsp.open(p, 'w');
      await fh.write(Buffer.alloc(5000, 3));
      const open = (await fh.stat()).blocks;
      await fh.close();
      expect([open, await blocks(p)]).toEqual([16, 16]);
    });
    it('a punched hole of whole chunks frees their blocks; the data around it stays', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, Buffer.alloc(12 * MiB, 0x5a));
      const before = await blocks(p);
      const r = py(`
fd = os.open(${J(p)}, os.O_RDWR)
C(libc.fallocate(fd, 3, ${4 * MiB}, ${4 * MiB}))
os.close(fd)
b = open(${J(p)}, 'rb').read()
out([len(b), b[:${4 * MiB}] == b'Z' * ${4 * MiB}, b[${4 * MiB}:${8 * MiB}] == bytes(${4 * MiB}), b[${8 * MiB}:] == b'Z' * ${4 * MiB}])`);
      expect(r).toEqual([12 * MiB, true, true, true]);
      expect([before, await blocks(p)]).toEqual([24 * 1024, 16 * 1024]);
    });
    it('truncating down frees the blocks past the new end', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, Buffer.alloc(9 * MiB, 1));
      await fsp.truncate(p, MiB);
      expect(await blocks(p)).toBe(2048);
    });
    it('du reports what is allocated, du --apparent-size the length', async () => {
      const d = await fresh();
      const p = path.join(d, 'sparse');
      const fh = await fsp.open(p, 'w');
      await fh.write(Buffer.from('end'), 0, 3, 64 * MiB);
      await fh.close();
      const du = (args: string[]): string => spawnSync('du', [...args, p], { encoding: 'utf8' }).stdout.split('\t')[0];
      expect([du(['-k']), du(['-k', '--apparent-size'])]).toEqual(['4', String(64 * 1024 + 1)]);
    });
  });

  describe('open files and another client\'s unlink (unlink grace 2 s, opens registered after ~1 s)', () => {
    let b: Daemon;
    const pattern = (len: number, seed: number): Buffer => {
      const buf = Buffer.alloc(len);
      for (let i = 0; i < len; i++) buf[i] = (i * 7 + seed) & 0xff;
      return buf;
    };
    /** The chunk objects of an inode in kurve up's datastore directory. */
    const objectsOf = (ino: number): string[] => {
      const lo = (ino % 256).toString(16).padStart(2, '0');
      const hi = (Math.floor(ino / 256) % 256).toString(16).padStart(2, '0');
      const fsDir = path.join(path.dirname(k.mountpoint), 'data', 'data', 'objects');
      const out: string[] = [];
      for (const f of fs.readdirSync(fsDir)) {
        const d = path.join(fsDir, f, lo, hi, String(ino));
        if (fs.existsSync(d)) out.push(...fs.readdirSync(d));
      }
      return out;
    };
    const onB = (p: string): string => path.join(b.mountpoint, path.relative(k.mountpoint, p));
    beforeAll(async () => {
      b = await kurveMount(k);
    });

    it('a file opened here and unlinked there at once stays readable past the grace, then goes at close', async () => {
      const d = await fresh();
      const p = path.join(d, 'f');
      const data = pattern(9 * MiB + 123, 5);
      await fsp.writeFile(p, data);
      const ino = (await fsp.stat(p)).ino;
      await waitFor('the second client to see the file', () => fs.existsSync(onB(p)), 2000);
      // B has none of it cached: every read below fetches chunks from the datastore.
      const fh = await fsp.open(onB(p), 'r');
      try {
        await fsp.unlink(p);
        await sleep(3500);
        const got = Buffer.alloc(data.length);
        const { bytesRead } = await fh.read(got, 0, data.length, 0);
        expect(bytesRead).toBe(data.length);
        expect(got.equals(data)).toBe(true);
        expect(objectsOf(ino).length).toBe(3);
      } finally {
        await fh.close();
      }
      await waitFor('the objects to be deleted after the last close', () => objectsOf(ino).length === 0, 5000, 50);
    });
    it('a file being written here and unlinked there: writes, fsync and close succeed, data reads back', async () => {
      const d = await fresh();
      const p = path.join(d, 'w');
      const fh = await fsp.open(onB(p), 'w+');
      try {
        await fh.write(pattern(MiB, 1), 0, MiB, 0);
        await waitFor('the first client to see the new file', () => fs.existsSync(p), 2000);
        await fsp.unlink(p);
        await fh.write(pattern(MiB, 2), 0, MiB, MiB);
        await fh.sync();
        await sleep(2500);
        await fh.write(pattern(MiB, 3), 0, MiB, 2 * MiB);
        await fh.sync();
        const st = await fh.stat();
        const got = Buffer.alloc(3 * MiB);
        await fh.read(got, 0, 3 * MiB, 0);
        expect([st.nlink, st.size]).toEqual([0, 3 * MiB]);
        expect(got.equals(Buffer.concat([pattern(MiB, 1), pattern(MiB, 2), pattern(MiB, 3)]))).toBe(true);
      } finally {
        await fh.close();
      }
    });
    it('SEEK_HOLE on another client: a punched-out chunk is a hole, a stored chunk data to its length', async () => {
      const d = await fresh();
      const p = path.join(d, 'f');
      await fsp.writeFile(p, Buffer.alloc(10 * MiB, 0x33));
      py(`
fd = os.open(${J(p)}, os.O_RDWR)
C(libc.fallocate(fd, 3, ${4 * MiB}, ${4 * MiB}))
os.close(fd)
out(0)`);
      await waitFor('the second client to see the file', () => fs.existsSync(onB(p)), 2000);
      const seek = `
fd = os.open(${J(onB(p))}, os.O_RDONLY)
r = [os.lseek(fd, 0, os.SEEK_HOLE), os.lseek(fd, ${4 * MiB}, os.SEEK_DATA), os.lseek(fd, ${8 * MiB}, os.SEEK_HOLE), os.lseek(fd, ${5 * MiB}, os.SEEK_HOLE)]
os.close(fd)
out(r)`;
      // Before and after the second client fetched the data into its own cache.
      const before = py(seek);
      await fsp.readFile(onB(p));
      expect([before, py(seek)]).toEqual([[4 * MiB, 8 * MiB, 10 * MiB, 5 * MiB], [4 * MiB, 8 * MiB, 10 * MiB, 5 * MiB]]);
    });
    it('SEEK_HOLE on another client that holds nothing of the file: a never-written chunk is a hole', async () => {
      const d = await fresh();
      const p = path.join(d, 'f');
      const fh = await fsp.open(p, 'w');
      await fh.write(Buffer.from('x'), 0, 1, 0);
      await fh.write(Buffer.from('y'), 0, 1, 8 * MiB);
      await fh.close();
      await waitFor('the second client to see the file', () => fs.existsSync(onB(p)), 2000);
      const r = py(`
fd = os.open(${J(onB(p))}, os.O_RDONLY)
r = [os.lseek(fd, 0, os.SEEK_HOLE), os.lseek(fd, ${4 * MiB}, os.SEEK_DATA), os.lseek(fd, ${MiB}, os.SEEK_DATA)]
os.close(fd)
out(r)`);
      // Chunk 0 is stored up to the end of its written block, chunk 1 was never written.
      expect(r).toEqual([4096, 8 * MiB, 8 * MiB]);
    });
    it('an unlinked file nobody has open is purged once the grace is over', async () => {
      const d = await fresh();
      const p = path.join(d, 'gone');
      await fsp.writeFile(p, pattern(MiB, 9));
      const ino = (await fsp.stat(p)).ino;
      expect(objectsOf(ino).length).toBe(1);
      await fsp.unlink(p);
      await waitFor('the objects to be deleted after the unlink grace', () => objectsOf(ino).length === 0, 8000, 100);
    });
  });

  describe('SEEK_DATA/SEEK_HOLE to the page where the data is local', () => {
    it('writes not yet flushed: the written 4 KiB is the only data', async () => {
      const p = path.join(await fresh(), 'f');
      const r = py(`
fd = os.open(${J(p)}, os.O_RDWR | os.O_CREAT)
os.ftruncate(fd, ${6 * MiB})
os.pwrite(fd, b'q' * 4096, ${MiB})
os.pwrite(fd, b'r' * 8192, ${5 * MiB})
r = [os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, ${MiB}, os.SEEK_HOLE), os.lseek(fd, ${MiB + 4096}, os.SEEK_DATA), os.lseek(fd, ${5 * MiB}, os.SEEK_HOLE), E(os.lseek, fd, ${5 * MiB + 8192}, os.SEEK_DATA)]
os.close(fd)
out(r)`);
      expect(r).toEqual([MiB, MiB + 4096, 5 * MiB, 5 * MiB + 8192, 'ENXIO']);
    });
    it('after close and reopen on the same client: the same extents', async () => {
      const p = path.join(await fresh(), 'f');
      const fh = await fsp.open(p, 'w');
      await fh.write(Buffer.alloc(4096, 1), 0, 4096, 2 * MiB);
      await fh.truncate(3 * MiB);
      await fh.close();
      const r = py(`
fd = os.open(${J(p)}, os.O_RDONLY)
r = [os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, ${2 * MiB}, os.SEEK_HOLE), os.lseek(fd, 0, os.SEEK_HOLE), E(os.lseek, fd, ${2 * MiB + 4096}, os.SEEK_DATA)]
os.close(fd)
out(r)`);
      expect(r).toEqual([2 * MiB, 2 * MiB + 4096, 0, 'ENXIO']);
    });
  });

  describe('fallocate space checks', () => {
    it('a range larger than the datastore\'s free space is ENOSPC and leaves the size alone', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'abc');
      const r = py(`
fd = os.open(${J(p)}, os.O_RDWR)
r = [E(lambda: C(libc.fallocate(fd, 0, 0, 100 << 40))), E(lambda: C(libc.fallocate(fd, 1, 0, 100 << 40)))]
os.close(fd)
out(r + [os.stat(${J(p)}).st_size])`);
      expect(r).toEqual(['ENOSPC', 'ENOSPC', 3]);
    });
    it('a range that fits is accepted (mode 0 extends the size)', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'abc');
      const r = py(`
fd = os.open(${J(p)}, os.O_RDWR)
C(libc.fallocate(fd, 0, 0, ${8 * MiB}))
os.close(fd)
out(os.stat(${J(p)}).st_size)`);
      expect(r).toBe(8 * MiB);
    });
  });

  describe('setuid/setgid bits cleared by writes and chown (kernel FUSE rules)', () => {
    /** A root-owned file of `mode` (group GROUP) that everyone may write. */
    const privFile = async (mode: number): Promise<string> => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'x');
      await fsp.chown(p, 0, GROUP);
      await fsp.chmod(p, mode);
      return p;
    };
    const appendAs = (p: string, who: { uid: number; gid: number }): void => {
      py(`
with open(${J(p)}, 'a') as f: f.write('more')
out(0)`, who);
    };
    it('a write by a non-member clears S_ISUID and S_ISGID (group-executable)', async () => {
      const p = await privFile(0o6777);
      appendAs(p, NOBODY);
      expect(await modeOf(p)).toBe(0o777);
    });
    it('a write by a non-member clears S_ISGID on a group-executable file', async () => {
      const p = await privFile(0o2777);
      appendAs(p, NOBODY);
      expect(await modeOf(p)).toBe(0o777);
    });
    it('S_ISGID without group execute (mandatory-locking marker) is kept across a write (FUSE rule)', async () => {
      const p = await privFile(0o2767);
      appendAs(p, NOBODY);
      expect(await modeOf(p)).toBe(0o2767);
    });
    it('a write by root (CAP_FSETID) keeps both bits', async () => {
      const p = await privFile(0o6777);
      await fsp.appendFile(p, 'root');
      expect(await modeOf(p)).toBe(0o6777);
    });
    it('a truncate by a non-member clears the bits', async () => {
      const p = await privFile(0o6777);
      py(`os.truncate(${J(p)}, 1); out(0)`, NOBODY);
      expect(await modeOf(p)).toBe(0o777);
    });
    it('chown clears S_ISUID and a group-executable S_ISGID, even by root', async () => {
      const p = await privFile(0o6755);
      await fsp.chown(p, 5, 5);
      expect(await modeOf(p)).toBe(0o755);
    });
    it('the owner changing its file\'s group (as a member) clears S_ISGID', async () => {
      const d = await fresh(0o777);
      const r = py(`
p = ${J(path.join(d, 'own'))}
open(p, 'w').close()
os.chmod(p, 0o2775)
os.chown(p, -1, 65534)
out(oct(os.stat(p).st_mode & 0o7777))`, NOBODY);
      expect(r).toBe('0o775');
    });
    it('an O_TRUNC open by a non-member (a passthrough write the daemon never sees) clears both bits', async () => {
      const p = await privFile(0o6777);
      py(`
with open(${J(p)}, 'w') as f: f.write('new')
out(0)`, NOBODY);
      expect(await modeOf(p)).toBe(0o777);
      expect(await fsp.readFile(p, 'utf8')).toBe('new');
    });
    it('a non-member writing while a passthrough reader holds the file still clears the bits', async () => {
      const p = await privFile(0o6777);
      expect(await fsp.readFile(p, 'utf8')).toBe('x');
      const reader = await fsp.open(p, 'r');
      try {
        appendAs(p, NOBODY);
        expect((await reader.stat()).mode & 0o7777).toBe(0o777);
      } finally {
        await reader.close();
      }
      expect(await fsp.readFile(p, 'utf8')).toBe('xmore');
    });
    it('writes cost no security.capability round trip (FUSE_HANDLE_KILLPRIV_V2): at most one GETXATTR for 200 writes', async () => {
      const getxattrs = (): Promise<number> => k.metric('kurve_fuse_requests_total', 'op="GETXATTR"');
      const d = await fresh(0o777);
      const before = await getxattrs();
      // A passthrough file (O_TRUNC of a new file) and a daemon-served one (append), as root and not.
      py(`
for name in ('pt', 'app'):
    with open(${J(d)} + '/' + name, 'w' if name == 'pt' else 'a') as f:
        for i in range(100):
            f.write('y' * 4096); f.flush()
out(0)`, NOBODY);
      expect((await getxattrs()) - before).toBeLessThanOrEqual(2);
      expect((await fsp.stat(path.join(d, 'pt'))).size).toBe(100 * 4096);
    });
    it('chmod of a directory keeps S_ISGID when asked', async () => {
      const d = await fresh();
      await fsp.chmod(d, 0o2755);
      expect(await modeOf(d)).toBe(0o2755);
    });
  });
});
