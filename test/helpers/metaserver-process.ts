// Runs `kurve metaserver` as a child process (the built CLI in dist/) for crash tests: start on a
// free port, wait for its "listening on" line, SIGKILL or SIGTERM it, always bounded in time.
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const REPO = path.resolve(__dirname, '..', '..');
export const CLI = path.join(REPO, 'dist', 'src', 'cli', 'main.js');

function newestMtime(dir: string, ext: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p, ext));
    else if (e.name.endsWith(ext)) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

/** Builds dist/ unless it is newer than every source file (CI builds before jest runs). */
export function ensureBuilt(): void {
  const built = fs.existsSync(CLI) ? newestMtime(path.join(REPO, 'dist', 'src'), '.js') : 0;
  if (built > 0 && built >= newestMtime(path.join(REPO, 'src'), '.ts')) return;
  const r = spawnSync('bash', [path.join(REPO, 'scripts', 'build.sh')], { cwd: REPO, encoding: 'utf8', timeout: 240_000 });
  if (r.status !== 0) throw new Error(`build failed: ${r.stderr || r.stdout}`);
}

export interface MetaserverProcess {
  readonly child: ChildProcess;
  readonly address: string;
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

export async function spawnMetaserver(args: string[], timeoutMs = 15_000): Promise<MetaserverProcess> {
  const child = spawn(process.execPath, [CLI, 'metaserver', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`metaserver did not start in ${timeoutMs} ms: ${err}`));
    }, timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /metaserver listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`metaserver exited with ${code}: ${err}`));
    });
  });
  return {
    child,
    address,
    kill: async (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      try {
        return await exited;
      } finally {
        clearTimeout(t);
      }
    },
  };
}

/** `kurve fsck --data DIR --json`, parsed. */
export function runFsck(dir: string, repair = false): { status: number | null; report: { issues: Array<{ kind: string; detail: string }>; inodes: number; dentries: number } } {
  const r = spawnSync(process.execPath, [CLI, 'fsck', '--data', dir, '--json', ...(repair ? ['--repair'] : [])], { encoding: 'utf8', timeout: 60_000 });
  // The report is pretty-printed; log lines (if any) are one-line JSON.
  const json = r.stdout.slice(r.stdout.indexOf('{\n'));
  return { status: r.status, report: JSON.parse(json) };
}
