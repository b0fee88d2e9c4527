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
});
