// A full disk under `kurve up`: the write that does not fit fails with ENOSPC (at write or close),
// the mount keeps serving, what was stored before is intact, and deleting the file that did not
// fit gives its space back at once (its local data, left dirty by the failed upload, has no reader
// left) — not only at unmount. Chunks of it already stored go with the purge after the unlink
// grace, as any deleted file's. When the metadata store itself runs out of space, creates fail
// with ENOSPC, the process stays up, and every create acknowledged before is still there after
// space is freed and after a restart.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { cleanupKurve, Daemon, kurveUp, py, waitFor } from '../helpers/kurve-mount';
import { makeLoopDisk, type LoopDisk } from '../helpers/loop-disk';
import { describeIf, whyNoCommand, whyNoFuse } from '../helpers/privileged';

const J = JSON.stringify;
const MiB = 1024 * 1024;

describeIf([whyNoFuse(), whyNoCommand('mkfs.ext4')], 'a full data disk', () => {
  let loop: LoopDisk | undefined;
  let base: string;
  let disk: string;
  let k: Daemon;
  const freeBytes = (): number => loop!.freeBytes();

  beforeAll(async () => {
    loop = makeLoopDisk('kurve-enospc-', 64 * MiB);
    base = loop.base;
    disk = loop.dir;
    // A short unlink grace: the deleted file's stored chunks go with the purge, right after it.
    k = await kurveUp({ dataDir: path.join(disk, 'k'), mountpoint: path.join(base, 'mnt'), args: ['--no-bpf', '--unlink-grace', '1s'] });
  }, 60_000);

  afterAll(async () => {
    await cleanupKurve();
    loop?.release();
  });

  it('ENOSPC for what does not fit, nothing else lost, and the space comes back on delete', async () => {
    const keep = path.join(k.mountpoint, 'keep');
    const keepData = Buffer.alloc(2 * MiB + 7, 0x61);
    fs.writeFileSync(keep, keepData);
    const big = path.join(k.mountpoint, 'big');
    const before = freeBytes();
    // Twice what is left: it lands in the local cache (same disk) and cannot be stored too.
    const r = py(`
n = ${Math.ceil((2 * before) / MiB)}
fd = os.open(${J(big)}, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
err = None
try:
    for i in range(n):
        os.write(fd, bytes([i % 251]) * ${MiB})
except OSError as e:
    err = errno.errorcode[e.errno]
try:
    os.close(fd)
except OSError as e:
    err = err or errno.errorcode[e.errno]
out(err)`);
    expect(r).toBe('ENOSPC');
    expect(fs.readFileSync(keep).equals(keepData)).toBe(true);
    expect(fs.readdirSync(k.mountpoint).sort()).toEqual(['big', 'keep']);

    fs.unlinkSync(big);
    await waitFor('the deleted file\'s space back', () => freeBytes() > before - 4 * MiB, 10_000, 50).catch((err: Error) => {
      const du = execFileSync('du', ['-a', '-k', path.join(disk, 'k')]).toString().split('\n').filter((l) => Number(l.split('\t')[0]) >= 1024);
      throw new Error(`${err.message}: free ${freeBytes()} of ${before} before; large: ${du.join('; ')}`);
    });

    const again = path.join(k.mountpoint, 'again');
    const data = Buffer.alloc(8 * MiB, 0x7e);
    fs.writeFileSync(again, data);
    expect(fs.readFileSync(again).equals(data)).toBe(true);
  }, 60_000);

  it('metadata on a full disk: creates fail with ENOSPC, the mount stays up, nothing acknowledged is lost', async () => {
    const dir = path.join(k.mountpoint, 'meta');
    fs.mkdirSync(dir);
    // Leave a few pages: the metadata journal and lmdb's own commits run out among the creates
    // (both paths are taken across runs; each must refuse cleanly, never stop the process).
    const filler = path.join(disk, 'filler');
    execFileSync('fallocate', ['-l', String(Math.max(0, freeBytes() - 32 * 1024)), filler]);
    const r = py(`
ok = []
errs = {}
for i in range(1500):
    try:
        with open(os.path.join(${J(dir)}, 'f%d' % i), 'w') as f: f.write('x' * 100)
        ok.append(i)
    except OSError as e:
        n = errno.errorcode[e.errno]
        errs[n] = errs.get(n, 0) + 1
out([ok, errs])`) as [number[], Record<string, number>];
    const [ok, errs] = r;
    expect(Object.keys(errs)).toEqual(['ENOSPC']);
    expect(k.proc.exitCode).toBeNull();
    expect(fs.statSync(k.mountpoint).isDirectory()).toBe(true);

    fs.rmSync(filler);
    // Space is back: creates work again (lmdb's failed commit is retried every second).
    await waitFor('creates to work again', () => {
      try {
        fs.writeFileSync(path.join(dir, 'after'), 'y');
        return true;
      } catch {
        return false;
      }
    }, 10_000, 100);
    const listed = new Set(fs.readdirSync(dir));
    expect(ok.filter((i) => !listed.has(`f${i}`))).toEqual([]);

    // And after a restart on the same data: every acknowledged create is there.
    await k.stop();
    k = await kurveUp({ dataDir: path.join(disk, 'k'), mountpoint: path.join(base, 'mnt'), args: ['--no-bpf', '--unlink-grace', '1s'] });
    const again = new Set(fs.readdirSync(dir));
    expect(ok.filter((i) => !again.has(`f${i}`))).toEqual([]);
    expect(again.has('after')).toBe(true);
  }, 90_000);
});
