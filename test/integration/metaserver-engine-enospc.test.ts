// The lmdb engine in 'sync' durability mode (a standalone `kurve metaserver`) on a full disk: the
// transactions whose commit fails are refused with ENOSPC and leave nothing behind, every one
// acknowledged before stays, and once space is freed the engine commits again — without a
// restart. Reopened, the store holds exactly the acknowledged transactions.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Errno, toErrno } from '../../src/common/errno';
import { LmdbEngine } from '../../src/metaserver/engines/lmdb';
import { makeLoopDisk, type LoopDisk } from '../helpers/loop-disk';
import { describeIf, whyNoCommand, whyNotRoot } from '../helpers/privileged';

const KiB = 1024;
const MiB = 1024 * KiB;
const key = (i: number): Buffer => Buffer.from(`k${String(i).padStart(6, '0')}`);
const valueOf = (i: number): Buffer => Buffer.alloc(48 * KiB, i % 251);

describeIf([whyNotRoot(), whyNoCommand('mkfs.ext4')], "lmdb engine ('sync') on a full disk", () => {
  let loop: LoopDisk | undefined;
  let disk: string;
  let engine: LmdbEngine | undefined;

  beforeAll(() => {
    loop = makeLoopDisk('kurve-engfull-', 24 * MiB);
    disk = loop.dir;
  });

  afterAll(async () => {
    await engine?.close().catch(() => undefined);
    loop?.release();
  });

  it('refuses what does not fit with ENOSPC, keeps what was acknowledged, and commits again once space is freed', async () => {
    const dir = path.join(disk, 'meta');
    const filler = path.join(disk, 'filler');
    fs.writeFileSync(filler, Buffer.alloc(4 * MiB, 1));
    engine = new LmdbEngine({ path: dir, durability: 'sync' });
    const acked: number[] = [];
    const errors: number[] = [];
    let i = 0;
    // Fill the disk: one txn at a time, until three in a row are refused.
    while (errors.length < 3 && i < 2000) {
      try {
        await engine.txn({ puts: [{ key: key(i), value: valueOf(i) }] });
        acked.push(i);
        errors.length = 0;
      } catch (err) {
        errors.push(toErrno(err));
      }
      i++;
    }
    expect(errors).toEqual([Errno.ENOSPC, Errno.ENOSPC, Errno.ENOSPC]);
    expect(acked.length).toBeGreaterThan(10);
    const refused = [i - 3, i - 2, i - 1];
    // Reads show what is on disk: every acknowledged value, nothing of the refused txns.
    for (const n of acked) expect((await engine.get(key(n)))?.value.equals(valueOf(n))).toBe(true);
    for (const n of refused) expect(await engine.get(key(n))).toBeUndefined();

    // Space back: the same engine (no restart) commits again, reads and writes as before.
    fs.rmSync(filler);
    const later = [100_000, 100_001, 100_002];
    for (const n of later) {
      await engine.txn({ puts: [{ key: key(n), value: valueOf(n) }] });
      expect((await engine.get(key(n)))?.value.equals(valueOf(n))).toBe(true);
    }
    await engine.txn({ deletes: [key(acked[0])] });
    expect(await engine.get(key(acked[0]))).toBeUndefined();

    // Reopened: exactly the acknowledged transactions.
    await engine.close();
    engine = new LmdbEngine({ path: dir, durability: 'sync' });
    expect(await engine.get(key(acked[0]))).toBeUndefined();
    for (const n of [...acked.slice(1), ...later]) expect((await engine.get(key(n)))?.value.equals(valueOf(n))).toBe(true);
    for (const n of refused) expect(await engine.get(key(n))).toBeUndefined();
    const revision = await engine.revision();
    expect(revision).toBeGreaterThanOrEqual(acked.length + later.length + 1);
  }, 120_000);
});
