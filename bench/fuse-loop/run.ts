// Request-loop benchmark: GETATTR round trips per second through Kurve's FUSE session with
// attr_valid = 0 (every stat reaches the daemon), driven by 1 and 2 client processes running a
// C stat loop (a Node fallback when no C compiler is present). Each round also runs the same
// file system served by a single-threaded C daemon (ref-daemon.c), interleaved, so the ratio
// holds on a noisy machine where absolute figures do not. Figures: docs/fuse-loop.md.
//   node dist/bench/fuse-loop/run.js [--seconds 3] [--rounds 3]
import { execFile, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mount } from '../../src/fuse/protocol/mount';
import type { AttrOut, EntryOut, FuseAttr, RawFileSystem, RequestContext } from '../../src/fuse/protocol/raw-fs';
import type { FuseSession } from '../../src/fuse/protocol/session';
import { errnoReply } from '../../src/fuse/protocol/raw-fs';
import { Errno } from '../../src/common/errno';

const T0 = { sec: 1_700_000_000, nsec: 0 };
const ROOT: FuseAttr = { ino: 1, size: 0, atime: T0, mtime: T0, ctime: T0, mode: 0o040755, nlink: 2, uid: 0, gid: 0 };
const FILE: FuseAttr = { ino: 2, size: 4096, atime: T0, mtime: T0, ctime: T0, mode: 0o100644, nlink: 1, uid: 0, gid: 0 };

/** The smallest useful file system: one file; the name is cached, attributes never are. */
class OneFileFs implements RawFileSystem {
  lookup(_ctx: RequestContext, name: Buffer): EntryOut | ReturnType<typeof errnoReply> {
    if (name.toString() !== 'f') return errnoReply(Errno.ENOENT);
    return { nodeid: 2, generation: 0, entryValid: 3600, attrValid: 0, attr: FILE };
  }
  forget(): void {}
  getattr(ctx: RequestContext): AttrOut {
    return { attrValid: 0, attr: ctx.nodeid === 1 ? ROOT : FILE };
  }
}

/** The C sources sit next to run.ts; from dist/bench/fuse-loop, look in the source tree. */
function cSource(name: string): string {
  const here = path.join(__dirname, name);
  return fs.existsSync(here) ? here : path.resolve(__dirname, '../../../bench/fuse-loop', name);
}

function statLoopCommand(workDir: string): (target: string, seconds: number) => [string, string[]] {
  try {
    const bin = path.join(workDir, 'stat-loop');
    execFileSync('cc', ['-O2', '-o', bin, cSource('stat-loop.c')], { stdio: 'pipe' });
    return (target, seconds) => [bin, [target, String(seconds)]];
  } catch {
    const js = 'const fs=require("fs");const [p,s]=process.argv.slice(1);const end=Date.now()+s*1000;let n=0;while(Date.now()<end){for(let i=0;i<64;i++){fs.statSync(p);n++}}console.log(n)';
    return (target, seconds) => [process.execPath, ['-e', js, target, String(seconds)]];
  }
}

/** Starts the C reference daemon on mnt; resolves with a stop function once it answered INIT. */
async function startRefDaemon(workDir: string, mnt: string): Promise<(() => Promise<void>) | undefined> {
  const bin = path.join(workDir, 'ref-daemon');
  try {
    execFileSync('cc', ['-O2', '-o', bin, cSource('ref-daemon.c')], { stdio: 'pipe' });
  } catch {
    return undefined;
  }
  const child = spawn(bin, [mnt], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('ref-daemon: no INIT within 10 s')), 10_000);
    child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) { clearTimeout(timer); resolve(); } });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`ref-daemon exited with ${code}`)); });
  });
  return async () => {
    child.kill('SIGTERM');
    await exited;
  };
}

function runClient(cmd: [string, string[]]): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile(cmd[0], cmd[1], { timeout: 60_000 }, (err, stdout) => (err ? reject(err) : resolve(Number(stdout.trim()))));
  });
}

export interface LoopResult {
  clients: number;
  /** GETATTR/s per round for each daemon: Kurve with each loop driver, and the C reference. */
  opsPerSec: Record<string, number[]>;
  /** Kurve daemon CPU (user + sys) per GETATTR per driver, µs: steadier than ops/s on a noisy machine. */
  cpuMicrosPerOp: Record<string, number>;
}

export async function runFuseLoopBench(opts: { seconds?: number; rounds?: number } = {}): Promise<LoopResult[]> {
  const seconds = opts.seconds ?? 3;
  const rounds = opts.rounds ?? 3;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-loop-'));
  const cmdFor = statLoopCommand(dir);
  const sessions: Array<{ name: string; session: FuseSession }> = [];
  let stopRef: (() => Promise<void>) | undefined;
  const results: LoopResult[] = [];
  try {
    for (const loop of ['uv-poll', 'epoll'] as const) {
      const mnt = path.join(dir, loop);
      fs.mkdirSync(mnt);
      sessions.push({ name: `kurve ${loop}`, session: await mount(new OneFileFs(), mnt, { loop }) });
    }
    const refMnt = path.join(dir, 'ref');
    fs.mkdirSync(refMnt);
    stopRef = await startRefDaemon(dir, refMnt);
    for (const clients of [1, 2]) {
      const r: LoopResult = { clients, opsPerSec: {}, cpuMicrosPerOp: {} };
      const clientsOn = async (file: string): Promise<number> => {
        const counts = await Promise.all(Array.from({ length: clients }, () => runClient(cmdFor(file, seconds))));
        return Math.round(counts.reduce((a, b) => a + b, 0) / seconds);
      };
      const cpu: Record<string, { micros: number; ops: number }> = {};
      for (let i = 0; i < rounds; i++) {
        // Interleaved, so load changes hit every daemon alike.
        for (const { name, session } of sessions) {
          const before = session.opCounts().GETATTR ?? 0;
          const cpu0 = process.cpuUsage();
          (r.opsPerSec[name] ??= []).push(await clientsOn(path.join(session.mountpoint, 'f')));
          const used = process.cpuUsage(cpu0);
          const c = (cpu[name] ??= { micros: 0, ops: 0 });
          c.micros += used.user + used.system;
          c.ops += (session.opCounts().GETATTR ?? 0) - before;
        }
        if (stopRef) (r.opsPerSec['C reference'] ??= []).push(await clientsOn(path.join(refMnt, 'f')));
      }
      for (const [name, c] of Object.entries(cpu)) r.cpuMicrosPerOp[name] = Math.round((c.micros / c.ops) * 100) / 100;
      results.push(r);
    }
  } finally {
    for (const { session } of sessions) await session.unmount();
    await stopRef?.();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

if (require.main === module) {
  const arg = (name: string, def: number): number => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : def;
  };
  runFuseLoopBench({ seconds: arg('--seconds', 3), rounds: arg('--rounds', 3) }).then((results) => {
    for (const r of results) {
      console.log(`${r.clients} client(s), GETATTR/s per round:`);
      for (const [name, xs] of Object.entries(r.opsPerSec)) {
        const cpu = r.cpuMicrosPerOp[name] !== undefined ? `  (${r.cpuMicrosPerOp[name]} µs daemon CPU per GETATTR)` : '';
        console.log(`  ${name.padEnd(14)} ${xs.join(', ')}  sum ${sum(xs)}${cpu}`);
      }
    }
  }, (err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
