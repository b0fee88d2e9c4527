// fuse_trace overhead measured in ONE process on ONE mount: a MemFs mount (attr timeout 0) served
// by this process, load from child processes (a C stat loop -> GETATTR round trips; a C O_DIRECT
// reader -> daemon-served 1 MiB reads), alternating short rounds with the tracer attached
// (FuseTracer.open + addConnection) and detached (close). The median of the per-pair ratios
// cancels slow drifts of the machine, which separate daemons and data dirs do not. Used by the
// bench's trace-overhead row and by the test/ebpf-overhead.ts command line.
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { FuseTracer } from '../src/ebpf/fuse-tracer';
import { MemFs } from '../test/helpers/memfs';
import { mountTemp } from '../test/helpers/mount';

const run = promisify(execFile);

const READER_C = `/* O_DIRECT reader: 1 MiB preads over FILE, wrapping, for SECONDS -> bytes read. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
  int fd = open(argv[1], O_RDONLY | O_DIRECT);
  if (fd < 0) { perror("open"); return 1; }
  long size = atol(argv[2]), chunk = 1 << 20, off = 0, total = 0;
  void *buf;
  if (posix_memalign(&buf, 4096, chunk)) return 1;
  double end = now() + atof(argv[3]);
  while (now() < end) {
    ssize_t n = pread(fd, buf, chunk, off);
    if (n <= 0) { perror("pread"); return 1; }
    total += n; off += n; if (off >= size) off = 0;
  }
  printf("%ld\\n", total);
  return 0;
}
`;

export type Load = 'getattr' | 'read';

export interface OverheadOptions {
  readonly rounds: number;
  readonly seconds: number;
  /** Extra tracer objects, each a variant measured in the same alternation. */
  readonly objects?: readonly string[];
  /** Pin the load processes to this CPU (taskset). */
  readonly clientCpu?: string;
  readonly progress?: (line: string) => void;
}

/** Per variant ('none', 'fuse_trace', then each object's file name): the per-round figures per load. */
export async function measureTraceOverhead(o: OverheadOptions): Promise<Map<string, Record<Load, number[]>>> {
  const { rounds, seconds } = o;
  const variants: Array<{ name: string; objectPath?: string }> = [{ name: 'none' }, { name: 'fuse_trace' }];
  for (const p of o.objects ?? []) variants.push({ name: path.basename(p), objectPath: p });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-ovh-'));
  const m = await mountTemp(new MemFs());
  try {
    const statSrc = path.resolve(__dirname, '../../bench/fuse-loop/stat-loop.c');
    const statSrcAlt = path.resolve('bench/fuse-loop/stat-loop.c'); // run from the repo root
    execFileSync('cc', ['-O2', '-o', path.join(work, 'stat-loop'), fs.existsSync(statSrc) ? statSrc : statSrcAlt]);
    fs.writeFileSync(path.join(work, 'reader.c'), READER_C);
    execFileSync('cc', ['-O2', '-o', path.join(work, 'reader'), path.join(work, 'reader.c')]);
    const size = 64 << 20;
    await fsp.writeFile(m.p('data'), Buffer.alloc(size, 7));
    const conn = m.session.connectionId;

    const clientCpu = o.clientCpu ?? '';
    const runLoad = (file: string, args: string[]) =>
      clientCpu ? run('taskset', ['-c', clientCpu, file, ...args], { timeout: 30_000 }) : run(file, args, { timeout: 30_000 });
    type Load = 'getattr' | 'read';
    const loads: Record<Load, () => Promise<number>> = {
      getattr: async () => Number((await runLoad(path.join(work, 'stat-loop'), [m.p('data'), String(seconds)])).stdout) / seconds,
      read: async () => Number((await runLoad(path.join(work, 'reader'), [m.p('data'), String(size), String(seconds)])).stdout) / seconds / 1e9,
    };
    const results = new Map<string, Record<Load, number[]>>();
    for (const v of variants) results.set(v.name, { getattr: [], read: [] });

    for (let r = 0; r < rounds; r++) {
      // Rotate the order each round so no variant always runs first (warm-up) or last.
      const order = variants.map((_, i) => variants[(i + r) % variants.length]);
      if (r % 2) order.reverse();
      for (const v of order) {
        let tracer: FuseTracer | undefined;
        if (v.name !== 'none') {
          tracer = FuseTracer.open(v.objectPath ? { objectPath: v.objectPath } : {});
          tracer.addConnection(conn);
        }
        try {
          for (const load of ['getattr', 'read'] as Load[]) results.get(v.name)![load].push(await loads[load]());
          if (tracer) {
            const s = tracer.snapshot(conn).find((x) => x.op === 'GETATTR');
            // A stripped-down experimental object may count nothing on purpose: only warn for those.
            if (!s || s.count === 0) {
              if (!v.objectPath) throw new Error(`${v.name}: the tracer counted no GETATTR`);
              if (r === 0) o.progress?.(`${v.name}: counted no GETATTR`);
            }
          }
        } finally {
          tracer?.close();
        }
      }
      o.progress?.(`round ${r + 1}/${rounds}`);
    }

    return results;
  } finally {
    await m.cleanup();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

