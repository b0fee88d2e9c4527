// File system benchmarks (issue 3): the same driver jobs against ext4 (loop image), the
// fuse-native passthrough baseline and a `kurve up` mount, measured in one run.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { BenchEnv } from './env';
import { Benchmark, Cell, cell, Row } from './harness';
import { median } from './util';

const execFileP = promisify(execFile);
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

type System = 'ext4' | 'fuse-native' | 'kurve';
const SYSTEMS: System[] = ['ext4', 'fuse-native', 'kurve'];

interface SystemOpts {
  readonly timeoutsZero?: boolean;
}

/** A working dir `name` on a system (created through the mount for the FUSE systems). */
async function dirOn(env: BenchEnv, system: System, name: string, opts: SystemOpts = {}): Promise<string> {
  let root: string;
  if (system === 'ext4') root = await env.ext4Dir('ext4-work');
  else if (system === 'fuse-native') root = await env.fuseNative(opts);
  else root = (await env.kurve(opts)).mountpoint;
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** Measures `fn` on each system; a failure on one becomes that system's cell. */
async function perSystem(env: BenchEnv, fn: (s: System) => Promise<Cell | number>): Promise<Record<System, Cell>> {
  const out = {} as Record<System, Cell>;
  for (const s of SYSTEMS) {
    out[s] = await cell(() => fn(s));
    env.log(`    ${s}: ${JSON.stringify(out[s])}`);
  }
  return out;
}

/**
 * Like perSystem, but `rounds` times in a rotating order, keeping each system's median: on a
 * shared, noisy machine this spreads background load over all systems instead of one.
 */
async function perSystemRounds(env: BenchEnv, rounds: number, fn: (s: System) => Promise<number>): Promise<Record<System, Cell>> {
  const values: Record<System, number[]> = { ext4: [], 'fuse-native': [], kurve: [] };
  const failed = {} as Record<System, Cell>;
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < SYSTEMS.length; i++) {
      const s = SYSTEMS[(i + r) % SYSTEMS.length];
      if (failed[s]) continue;
      const c = await cell(() => fn(s));
      if ('value' in c) values[s].push(c.value);
      else failed[s] = c;
    }
  }
  const out = {} as Record<System, Cell>;
  for (const s of SYSTEMS) {
    out[s] = failed[s] ?? { value: median(values[s]) };
    env.log(`    ${s}: ${JSON.stringify(out[s])} from ${values[s].map((v) => v.toPrecision(3)).join(', ')}`);
  }
  return out;
}

const cells = (c: Record<System, Cell>): Pick<Row, 'ext4' | 'baseline' | 'kurve'> => ({ ext4: c.ext4, baseline: c['fuse-native'], kurve: c.kurve });

const statHot: Benchmark = {
  name: 'stat-hot',
  description: 'stat(2) of one hot file in a loop (kernel attribute cache on); median of rotating rounds',
  async run(env) {
    const seconds = env.pick(1, 0.5);
    const c = await perSystemRounds(env, env.pick(3, 2), async (s) => {
      const file = path.join(await dirOn(env, s, 'stat'), 'hot');
      if (!fs.existsSync(file)) fs.writeFileSync(file, 'x');
      fs.statSync(file);
      const r = await env.drive({ op: 'stat', file, seconds, warmupSeconds: 0.5 });
      return r.ops / r.seconds;
    });
    return [{ name: 'stat of a hot file', unit: 'ops/s', higherIsBetter: true, ...cells(c), target: { kind: 'ratio-ext4', bound: 'min', value: 0.8 } }];
  },
};

/** A counter of a `kurve up` daemon's /metrics, summed over the label sets matching `labels`. */
async function kurveCounter(metricsAddr: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`http://${metricsAddr}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) && line.includes(labels)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

const getattrT0: Benchmark = {
  name: 'getattr-t0',
  description: 'GETATTR round trips/s: fstat(2) of an open file in a loop with kernel attr/entry timeouts 0, one GETATTR each '
    + '(Kurve: checked against the daemon\'s GETATTR counter; ext4 shown for scale); median of rotating rounds',
  async run(env) {
    const seconds = env.pick(1, 0.5);
    const counted: string[] = [];
    const c = await perSystemRounds(env, env.pick(3, 2), async (s) => {
      const file = path.join(await dirOn(env, s, 'getattr', { timeoutsZero: true }), 'f');
      if (!fs.existsSync(file)) fs.writeFileSync(file, 'x');
      const metrics = s === 'kurve' ? (await env.kurve({ timeoutsZero: true })).metrics : undefined;
      const before = metrics ? await kurveCounter(metrics, 'kurve_fuse_requests_total', 'op="GETATTR"') : 0;
      const r = await env.drive({ op: 'fstat', file, seconds, warmupSeconds: 0.5 });
      if (metrics) {
        // The row must measure round trips: the daemon saw one GETATTR per fstat (the driver's
        // open adds a few).
        const got = (await kurveCounter(metrics, 'kurve_fuse_requests_total', 'op="GETATTR"')) - before;
        const calls = r.ops + (r.warmupOps ?? 0);
        counted.push(`${got}/${calls}`);
        if (got < calls || got > calls + 16) throw new Error(`the daemon counted ${got} GETATTR for ${calls} fstat calls: not one round trip each`);
      }
      return r.ops / r.seconds;
    });
    return [{
      name: 'GETATTR round trips, timeouts 0', unit: 'ops/s', higherIsBetter: true, ...cells(c),
      target: { kind: 'absolute', bound: 'min', value: 40_000 },
      notes: `fstat loop, one GETATTR per call; Kurve daemon GETATTR count / fstat calls per round: ${counted.join(', ')}; `
        + 'fuse-native gets attr_timeout=0,entry_timeout=0 as strings (its numeric 0 is dropped)',
    }];
  },
};

/** Where seq-write leaves its file, so seq-read can reuse it. */
async function seqFile(env: BenchEnv, s: System): Promise<string> {
  return path.join(await dirOn(env, s, 'seq'), 'data.bin');
}

const seqWrite: Benchmark = {
  name: 'seq-write',
  description: 'sequential write, 1 MiB blocks, timed through close (Kurve uploads on close); each system starts after a sync (untimed)',
  async run(env) {
    const size = env.pick(GiB, 256 * MiB);
    const c = await perSystem(env, async (s) => {
      const file = await seqFile(env, s);
      // The previous system's gigabytes may still be dirty: without a sync, the kernel throttles
      // whoever writes next to the disk's writeback rate, i.e. the order of the rows decides.
      await execFileP('sync');
      const r = await env.drive({ op: 'write', file, size, blockSize: MiB, fsync: false });
      return r.bytes / r.seconds / 1e9;
    });
    return [{ name: `sequential write ${size / MiB} MiB`, unit: 'GB/s', higherIsBetter: true, ...cells(c), target: { kind: 'absolute', bound: 'min', value: 1 } }];
  },
};

const seqRead: Benchmark = {
  name: 'seq-read',
  description: 'sequential read of a cached file, 1 MiB blocks (one untimed read warms the caches); median of rotating rounds',
  async run(env) {
    const size = env.pick(GiB, 256 * MiB);
    const c = await perSystemRounds(env, env.pick(3, 2), async (s) => {
      const file = await seqFile(env, s);
      if (!fs.existsSync(file) || fs.statSync(file).size !== size) {
        await env.drive({ op: 'write', file, size, blockSize: MiB, fsync: false });
      }
      const r = await env.drive({ op: 'read', file, blockSize: MiB, warm: true });
      if (r.bytes !== size) throw new Error(`read ${r.bytes} bytes, expected ${size}`);
      return r.bytes / r.seconds / 1e9;
    });
    return [{ name: `sequential read ${size / MiB} MiB, cached`, unit: 'GB/s', higherIsBetter: true, ...cells(c), target: { kind: 'ratio-ext4', bound: 'min', value: 0.9 } }];
  },
};

const copy: Benchmark = {
  name: 'copy',
  description: '`cp` of the 1 GiB seq-write file to a new file on the same system (coreutils cp: copy_file_range, else read/write), timed through its close (Kurve uploads the copy)',
  async run(env) {
    const size = env.pick(GiB, 256 * MiB);
    const c = await perSystem(env, async (s) => {
      const file = await seqFile(env, s);
      if (!fs.existsSync(file) || fs.statSync(file).size !== size) {
        await env.drive({ op: 'write', file, size, blockSize: MiB, fsync: false });
      }
      const dst = `${file}.copy`;
      fs.rmSync(dst, { force: true });
      await execFileP('sync');
      const t0 = process.hrtime.bigint();
      await execFileP('cp', [file, dst]);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (fs.statSync(dst).size !== size) throw new Error(`the copy has ${fs.statSync(dst).size} bytes, expected ${size}`);
      fs.rmSync(dst, { force: true });
      return size / seconds / 1e9;
    });
    return [{ name: `cp of a ${size / MiB} MiB file`, unit: 'GB/s', higherIsBetter: true, ...cells(c) }];
  },
};

/** The create benchmark's directory; ls-l lists it. */
const manyDir = (env: BenchEnv, s: System): Promise<string> => dirOn(env, s, 'many');

const creates: Benchmark = {
  name: 'create',
  description: 'file creates (open O_CREAT|O_EXCL + close) into one directory, after an untimed warm-up of creates in another directory (every system)',
  async run(env) {
    const count = env.pick(10_000, 2_000);
    const warmup = env.pick(5_000, 1_000);
    const c = await perSystem(env, async (s) => {
      // A long-running daemon is measured warm, as stat-hot and seq-read are: the warm-up pays
      // for the JIT and for growing the heap and the namespace store. Its own rate is kept as a
      // note, so the cold cost stays visible.
      const w = await env.drive({ op: 'create', dir: await dirOn(env, s, `warm-${Date.now().toString(36)}`), count: warmup, prefix: 'w', maxSeconds: env.pick(30, 8) });
      const dir = await manyDir(env, s);
      const prefix = `f${Date.now().toString(36)}-`;
      const r = await env.drive({ op: 'create', dir, count, prefix, maxSeconds: env.pick(30, 8) });
      const partial = r.ops < count ? `; ${r.ops} files in ${r.seconds.toFixed(0)} s` : '';
      return { value: r.ops / r.seconds, note: `warm-up: ${w.ops} at ${Math.round(w.ops / w.seconds)}/s${partial}` };
    });
    return [{ name: `create ${count} files`, unit: 'files/s', higherIsBetter: true, ...cells(c), target: { kind: 'absolute', bound: 'min', value: 5_000 } }];
  },
};

const lsLong: Benchmark = {
  name: 'ls-l',
  description: '`ls -l` of a directory of 10,000 files (median of 3 after one warm-up)',
  async run(env) {
    const count = env.pick(10_000, 2_000);
    const c = await perSystem(env, async (s) => {
      const dir = await manyDir(env, s);
      const have = fs.readdirSync(dir).length;
      if (have < count) {
        const limit = env.pick(150, 40);
        const r = await env.drive({ op: 'create', dir, count: count - have, prefix: `ls${Date.now().toString(36)}-`, maxSeconds: limit });
        if (have + r.ops < count) throw new Error(`only ${have + r.ops} of ${count} files could be created in ${limit} s`);
      }
      const times: number[] = [];
      for (let i = 0; i < 4; i++) {
        const t0 = process.hrtime.bigint();
        const { stdout } = await execFileP('ls', ['-l', dir], { maxBuffer: 64 * MiB });
        const t = Number(process.hrtime.bigint() - t0) / 1e9;
        const lines = stdout.split('\n').length - 2;
        if (lines < count) throw new Error(`ls -l listed ${lines} entries, expected ≥ ${count}`);
        if (i > 0) times.push(t);
      }
      return median(times);
    });
    return [{ name: `ls -l of ${count} files`, unit: 's', higherIsBetter: false, ...cells(c), target: { kind: 'ratio-ext4', bound: 'max', value: 2 } }];
  },
};

/** A source tree of small files like a package directory: `dirs` directories, sizes 1-40 KB. */
function smallTree(root: string, dirs: number, perDir: number): number {
  fs.mkdirSync(root, { recursive: true });
  let bytes = 0;
  for (let d = 0; d < dirs; d++) {
    const dir = path.join(root, `pkg${d}`, 'lib');
    fs.mkdirSync(dir, { recursive: true });
    for (let f = 0; f < perDir; f++) {
      const size = 1000 + ((d * 7919 + f * 104729) % 39_000);
      const buf = Buffer.alloc(size, 97 + ((d + f) % 26));
      fs.writeFileSync(path.join(dir, `m${f}.js`), buf);
      bytes += size;
    }
  }
  return bytes;
}

const smallFiles: Benchmark = {
  name: 'small-files',
  description: '`cp -a` of a tree of small files (1-40 KB, 50 per directory) from ext4 onto each system, `cat` of every copied file (warm: the page cache and dentries as cp left them), then `rm -rf` of the copy; no target (reported as found)',
  async run(env) {
    const dirs = env.pick(60, 20);
    const perDir = 50;
    const files = dirs * perDir;
    const src = path.join(await env.ext4Dir('small-src'), 'tree');
    if (!fs.existsSync(src)) smallTree(src, dirs, perDir);
    const copy: Record<System, Cell> = {} as Record<System, Cell>;
    const read: Record<System, Cell> = {} as Record<System, Cell>;
    const remove: Record<System, Cell> = {} as Record<System, Cell>;
    for (const s of SYSTEMS) {
      const dst = path.join(await dirOn(env, s, 'small'), `copy-${Date.now().toString(36)}`);
      copy[s] = await cell(async () => {
        const t0 = process.hrtime.bigint();
        await execFileP('cp', ['-a', src, dst], { maxBuffer: MiB });
        return files / (Number(process.hrtime.bigint() - t0) / 1e9);
      });
      read[s] = await cell(async () => {
        const t0 = process.hrtime.bigint();
        await execFileP('sh', ['-c', 'find "$1" -type f -print0 | xargs -0 cat > /dev/null', 'sh', dst]);
        return files / (Number(process.hrtime.bigint() - t0) / 1e9);
      });
      remove[s] = await cell(async () => {
        const t0 = process.hrtime.bigint();
        await execFileP('rm', ['-rf', dst]);
        return files / (Number(process.hrtime.bigint() - t0) / 1e9);
      });
      env.log(`    ${s}: cp -a ${JSON.stringify(copy[s])}, cat ${JSON.stringify(read[s])}, rm -rf ${JSON.stringify(remove[s])}`);
    }
    const c = (r: Record<System, Cell>): Pick<Row, 'ext4' | 'baseline' | 'kurve'> => ({ ext4: r.ext4, baseline: r['fuse-native'], kurve: r.kurve });
    return [
      { name: `cp -a of ${files} small files`, unit: 'files/s', higherIsBetter: true, ...c(copy) },
      { name: `cat of ${files} small files`, unit: 'files/s', higherIsBetter: true, ...c(read) },
      { name: `rm -rf of ${files} small files`, unit: 'files/s', higherIsBetter: true, ...c(remove) },
    ];
  },
};

export const fsBenchmarks: Benchmark[] = [statHot, getattrT0, seqWrite, seqRead, copy, creates, lsLong, smallFiles];
