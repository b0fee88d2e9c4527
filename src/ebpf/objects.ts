// Locates the compiled BPF objects (bpf/*.bpf.o, built by `make -C bpf`) from src/ or dist/src/.
import * as fs from 'node:fs';
import * as path from 'node:path';

export function bpfObjectDir(): string {
  if (process.env.KURVE_BPF_OBJ_DIR) return process.env.KURVE_BPF_OBJ_DIR;
  for (let d = __dirname; d !== path.dirname(d); d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'bpf', 'Makefile'))) return path.join(d, 'bpf');
  }
  throw new Error('cannot find the bpf/ directory with the compiled objects (set KURVE_BPF_OBJ_DIR)');
}

/** Path of bpf/<name>.bpf.o, with a clear error when the build has not produced it. */
export function bpfObjectPath(name: string): string {
  const p = path.join(bpfObjectDir(), `${name}.bpf.o`);
  if (!fs.existsSync(p)) throw new Error(`${p} is missing: build it with \`make -C ${path.dirname(p)}\` (needs clang and bpftool)`);
  return p;
}
