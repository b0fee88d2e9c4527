// POSIX cases found by running the pjdfstest conformance suite (and probes in its style) against a
// real Kurve mount, side by side with ext4: each is a regression case for a fixed divergence.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { cleanupKurve, Daemon, kurveUp, py, sleep } from '../helpers/kurve-mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

describeIf([whyNoFuse()], 'POSIX cases from pjdfstest on a Kurve mount', () => {
  let k: Daemon;
  let n = 0;
  const fresh = async (): Promise<string> => {
    const d = path.join(k.mountpoint, `p${++n}`);
    await fsp.mkdir(d);
    return d;
  };
  const J = JSON.stringify;

  beforeAll(async () => {
    k = await kurveUp();
  });
  afterAll(async () => {
    await cleanupKurve();
  });

  describe('open(O_TRUNC)', () => {
    it('marks mtime and ctime for update even when the file is already empty', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, '');
      const before = await fsp.stat(p, { bigint: true });
      await sleep(20);
      const fh = await fsp.open(p, 'w'); // O_WRONLY|O_CREAT|O_TRUNC on an existing name
      await fh.close();
      const after = await fsp.stat(p, { bigint: true });
      expect(after.size).toBe(0n);
      expect(after.mtimeNs).toBeGreaterThan(before.mtimeNs);
      expect(after.ctimeNs).toBeGreaterThan(before.ctimeNs);
    });

    it('O_RDONLY|O_TRUNC truncates, as on Linux (the kernel already emptied its own view)', async () => {
      const p = path.join(await fresh(), 'f');
      await fsp.writeFile(p, 'hello');
      const r = py(`
fd = os.open(${J(p)}, os.O_RDONLY | os.O_TRUNC)
size_fd = os.fstat(fd).st_size
data = os.read(fd, 10)
os.close(fd)
out([size_fd, len(data), os.stat(${J(p)}).st_size])`);
      expect(r).toEqual([0, 0, 0]);
      expect((await fsp.readFile(p)).length).toBe(0);
    });
  });

  describe('a directory removed while held', () => {
    it('fstat of an open fd still answers, with nlink 0, and listing it is empty', async () => {
      const d = path.join(await fresh(), 'd');
      const r = py(`
os.mkdir(${J(d)}, 0o750)
fd = os.open(${J(d)}, os.O_RDONLY | os.O_DIRECTORY)
os.rmdir(${J(d)})
st = os.fstat(fd)
names = os.listdir(fd)
made = E(lambda: os.open('x', os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
os.close(fd)
out([stat.S_ISDIR(st.st_mode), oct(stat.S_IMODE(st.st_mode)), st.st_nlink, names, made, E(os.stat, ${J(d)})])`);
      expect(r).toEqual([true, '0o750', 0, [], 'ENOENT', 'ENOENT']);
    });

    it('stat(".") in a removed cwd answers nlink 0 (as ext4), creating in it is ENOENT', async () => {
      const d = path.join(await fresh(), 'cwd');
      const r = py(`
os.mkdir(${J(d)})
os.chdir(${J(d)})
os.rmdir(${J(d)})
st = os.stat('.')
out([st.st_nlink, st.st_size, os.listdir('.'), E(os.mkdir, 'sub')])`);
      expect(r).toEqual([0, 0, [], 'ENOENT']);
    });

    it('a directory replaced by rename while open still answers fstat, with nlink 0', async () => {
      const d = await fresh();
      const r = py(`
os.mkdir(${J(d + '/a')})
os.mkdir(${J(d + '/b')}, 0o700)
fd = os.open(${J(d + '/b')}, os.O_RDONLY | os.O_DIRECTORY)
ino = os.fstat(fd).st_ino
os.rename(${J(d + '/a')}, ${J(d + '/b')})
st = os.fstat(fd)
os.close(fd)
out([st.st_ino == ino, oct(stat.S_IMODE(st.st_mode)), st.st_nlink, os.stat(${J(d + '/b')}).st_ino != ino])`);
      expect(r).toEqual([true, '0o700', 0, true]);
    });
  });
});
