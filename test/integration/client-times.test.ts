// Explicit timestamps on files with data not yet uploaded: `cp -a`, `tar x` and `touch -d` set
// mtime on a file whose written data is still local (committed at close). The commit must not
// stamp its own time over the one set; a write after the explicit time moves mtime again.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cleanupKurve, Daemon, kurveMount, kurveUp, py, tempDir } from '../helpers/kurve-mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

const J = JSON.stringify;
const PAST_NS = 1_500_000_000_123_456_789n; // 2017-07-14, with nanoseconds

describeIf([whyNoFuse()], 'explicit timestamps and pending data', () => {
  let a: Daemon;
  let b: Daemon;

  beforeAll(async () => {
    a = await kurveUp();
    b = await kurveMount(a);
  }, 60_000);
  afterAll(async () => {
    await cleanupKurve();
  });

  /** Writes through an open fd (new file: passthrough; existing file: daemon path), sets times, closes. */
  const writeThenSetTimes = (p: string, create: boolean, writeAfter: boolean): [string, string, number] => py(`
p = ${J(p)}
fd = os.open(p, ${create ? 'os.O_CREAT | os.O_WRONLY | os.O_TRUNC' : 'os.O_WRONLY'}, 0o644)
os.write(fd, b'x' * 70000)
os.utime(fd, ns=(${PAST_NS}, ${PAST_NS}))
${writeAfter ? "os.write(fd, b'more')" : ''}
os.close(fd)
st = os.stat(p)
out([str(st.st_mtime_ns), str(st.st_atime_ns), st.st_size])`) as [string, string, number];

  it('a new file written, given an old mtime and closed keeps that mtime (both mounts)', async () => {
    const p = path.join(a.mountpoint, 'times-new.bin');
    expect(writeThenSetTimes(p, true, false)).toEqual([String(PAST_NS), String(PAST_NS), 70000]);
    expect(fs.statSync(path.join(b.mountpoint, 'times-new.bin'), { bigint: true }).mtimeNs).toBe(PAST_NS);
  });

  it('an existing file written through the daemon, given an old mtime and closed keeps that mtime', async () => {
    const p = path.join(a.mountpoint, 'times-old.bin');
    fs.writeFileSync(p, Buffer.alloc(100_000, 1));
    expect(writeThenSetTimes(p, false, false)).toEqual([String(PAST_NS), String(PAST_NS), 100_000]);
    expect(fs.statSync(path.join(b.mountpoint, 'times-old.bin'), { bigint: true }).mtimeNs).toBe(PAST_NS);
  });

  it('a write after the explicit time moves mtime to now', async () => {
    const p = path.join(a.mountpoint, 'times-after.bin');
    const before = BigInt(Date.now() - 5000) * 1_000_000n;
    const [mtime, , size] = writeThenSetTimes(p, true, true);
    expect(size).toBe(70004);
    expect(BigInt(mtime)).toBeGreaterThan(before);
    expect(fs.statSync(path.join(b.mountpoint, 'times-after.bin'), { bigint: true }).mtimeNs).toBe(BigInt(mtime));
  });

  it('cp -a of a tree keeps every file\'s mtime, mode and content', async () => {
    const src = tempDir('kurve-times-src-');
    try {
      for (let d = 0; d < 3; d++) {
        fs.mkdirSync(path.join(src, `d${d}`));
        for (let f = 0; f < 20; f++) {
          const file = path.join(src, `d${d}`, `f${f}`);
          fs.writeFileSync(file, Buffer.alloc(100 + f * 997, d * 20 + f));
          fs.chmodSync(file, f % 2 ? 0o600 : 0o755);
          fs.utimesSync(file, new Date(1_400_000_000_000 + f * 1000), new Date(1_400_000_000_000 + d * 86_400_000 + f * 1000));
        }
      }
      const dst = path.join(a.mountpoint, 'cp-a');
      execFileSync('cp', ['-a', src, dst]);
      const listing = (root: string): string => execFileSync('find', ['.', '-type', 'f', '-printf', '%p %m %s %T@\n'], { cwd: root }).toString().split('\n').sort().join('\n');
      expect(listing(dst)).toBe(listing(src));
      expect(listing(path.join(b.mountpoint, 'cp-a'))).toBe(listing(src));
      execFileSync('diff', ['-r', src, dst]);
    } finally {
      fs.rmSync(src, { recursive: true, force: true });
    }
  });
});
