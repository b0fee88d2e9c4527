// kill -9 of the client: the mount point is released (processes using it get errors instead of
// hanging), `kurve umount` recovers it, and `kurve up` on the same data shows every fsync'ed byte.
// Also: SIGTERM unmounts cleanly and a restart on the same --data shows the same files.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { cleanupKurve, kurveRun, kurveUp, py, tempDir } from '../helpers/kurve-mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

const J = JSON.stringify;
const MiB = 1024 * 1024;

function isMounted(dir: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === dir);
}

describeIf([whyNoFuse()], 'client crash and restart', () => {
  afterAll(async () => {
    await cleanupKurve();
  });

  it('SIGTERM unmounts; a restart on the same --data shows the same files', async () => {
    const base = tempDir();
    const dataDir = path.join(base, 'data');
    const mountpoint = path.join(base, 'mnt');
    const k1 = await kurveUp({ dataDir, mountpoint });
    await fsp.mkdir(path.join(mountpoint, 'dir'));
    await fsp.writeFile(path.join(mountpoint, 'dir', 'kept'), 'survives restarts');
    await fsp.symlink('dir/kept', path.join(mountpoint, 'link'));
    expect(await k1.stop()).toBe(0);
    expect(isMounted(mountpoint)).toBe(false);
    const k2 = await kurveUp({ dataDir, mountpoint });
    expect(await fsp.readFile(path.join(mountpoint, 'link'), 'utf8')).toBe('survives restarts');
    expect((await fsp.readdir(mountpoint)).sort()).toEqual(['dir', 'link']);
    expect(await k2.stop()).toBe(0);
  });

  it('kurve umount of a live mount makes its daemon upload, clean up and exit 0', async () => {
    const k = await kurveUp();
    await fsp.writeFile(path.join(k.mountpoint, 'f'), 'x');
    const r = kurveRun(['umount', k.mountpoint]);
    expect(r.status).toBe(0);
    const code = await Promise.race([k.exited, new Promise((res) => setTimeout(() => res('still running'), 15_000))]);
    expect(code).toBe(0);
    expect(isMounted(k.mountpoint)).toBe(false);
  });

  it('kill -9: no hung processes, umount recovers, the remount shows every fsync\'ed byte', async () => {
    const base = tempDir();
    const dataDir = path.join(base, 'data');
    const mountpoint = path.join(base, 'mnt');
    const k = await kurveUp({ dataDir, mountpoint });
    const file = path.join(mountpoint, 'journal.bin');
    // 3 MiB + 1 written and fsync'ed, then more written but never synced or closed.
    expect(py(`
fd = os.open(${J(file)}, os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, bytes([7]) * ${3 * MiB + 1})
os.fsync(fd)
os.write(fd, bytes([9]) * 100)
out('synced')`)).toBe('synced');
    // A reader sitting in the mount while the daemon dies.
    const holder = spawnSync('sh', ['-c', `(cd ${J(mountpoint)} && sleep 30) >/dev/null 2>&1 & echo $!`], { encoding: 'utf8' });
    const holderPid = Number(holder.stdout.trim());
    await k.kill9();
    // Every access now fails fast with ENOTCONN instead of hanging.
    const t0 = Date.now();
    const st = spawnSync('stat', [mountpoint], { timeout: 10_000, encoding: 'utf8' });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(st.status).not.toBe(0);
    expect(st.stderr).toMatch(/not connected/);
    expect(py(`out(E(os.listdir, ${J(mountpoint)}))`)).toBe('ENOTCONN');
    process.kill(holderPid, 'SIGKILL');
    const um = kurveRun(['umount', mountpoint]);
    expect(um.status).toBe(0);
    expect(isMounted(mountpoint)).toBe(false);
    const k2 = await kurveUp({ dataDir, mountpoint });
    const b = await fsp.readFile(file);
    expect(b.length).toBeGreaterThanOrEqual(3 * MiB + 1);
    expect(b.subarray(0, 3 * MiB + 1).every((x) => x === 7)).toBe(true);
    expect(await k2.stop()).toBe(0);
  });
});
