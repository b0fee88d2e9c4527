// Small helpers shared by the harness, the benchmarks and the observability test: free ports,
// mount table checks, bounded polling, medians.
import * as fs from 'node:fs';
import * as net from 'node:net';

/** A port the kernel just handed out on 127.0.0.1 (closed again, so there is a small race). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Mount points from /proc/self/mounts (octal escapes decoded). */
export function mountPoints(): string[] {
  const text = fs.readFileSync('/proc/self/mounts', 'utf8');
  return text.split('\n').filter(Boolean).map((l) => l.split(' ')[1].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

export function isMounted(dir: string): boolean {
  return mountPoints().includes(dir);
}

export function mountsUnder(dir: string): string[] {
  return mountPoints().filter((m) => m === dir || m.startsWith(dir + '/'));
}

/** Polls `cond` every 50 ms until it is true or `ms` passed; returns whether it became true. */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, everyMs = 50): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() >= end) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
