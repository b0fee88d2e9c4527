// Request-loop benchmark: GETATTR round trips per second through Kurve's FUSE session with
// attr_valid = 0 (every stat reaches the daemon), driven by 1 and 2 client processes running a
// C stat loop (a Node fallback when no C compiler is present). Figures: docs/fuse-loop.md.
//   node dist/bench/fuse-loop/run.js [--seconds 3] [--rounds 3]
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mount } from '../../src/fuse/protocol/mount';
import type { AttrOut, EntryOut, FuseAttr, RawFileSystem, RequestContext } from '../../src/fuse/protocol/raw-fs';
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

function statLoopCommand(workDir: string): (target: string, seconds: number) => [string, string[]] {
  try {
    const bin = path.join(workDir, 'stat-loop');
    execFileSync('cc', ['-O2', '-o', bin, path.join(__dirname, 'stat-loop.c')], { stdio: 'pipe' });
    return (target, seconds) => [bin, [target, String(seconds)]];
  } catch {
    const src = path.join(__dirname, 'stat-loop.c');
    if (!fs.existsSync(src)) throw new Error('stat-loop.c missing');
    const js = 'const fs=require("fs");const [p,s]=process.argv.slice(1);const end=Date.now()+s*1000;let n=0;while(Date.now()<end){for(let i=0;i<64;i++){fs.statSync(p);n++}}console.log(n)';
    return (target, seconds) => [process.execPath, ['-e', js, target, String(seconds)]];
  }
}

function runClient(cmd: [string, string[]]): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile(cmd[0], cmd[1], { timeout: 60_000 }, (err, stdout) => (err ? reject(err) : resolve(Number(stdout.trim()))));
  });
}

export interface LoopResult {
  clients: number;
  opsPerSec: number[];
  getattrs: number;
  /** Daemon CPU (user + sys) per GETATTR, µs: stable on a noisy machine where ops/s is not. */
  cpuMicrosPerOp: number;
}

export async function runFuseLoopBench(opts: { seconds?: number; rounds?: number } = {}): Promise<LoopResult[]> {
  const seconds = opts.seconds ?? 3;
  const rounds = opts.rounds ?? 3;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-loop-'));
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  const cmdFor = statLoopCommand(dir);
  const session = await mount(new OneFileFs(), mnt);
  const results: LoopResult[] = [];
  try {
    const target = path.join(mnt, 'f');
    for (const clients of [1, 2]) {
      const r: LoopResult = { clients, opsPerSec: [], getattrs: 0, cpuMicrosPerOp: 0 };
      const cpu0 = process.cpuUsage();
      for (let i = 0; i < rounds; i++) {
        const before = session.opCounts().GETATTR ?? 0;
        const counts = await Promise.all(Array.from({ length: clients }, () => runClient(cmdFor(target, seconds))));
        const total = counts.reduce((a, b) => a + b, 0);
        r.getattrs += (session.opCounts().GETATTR ?? 0) - before;
        r.opsPerSec.push(Math.round(total / seconds));
      }
      const cpu = process.cpuUsage(cpu0);
      r.cpuMicrosPerOp = Math.round(((cpu.user + cpu.system) / r.getattrs) * 100) / 100;
      results.push(r);
    }
  } finally {
    await session.unmount();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

if (require.main === module) {
  const arg = (name: string, def: number): number => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : def;
  };
  runFuseLoopBench({ seconds: arg('--seconds', 3), rounds: arg('--rounds', 3) }).then((results) => {
    for (const r of results) {
      console.log(`${r.clients} client(s): GETATTR round trips/s per round: ${r.opsPerSec.join(', ')} (daemon saw ${r.getattrs} GETATTRs, ${r.cpuMicrosPerOp} µs daemon CPU each)`);
    }
  }, (err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
