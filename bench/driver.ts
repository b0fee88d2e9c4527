// The workload driver: runs one measured loop in its own process (never the daemon's, never the
// harness's) and prints {ops, bytes, seconds} as JSON. Usage: node driver.js OP '{"json":"args"}'
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface DriverResult {
  readonly ops: number;
  readonly bytes: number;
  readonly seconds: number;
  /** Operations of the untimed warm-up (jobs that have one), for cross-checks against counters. */
  readonly warmupOps?: number;
}

export type DriverJob =
  | { op: 'stat'; file: string; seconds: number; warmupSeconds?: number }
  | { op: 'fstat'; file: string; seconds: number; warmupSeconds?: number }
  | { op: 'read'; file: string; blockSize: number; warm: boolean; direct?: boolean }
  | { op: 'write'; file: string; size: number; blockSize: number; fsync: boolean }
  | { op: 'create'; dir: string; count: number; prefix: string; maxSeconds?: number };

const now = (): number => Number(process.hrtime.bigint()) / 1e9;

function statLoop(file: string, seconds: number): DriverResult {
  // Check the clock every 256 calls: cheap against a ~1 µs stat, fine-grained enough to stop on time.
  const start = now();
  const end = start + seconds;
  let ops = 0;
  let t = start;
  while (t < end) {
    for (let i = 0; i < 256; i++) fs.statSync(file);
    ops += 256;
    t = now();
  }
  return { ops, bytes: 0, seconds: t - start };
}

/**
 * fstat(2) of one open fd in a loop: no path walk, so with attr timeout 0 each call is exactly one
 * GETATTR round trip to a FUSE daemon (a stat(2) costs LOOKUP + GETATTR + the root's GETATTR).
 */
function fstatLoop(file: string, seconds: number, warmupSeconds = 0): DriverResult {
  const fd = fs.openSync(file, fs.constants.O_RDONLY);
  try {
    const warm = warmupSeconds > 0 ? timedLoop(() => fs.fstatSync(fd), warmupSeconds) : undefined;
    return { ...timedLoop(() => fs.fstatSync(fd), seconds), warmupOps: warm?.ops ?? 0 };
  } finally {
    fs.closeSync(fd);
  }
}

function timedLoop(fn: () => unknown, seconds: number): DriverResult {
  const start = now();
  const end = start + seconds;
  let ops = 0;
  let t = start;
  while (t < end) {
    for (let i = 0; i < 256; i++) fn();
    ops += 256;
    t = now();
  }
  return { ops, bytes: 0, seconds: t - start };
}

/** Reads the whole file; `direct` (O_DIRECT) makes a FUSE file system serve every READ itself. */
function readAll(file: string, blockSize: number, direct = false): DriverResult {
  const buf = Buffer.allocUnsafe(blockSize);
  const start = now();
  const fd = fs.openSync(file, fs.constants.O_RDONLY | (direct ? fs.constants.O_DIRECT : 0));
  let bytes = 0;
  let ops = 0;
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, blockSize, null);
      if (n <= 0) break;
      bytes += n;
      ops++;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { ops, bytes, seconds: now() - start };
}

function writeAll(file: string, size: number, blockSize: number, sync: boolean): DriverResult {
  const buf = Buffer.alloc(blockSize);
  // Non-zero, non-repeating-per-block content so nothing can dedupe or treat it as a hole.
  for (let i = 0; i < blockSize; i += 8) buf.writeUInt32LE((i * 2654435761) >>> 0, i);
  const start = now();
  const fd = fs.openSync(file, 'w');
  let bytes = 0;
  let ops = 0;
  try {
    while (bytes < size) {
      buf.writeUInt32LE(ops, 0);
      bytes += fs.writeSync(fd, buf, 0, Math.min(blockSize, size - bytes));
      ops++;
    }
    if (sync) fs.fsyncSync(fd);
  } finally {
    // close is inside the timing: a FUSE client may upload on close (close-to-open consistency).
    fs.closeSync(fd);
  }
  return { ops, bytes, seconds: now() - start };
}

/** Creates up to `count` files, stopping early after `maxSeconds` (slow systems stay bounded). */
function createFiles(dir: string, count: number, prefix: string, maxSeconds = Infinity): DriverResult {
  const flags = fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY;
  const start = now();
  const end = start + maxSeconds;
  let i = 0;
  for (; i < count; i++) {
    fs.closeSync(fs.openSync(path.join(dir, `${prefix}${i}`), flags, 0o644));
    if ((i & 63) === 63 && now() > end) {
      i++;
      break;
    }
  }
  return { ops: i, bytes: 0, seconds: now() - start };
}

export function runJob(job: DriverJob): DriverResult {
  switch (job.op) {
    case 'stat':
      // An unmeasured warm-up first: the daemon's JIT and caches settle before the clock starts.
      if (job.warmupSeconds) statLoop(job.file, job.warmupSeconds);
      return statLoop(job.file, job.seconds);
    case 'fstat': return fstatLoop(job.file, job.seconds, job.warmupSeconds);
    case 'read':
      if (job.warm) readAll(job.file, job.blockSize, job.direct);
      return readAll(job.file, job.blockSize, job.direct);
    case 'write': return writeAll(job.file, job.size, job.blockSize, job.fsync);
    case 'create': return createFiles(job.dir, job.count, job.prefix, job.maxSeconds);
  }
}

if (require.main === module) {
  try {
    const job = JSON.parse(process.argv[2] ?? '{}') as DriverJob;
    process.stdout.write(JSON.stringify(runJob(job)) + '\n');
  } catch (err) {
    process.stderr.write(`driver: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
