// Crash-test child (run by spawnWrittenChild, not by jest): opens an lmdb engine in 'written'
// durability mode with a long commit interval, creates files f0, f1, ... one at a time through the
// Namespace and prints "acked <i> <ino>" (synchronously) after each acknowledgement, until killed.
import * as fs from 'node:fs';
import { spawn, ChildProcess } from 'node:child_process';
import * as path from 'node:path';

const HOOK = `
const fs = require('node:fs');
const swc = require('@swc/core');
require.extensions['.ts'] = (m, file) => m._compile(swc.transformSync(fs.readFileSync(file, 'utf8'), {
  filename: file, module: { type: 'commonjs' }, jsc: { target: 'es2022', parser: { syntax: 'typescript' } },
}).code, file);
require(process.argv[1]).main(process.argv[2], Number(process.argv[3]));
`;

/** Spawns this file as a node child (TypeScript compiled on load by swc). */
export function spawnWrittenChild(dir: string, commitIntervalMs: number): ChildProcess {
  return spawn(process.execPath, ['-e', HOOK, __filename, dir, String(commitIntervalMs)], {
    cwd: path.resolve(__dirname, '..', '..'),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export async function main(dir: string, commitIntervalMs: number): Promise<void> {
  const { LmdbEngine } = await import('../../src/metaserver/engines/lmdb');
  const { Namespace } = await import('../../src/metaserver/namespace');
  const engine = new LmdbEngine({ path: dir, durability: 'written', commitIntervalMs });
  const ns = await Namespace.open(engine, { runGc: false });
  await ns.createFs(1);
  fs.writeSync(1, 'ready\n');
  for (let i = 0; ; i++) {
    const a = await ns.mknod(1, 1, Buffer.from(`f${i}`), 0o100644, 0, { uid: 0, gid: 0 });
    fs.writeSync(1, `acked ${i} ${a.ino}\n`);
  }
}
