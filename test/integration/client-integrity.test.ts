// Seeded randomized data integrity: thousands of random writes, truncates, reads, fsyncs, closes
// and reopens on a Kurve file and on a reference file on local disk, compared byte for byte.
// Small chunks (64 KiB) so the operations cross many chunk boundaries and complete chunks often
// (early uploads of completed chunks, reused or discarded at flush).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { cleanupKurve, Daemon, kurveUp, tempDir } from '../helpers/kurve-mount';
import { describeIf, whyNoFuse } from '../helpers/privileged';

/** mulberry32: a tiny seeded PRNG, so a failure replays with the same seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(process.env.KURVE_SEED ?? 20261126);
const OPS = 3000;
const MAX_SIZE = 1_200_000;

describeIf([whyNoFuse()], 'randomized data integrity against a local reference file', () => {
  let k: Daemon;
  beforeAll(async () => {
    // Early uploads on (kurve up defaults them off) so that path is exercised too.
    k = await kurveUp({ args: ['--no-bpf', '--chunk-size', '64KiB'], env: { KURVE_EARLY_UPLOADS: '4' } });
  });
  afterAll(async () => {
    await cleanupKurve();
  });

  // A reopen with O_TRUNC (or of a file truncated to 0) takes the passthrough write path; the
  // others (daemon-served writes) track dirty chunks: the second case mixes the two often.
  it.each([
    ['random.bin', 0],
    ['random-trunc.bin', 0.3],
  ])(`${OPS} random operations (seed ${SEED}) leave identical files (%s, reopen with O_TRUNC %p)`, async (name, truncReopen) => {
    const rand = rng(SEED);
    const int = (n: number): number => Math.floor(rand() * n);
    const kp = path.join(k.mountpoint, name);
    const rp = path.join(tempDir('kurve-ref-'), name);
    let kf = await fsp.open(kp, 'w+');
    let rf = await fsp.open(rp, 'w+');
    let reads = 0;
    const log: string[] = [];
    const compareAll = async (why: string): Promise<void> => {
      const [a, b] = await Promise.all([fsp.readFile(kp), fsp.readFile(rp)]);
      if (!a.equals(b)) {
        const at = a.findIndex((x, i) => x !== b[i]);
        throw new Error(`files differ after ${why} (kurve ${a.length} bytes, ref ${b.length}, first difference at ${at}); last ops:\n${log.slice(-10).join('\n')}`);
      }
    };
    for (let op = 0; op < OPS; op++) {
      const r = rand();
      if (r < 0.45) {
        const off = int(MAX_SIZE);
        const len = 1 + int(rand() < 0.8 ? 4096 : 200_000);
        const data = Buffer.alloc(len);
        const salt = int(256);
        for (let i = 0; i < len; i++) data[i] = (salt + i * 13 + (i >> 8)) & 0xff;
        log.push(`${op}: write ${off} +${len}`);
        await kf.write(data, 0, len, off);
        await rf.write(data, 0, len, off);
      } else if (r < 0.75) {
        const off = int(MAX_SIZE);
        const len = 1 + int(150_000);
        log.push(`${op}: read ${off} +${len}`);
        const a = Buffer.alloc(len);
        const b = Buffer.alloc(len);
        const [ra, rb] = await Promise.all([kf.read(a, 0, len, off), rf.read(b, 0, len, off)]);
        reads++;
        if (ra.bytesRead !== rb.bytesRead || !a.equals(b)) {
          throw new Error(`read ${off} +${len} differs (kurve ${ra.bytesRead} bytes, ref ${rb.bytesRead}); last ops:\n${log.slice(-10).join('\n')}`);
        }
      } else if (r < 0.83) {
        const size = int(MAX_SIZE);
        log.push(`${op}: truncate ${size}`);
        await kf.truncate(size);
        await rf.truncate(size);
      } else if (r < 0.89) {
        log.push(`${op}: fsync`);
        await kf.sync();
      } else if (r < 0.96) {
        log.push(`${op}: close+reopen`);
        await kf.close();
        await rf.close();
        const mode = rand() < truncReopen ? 'w+' : 'r+';
        if (mode === 'w+') log.push(`${op}: (reopened with O_TRUNC)`);
        kf = await fsp.open(kp, mode);
        rf = await fsp.open(rp, mode);
      } else {
        log.push(`${op}: compare whole files`);
        await compareAll(`op ${op}`);
      }
    }
    await kf.close();
    await rf.close();
    await compareAll('the last close');
    expect(reads).toBeGreaterThan(OPS / 5);
    expect(fs.statSync(rp).size).toBe((await fsp.stat(kp)).size);
  }, 240_000);
});
