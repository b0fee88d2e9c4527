// Kernel caching driven by the protocol: long entry/attr timeouts, precise invalidation by
// notifications, FOPEN_KEEP_CACHE, and FUSE passthrough — each counted in daemon requests.
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Errno } from '../../src/common/errno';
import { MemFs } from '../helpers/memfs';
import { mountTemp, waitFor, withTimeout, type TempMount } from '../helpers/mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

const count = (m: TempMount, ...ops: string[]): number => ops.reduce((n, op) => n + (m.session.opCounts()[op] ?? 0), 0);

describeIf([whyNoFuse()], 'FUSE protocol: notifications with 60 s timeouts', () => {
  let memfs: MemFs;
  let m: TempMount;

  beforeAll(async () => {
    memfs = new MemFs({ entryValid: 60, attrValid: 60, keepCache: true });
    m = await mountTemp(memfs);
  });
  afterAll(async () => {
    await m?.cleanup();
  });

  it('serves repeated stats from the kernel cache', async () => {
    await fsp.writeFile(m.p('f'), 'abc');
    await fsp.stat(m.p('f'));
    const before = count(m, 'LOOKUP', 'GETATTR', 'STATX');
    for (let i = 0; i < 100; i++) await fsp.stat(m.p('f'));
    expect(count(m, 'LOOKUP', 'GETATTR', 'STATX')).toBe(before);
  });

  it('INVAL_INODE makes the next stat reach the daemon exactly once', async () => {
    const node = memfs.nodeByPath('f')!;
    node.size = 2; // changed "elsewhere": the kernel still has 3
    expect((await fsp.stat(m.p('f'))).size).toBe(3);
    const before = count(m, 'GETATTR');
    expect(await m.session.notify.invalInode(node.ino, -1, 0)).toBe(0);
    expect((await fsp.stat(m.p('f'))).size).toBe(2);
    expect((await fsp.stat(m.p('f'))).size).toBe(2);
    expect(count(m, 'GETATTR')).toBe(before + 1);
  });

  it('INVAL_INODE with a data range drops cached pages (KEEP_CACHE otherwise keeps them)', async () => {
    await fsp.writeFile(m.p('data'), 'old-data');
    expect(await fsp.readFile(m.p('data'), 'utf8')).toBe('old-data');
    const node = memfs.nodeByPath('data')!;
    node.data = Buffer.from('new-data');
    const reads = count(m, 'READ');
    expect(await fsp.readFile(m.p('data'), 'utf8')).toBe('old-data'); // page cache, kept across opens
    expect(count(m, 'READ')).toBe(reads);
    expect(await m.session.notify.invalInode(node.ino, 0, 0)).toBe(0);
    expect(await fsp.readFile(m.p('data'), 'utf8')).toBe('new-data');
    expect(count(m, 'READ')).toBe(reads + 1);
  });

  it('INVAL_ENTRY makes the kernel look a name up again', async () => {
    await fsp.writeFile(m.p('old'), 'x');
    await fsp.stat(m.p('old'));
    const root = memfs.nodeByPath('')!;
    const ino = root.children!.get('old')!;
    root.children!.delete('old'); // renamed "elsewhere"
    root.children!.set('new', ino);
    await fsp.stat(m.p('old')); // still cached
    const lookups = count(m, 'LOOKUP');
    expect(await m.session.notify.invalEntry(1, Buffer.from('old'))).toBe(0);
    await expect(fsp.stat(m.p('old'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await fsp.stat(m.p('new'))).ino).toBe(ino);
    expect(count(m, 'LOOKUP')).toBe(lookups + 2);
  });

  it('DELETE drops a cached dentry of a removed child', async () => {
    await fsp.writeFile(m.p('gone'), 'x');
    const ino = (await fsp.stat(m.p('gone'))).ino;
    memfs.nodeByPath('')!.children!.delete('gone');
    expect(await m.session.notify.delete(1, ino, Buffer.from('gone'))).toBe(0);
    await expect(fsp.stat(m.p('gone'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('notifying something the kernel has not cached is a harmless ENOENT', async () => {
    expect(await m.session.notify.invalInode(987654, -1, 0)).toBe(-Errno.ENOENT);
    expect(await m.session.notify.invalEntry(1, Buffer.from('never-looked-up'))).toBe(-Errno.ENOENT);
  });

  it('a notification sent from inside a handler does not deadlock the loop', async () => {
    // The kernel holds the parent directory's lock while MKDIR waits for us, and INVAL_ENTRY
    // takes that lock: written on the event loop this would hang forever.
    // If that ever regresses, this process would be stuck in the kernel where no jest timeout
    // reaches: a watchdog process aborts the connection after 15 s so the run still ends.
    const abort = `/sys/fs/fuse/connections/${m.session.connectionId}/abort`;
    const watchdog = spawn('sh', ['-c', 'sleep 15; [ -e "$1" ] || mount -t fusectl none /sys/fs/fuse/connections; echo 1 > "$1"', 'sh', abort], { stdio: 'ignore' });
    let sent: Promise<number> | undefined;
    const mkdir = memfs.mkdir.bind(memfs);
    memfs.mkdir = (ctx, req) => {
      sent = memfs.conn!.notify.invalEntry(ctx.nodeid, req.name);
      return mkdir(ctx, req);
    };
    try {
      await withTimeout(fsp.mkdir(m.p('sub')), 5000, 'mkdir');
      expect([0, -Errno.ENOENT]).toContain(await withTimeout(sent!, 5000, 'the notification'));
    } finally {
      memfs.mkdir = mkdir;
      watchdog.kill('SIGKILL');
    }
  });

  it('RESEND is accepted', async () => {
    expect(await m.session.notify.resend()).toBe(0);
  });
});

describeIf([whyNoFuse()], 'FUSE protocol: passthrough', () => {
  let memfs: MemFs;
  let m: TempMount;
  let realDir: string;
  const data = crypto.randomBytes(3 << 20);

  beforeAll(async () => {
    realDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-backing-'));
    fs.writeFileSync(path.join(realDir, 'backing.bin'), data);
    memfs = new MemFs({ entryValid: 60, attrValid: 60 });
    memfs.addBackedFile('pt.bin', path.join(realDir, 'backing.bin'));
    m = await mountTemp(memfs, { passthrough: true });
  });
  afterAll(async () => {
    await m?.cleanup();
    fs.rmSync(realDir, { recursive: true, force: true });
  });

  it('negotiates passthrough', () => {
    expect(m.session.conn!.passthrough).toBe(true);
  });

  it('reads the backing file through the kernel with 0 READ requests', async () => {
    const reads = count(m, 'READ');
    const got = await fsp.readFile(m.p('pt.bin'));
    expect(got.length).toBe(data.length);
    expect(got.equals(data)).toBe(true);
    expect(count(m, 'READ')).toBe(reads);
    expect(count(m, 'OPEN')).toBeGreaterThanOrEqual(1);
    // RELEASE is sent in the background after close(): wait for it (it closes the backing id).
    await waitFor(() => memfs.files.size === 0, 5000, 'RELEASE');
  });

  it('BACKING_OPEN of a bad fd fails with an errno, not a crash', () => {
    expect(() => m.session.backing.open(-1)).toThrow(/EBADF|EINVAL/);
  });
});
