// Network namespaces and cgroups for the eBPF tests: a client namespace and a server namespace
// joined by a veth pair, a blackhole switch (static neighbour entry to a MAC nobody owns), a SYN
// capture on the server side (AF_PACKET through koffi in a child process), and a dedicated cgroup
// v2 directory so sockops programs touch only the test's own connections.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { cgroup2Path } from '../../src/ebpf/features';

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A cgroup v2 directory for the test; close() moves stragglers out and removes it. */
export class TestCgroup {
  readonly path: string;
  constructor(name: string) {
    const root = cgroup2Path();
    if (!root) throw new Error('no cgroup2 mount');
    this.path = path.join(root, name);
    fs.mkdirSync(this.path);
  }
  /** Wraps argv so the command runs inside this cgroup (the shell moves itself, then execs). */
  wrap(argv: string[]): string[] {
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    return ['sh', '-c', `echo $$ > ${q(path.join(this.path, 'cgroup.procs'))} && exec ${argv.map(q).join(' ')}`];
  }
  close(): void {
    if (!fs.existsSync(this.path)) return;
    const root = path.dirname(this.path);
    for (const pid of fs.readFileSync(path.join(this.path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      try {
        fs.writeFileSync(path.join(root, 'cgroup.procs'), pid);
      } catch {
        /* already gone */
      }
    }
    fs.rmdirSync(this.path);
  }
}

export interface ConnectResult {
  readonly connected: boolean;
  readonly error?: string;
  /** CLOCK_MONOTONIC ns when connect() was called. */
  readonly start: bigint;
  /** connect() to the connected event, ms. */
  readonly connectMs?: number;
  readonly sport?: number;
}

export interface SynEvent {
  /** CLOCK_MONOTONIC ns in the capture process (the same clock as process.hrtime in any process). */
  readonly t: bigint;
  readonly sport: number;
  readonly dport: number;
  readonly ack: boolean;
}

// Runs inside the server namespace: reads every frame on one interface and prints a JSON line per
// TCP SYN. Blocking reads are fine in this dedicated process.
const CAPTURE_JS = `
const koffi = require(process.argv[1]);
const libc = koffi.load('libc.so.6');
const socket = libc.func('int socket(int, int, int)');
const bind = libc.func('int bind(int, const void *, uint32_t)');
const recv = libc.func('long recv(int, void *, size_t, int)');
const ifindex = libc.func('unsigned int if_nametoindex(const char *)')(process.argv[2]);
const fd = socket(17, 3, 0x0300); // AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)
if (fd < 0 || !ifindex) { console.error('capture: socket/ifindex failed'); process.exit(1); }
const sll = Buffer.alloc(20); sll.writeUInt16LE(17, 0); sll.writeUInt16BE(3, 2); sll.writeInt32LE(ifindex, 4);
if (bind(fd, sll, 20) !== 0) { console.error('capture: bind failed'); process.exit(1); }
console.log(JSON.stringify({ ready: true }));
const buf = Buffer.alloc(2048);
for (;;) {
  const n = Number(recv(fd, buf, buf.length, 0));
  const t = process.hrtime.bigint();
  const type = buf.readUInt16BE(12);
  let tcp;
  if (type === 0x0800 && n >= 54 && buf[23] === 6) tcp = 14 + (buf[14] & 0xf) * 4;
  else if (type === 0x86dd && n >= 74 && buf[20] === 6) tcp = 54; // no extension headers on a SYN here
  else continue;
  const flags = buf[tcp + 13];
  if (!(flags & 0x02)) continue;
  console.log(JSON.stringify({ t: t.toString(), sport: buf.readUInt16BE(tcp), dport: buf.readUInt16BE(tcp + 2), ack: (flags & 0x10) !== 0 }));
}
`;

// Runs inside the client namespace: one TCP connect, timed with the monotonic clock.
const CONNECT_JS = `
const net = require('net');
const [host, port, timeoutMs] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const t0 = process.hrtime.bigint();
const s = net.connect({ host, port });
const done = (r) => { console.log(JSON.stringify({ ...r, start: t0.toString(), ms: Number(process.hrtime.bigint() - t0) / 1e6 })); s.destroy(); process.exit(0); };
// Send a few bytes and wait for the echo, so the connection yields RTT samples before it ends.
s.on('connect', () => { const ms = Number(process.hrtime.bigint() - t0) / 1e6; s.write('ping'); s.once('data', () => done({ connected: true, sport: s.localPort, connectMs: ms })); });
s.on('error', (e) => done({ connected: false, error: e.code }));
setTimeout(() => done({ connected: false, error: 'timeout' }), timeoutMs);
`;

/**
 * Two namespaces, client (10.x.y.1 on veth "kc") and server (10.x.y.2 on "ks"). The client's
 * neighbour entry for the server is static: blackhole() points it at an unowned MAC (SYNs leave the
 * client and are dropped by the server's NIC), restore() at the real one.
 */
export class NetnsPair {
  readonly client: string;
  readonly server: string;
  readonly clientIp: string;
  readonly serverIp: string;
  readonly subnet: string;
  /** The same pair over IPv6 (fd77:<octet>::1 and ::2), addresses added without DAD. */
  readonly clientIp6: string;
  readonly serverIp6: string;
  readonly subnet6: string;
  private serverMac = '';
  private readonly children = new Set<ChildProcess>();

  /** `octet` picks the 10.<octet>.77.0/24 subnet; by default derived from the tag, so concurrent
   * pairs (tests, benchmarks) rarely share one: BPF statistics are per destination prefix. */
  constructor(tag: string, octet = 100 + ([...tag].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7) % 150)) {
    this.client = `kc-${tag}`;
    this.server = `ks-${tag}`;
    this.subnet = `10.${octet}.77.0/24`;
    this.clientIp = `10.${octet}.77.1`;
    this.serverIp = `10.${octet}.77.2`;
    this.subnet6 = `fd77:${octet.toString(16)}::/64`;
    this.clientIp6 = `fd77:${octet.toString(16)}::1`;
    this.serverIp6 = `fd77:${octet.toString(16)}::2`;
  }

  setUp(): void {
    ip('netns', 'add', this.client);
    ip('netns', 'add', this.server);
    ip('-n', this.client, 'link', 'add', 'kc', 'type', 'veth', 'peer', 'name', 'ks', 'netns', this.server);
    ip('-n', this.client, 'addr', 'add', `${this.clientIp}/24`, 'dev', 'kc');
    ip('-n', this.server, 'addr', 'add', `${this.serverIp}/24`, 'dev', 'ks');
    ip('-n', this.client, 'addr', 'add', `${this.clientIp6}/64`, 'dev', 'kc', 'nodad');
    ip('-n', this.server, 'addr', 'add', `${this.serverIp6}/64`, 'dev', 'ks', 'nodad');
    for (const [ns, dev] of [[this.client, 'kc'], [this.server, 'ks']]) {
      ip('-n', ns, 'link', 'set', dev, 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
    }
    this.serverMac = JSON.parse(ip('-j', '-n', this.server, 'link', 'show', 'ks'))[0].address as string;
    this.restore();
  }

  blackhole(): void {
    for (const addr of [this.serverIp, this.serverIp6]) ip('-n', this.client, 'neigh', 'replace', addr, 'lladdr', '02:00:00:00:be:ef', 'dev', 'kc', 'nud', 'permanent');
  }
  restore(): void {
    for (const addr of [this.serverIp, this.serverIp6]) ip('-n', this.client, 'neigh', 'replace', addr, 'lladdr', this.serverMac, 'dev', 'kc', 'nud', 'permanent');
  }

  /** Starts a child process in a namespace (optionally inside a cgroup); killed by tearDown. */
  spawnIn(ns: string, argv: string[], cgroup?: TestCgroup): ChildProcess {
    const cmd = ['ip', 'netns', 'exec', ns, ...argv];
    const full = cgroup ? cgroup.wrap(cmd) : cmd;
    const child = spawn(full[0], full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /** SYN capture on the server's veth: resolves once the socket is bound. */
  async capture(): Promise<{ syns: SynEvent[]; stop(): void }> {
    // Highest nice priority: the timestamps are taken when recv() returns, so on a busy machine the
    // capture must get the CPU as soon as a packet wakes it. (Kernel timestamps do not help here:
    // TCP's departure times and veth's netns crossing make skb->tstamp mean different things.)
    const child = this.spawnIn(this.server, ['nice', '-n', '-20', process.execPath, '-e', CAPTURE_JS, require.resolve('koffi'), 'ks']);
    const syns: SynEvent[] = [];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('capture did not start within 5 s')), 5000);
      readline.createInterface({ input: child.stdout! }).on('line', (line) => {
        const m = JSON.parse(line) as { ready?: boolean; t: string; sport: number; dport: number; ack: boolean };
        if (m.ready) {
          clearTimeout(timer);
          resolve();
        } else {
          syns.push({ t: BigInt(m.t), sport: m.sport, dport: m.dport, ack: m.ack });
        }
      });
      child.once('exit', (code) => reject(new Error(`capture exited (${code})`)));
    });
    return { syns, stop: () => child.kill('SIGKILL') };
  }

  /** A listener in the server namespace; resolves with its port. */
  async listen(): Promise<number> {
    const js = `const s = require('net').createServer((c) => { c.on('error', () => {}); c.pipe(c); }); s.listen(0, '::', () => console.log(s.address().port));`;
    const child = this.spawnIn(this.server, [process.execPath, '-e', js]);
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('listener did not start within 5 s')), 5000);
      readline.createInterface({ input: child.stdout! }).once('line', (l) => {
        clearTimeout(timer);
        resolve(Number(l));
      });
    });
  }

  /** One connect from the client namespace (inside `cgroup`), started now; resolves when it ends. */
  connect(port: number, timeoutMs: number, cgroup?: TestCgroup, host = this.serverIp): { child: ChildProcess; result: Promise<ConnectResult> } {
    const child = this.spawnIn(this.client, [process.execPath, '-e', CONNECT_JS, host, String(port), String(timeoutMs)], cgroup);
    const result = new Promise<ConnectResult>((resolve, reject) => {
      let out = '';
      let err = '';
      child.stdout!.on('data', (d: Buffer) => (out += d));
      child.stderr!.on('data', (d: Buffer) => (err += d));
      child.on('exit', () => {
        try {
          const r = JSON.parse(out.trim().split('\n').pop() ?? '') as Omit<ConnectResult, 'start'> & { start: string };
          resolve({ ...r, start: BigInt(r.start) });
        } catch {
          reject(new Error(`connect child printed nothing: ${err}`));
        }
      });
    });
    return { child, result };
  }

  tearDown(): void {
    for (const c of this.children) c.kill('SIGKILL');
    for (const ns of [this.client, this.server]) {
      try {
        ip('netns', 'del', ns); // deleting a namespace removes its end of the veth, and the peer with it
      } catch {
        /* not created */
      }
    }
  }
}

/** Short (interface and namespace names stay well under limits) and unique per run. */
export function uniqueTag(): string {
  return `${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 4).toString(36)}`;
}
