// RtoTuner: per-prefix TCP SYN RTO / minimum RTO through bpf/tcp_tune.bpf.o. Settings and stats
// live in maps pinned under <pin dir>/tcp_tune, the attachment in pinned links, so they outlive
// the CLI process that made them; any later process re-opens them by path.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { struct, u32, u64 } from './codecs';
import { Collection } from './collection';
import { cgroup2Path, requireTracepoints, whyNoBpf } from './features';
import { Link } from './link';
import { BpfMap } from './map';
import { bpfObjectPath } from './objects';
import { linkPinPath, objectPinDir, pinDir } from './pins';
import { formatPrefix, keyToPrefix, parsePrefix, prefixToKey, RtoKey, rtoKey } from './prefix';

export const SYN_RTO_MIN_MS = 1;
export const SYN_RTO_MAX_MS = 120_000;
/** What bpf_setsockopt(TCP_BPF_RTO_MIN) accepts here: it can only lower the 200 ms default. */
export const RTO_MIN_MIN_MS = 8;
export const RTO_MIN_MAX_MS = 200;
const MAX_SLOTS = 256;
const OBJECT = 'tcp_tune';

const rtoVal = struct({ synRtoMs: u32, rtoMinMs: u32, slot: u32, flags: u32 });
const rtoStats = struct({ synTuned: u64, rtoMinSet: u64, synRetrans: u64, dataRetrans: u64, rttSamples: u64, srttUs: u64 });
type RtoVal = ReturnType<typeof rtoVal.decode>;
export type RtoStats = ReturnType<typeof rtoStats.decode>;
const ZERO_STATS: RtoStats = { synTuned: 0, rtoMinSet: 0, synRetrans: 0, dataRetrans: 0, rttSamples: 0, srttUs: 0 };

export interface RtoSetting {
  readonly prefix: string;
  /** undefined: the kernel default (1 s) applies. */
  readonly synRtoMs?: number;
  readonly rtoMinMs?: number;
}
export interface RtoEntry extends RtoSetting {
  readonly stats: RtoStats;
}
export interface RtoAttachment {
  readonly cgroupId?: number;
  readonly cgroup?: string;
  readonly links: string[];
}

export function validateSynRto(ms: number): number {
  if (!Number.isFinite(ms) || ms < SYN_RTO_MIN_MS || ms > SYN_RTO_MAX_MS) {
    throw new RangeError(`SYN RTO ${ms} ms is out of range: use ${SYN_RTO_MIN_MS} ms to ${SYN_RTO_MAX_MS / 1000} s`);
  }
  return Math.ceil(ms);
}
export function validateRtoMin(ms: number): number {
  if (!Number.isFinite(ms) || ms < RTO_MIN_MIN_MS || ms > RTO_MIN_MAX_MS) {
    throw new RangeError(`minimum RTO ${ms} ms is out of range: the kernel accepts ${RTO_MIN_MIN_MS} ms to ${RTO_MIN_MAX_MS} ms`);
  }
  return Math.ceil(ms);
}

export class RtoTuner {
  private constructor(
    readonly dir: string,
    private readonly prefixes: BpfMap<RtoKey, RtoVal>,
    private readonly stats: BpfMap<number, RtoStats>,
  ) {}

  /**
   * Opens the pinned maps, creating them (by loading the object once) if this is the first use.
   * @param root pin directory (default KURVE_BPF_PIN_DIR or /sys/fs/bpf/kurve)
   */
  static open(root = pinDir()): RtoTuner {
    const why = whyNoBpf();
    if (why) throw new Error(`${why}: TCP RTO tuning loads BPF and pins maps under ${root}`);
    const dir = objectPinDir(OBJECT, root);
    if (!fs.existsSync(path.join(dir, 'rto_prefixes')) || !fs.existsSync(path.join(dir, 'rto_stats'))) {
      // Loading with pinMapsDir creates and pins the maps; no program needs to stay loaded.
      Collection.load(bpfObjectPath(OBJECT), { pinMapsDir: dir }).close();
    }
    const prefixes = BpfMap.fromPin(path.join(dir, 'rto_prefixes'), rtoKey, rtoVal);
    try {
      return new RtoTuner(dir, prefixes, BpfMap.fromPin(path.join(dir, 'rto_stats'), u32, rtoStats));
    } catch (err) {
      prefixes.close();
      throw err;
    }
  }

  /** Adds or changes a prefix's settings; its statistics are kept across changes. */
  set(prefixText: string, opts: { synRtoMs?: number; rtoMinMs?: number }): RtoSetting {
    if (opts.synRtoMs === undefined && opts.rtoMinMs === undefined) throw new Error('nothing to set: give a SYN RTO and/or a minimum RTO');
    const synRtoMs = opts.synRtoMs === undefined ? 0 : validateSynRto(opts.synRtoMs);
    const rtoMinMs = opts.rtoMinMs === undefined ? 0 : validateRtoMin(opts.rtoMinMs);
    const prefix = parsePrefix(prefixText);
    const key = prefixToKey(prefix);
    const old = this.prefixes.get(key);
    let slot = old?.slot;
    if (slot === undefined) {
      const used = new Set([...this.prefixes.entries()].map(([, v]) => v.slot));
      slot = [...Array(MAX_SLOTS).keys()].find((s) => !used.has(s));
      if (slot === undefined) throw new Error(`too many prefixes (at most ${MAX_SLOTS})`);
      this.stats.set(slot, ZERO_STATS);
    }
    this.prefixes.set(key, { synRtoMs, rtoMinMs, slot, flags: 0 });
    return { prefix: formatPrefix(prefix), synRtoMs: synRtoMs || undefined, rtoMinMs: rtoMinMs || undefined };
  }

  /** Removes one prefix (returns false if it was not set) or, without an argument, all of them. */
  clear(prefixText?: string): number {
    const keys = prefixText === undefined ? [...this.prefixes.keys()] : [prefixToKey(parsePrefix(prefixText))];
    let n = 0;
    for (const k of keys) {
      const v = this.prefixes.get(k);
      if (!v) continue;
      this.prefixes.delete(k);
      this.stats.set(v.slot, ZERO_STATS);
      n++;
    }
    return n;
  }

  list(): RtoEntry[] {
    const out: RtoEntry[] = [];
    for (const [k, v] of this.prefixes.entries()) {
      out.push({
        prefix: formatPrefix(keyToPrefix(k)),
        synRtoMs: v.synRtoMs || undefined,
        rtoMinMs: v.rtoMinMs || undefined,
        stats: this.stats.get(v.slot) ?? ZERO_STATS,
      });
    }
    return out.sort((a, b) => a.prefix.localeCompare(b.prefix));
  }

  /**
   * Attaches the sockops program to a cgroup v2 directory (default: the cgroup2 root, so every
   * process's sockets are tuned, Kurve's own gRPC included) and the retransmit tracepoint, and
   * pins both links so they stay after this process exits.
   */
  attach(cgroup?: string): RtoAttachment {
    const cg = cgroup ?? cgroup2Path();
    if (!cg) throw new Error('no cgroup v2 mount found in /proc/mounts (mount -t cgroup2 none /sys/fs/cgroup)');
    if (!fs.existsSync(path.join(cg, 'cgroup.procs'))) throw new Error(`${cg} is not a cgroup v2 directory`);
    const sockopsPin = linkPinPath(this.dir, 'sockops');
    const tpPin = linkPinPath(this.dir, 'retransmit');
    if (fs.existsSync(sockopsPin)) throw new Error(`already attached (${sockopsPin}); run \`kurve rto detach\` first`);
    requireTracepoints(['tcp/tcp_retransmit_skb']);
    const coll = Collection.load(bpfObjectPath(OBJECT), { pinMapsDir: this.dir });
    const links: Link[] = [];
    try {
      links.push(coll.program('tcp_tune').attachCgroup(cg));
      links.push(coll.program('tcp_retransmit').attach());
      links[0].pin(sockopsPin);
      links[1].pin(tpPin);
    } catch (err) {
      for (const l of links) l.detach();
      throw err;
    } finally {
      for (const l of links) l.close(); // pinned: they stay attached
      coll.close();
    }
    return this.attachment()!;
  }

  /** Where the pinned sockops link is attached, or undefined when not attached. */
  attachment(): RtoAttachment | undefined {
    const sockopsPin = linkPinPath(this.dir, 'sockops');
    if (!fs.existsSync(sockopsPin)) return undefined;
    const links = [sockopsPin, linkPinPath(this.dir, 'retransmit')].filter((p) => fs.existsSync(p));
    const l = Link.open(sockopsPin);
    try {
      const info = l.info();
      return { cgroupId: info.cgroupId, cgroup: info.cgroupId !== undefined ? findCgroup(info.cgroupId) : undefined, links };
    } finally {
      l.close();
    }
  }

  /** Removes the pinned links: the programs detach. Settings stay. Returns false if not attached. */
  detach(): boolean {
    let any = false;
    for (const name of ['sockops', 'retransmit']) {
      const p = linkPinPath(this.dir, name);
      if (fs.existsSync(p)) {
        fs.rmSync(p);
        any = true;
      }
    }
    return any;
  }

  close(): void {
    this.prefixes.close();
    this.stats.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}

/** A cgroup v2 directory's id is its inode number; search the hierarchy (bounded) for it. */
export function findCgroup(id: number, root = cgroup2Path(), maxDirs = 5000): string | undefined {
  if (!root) return undefined;
  const queue = [root];
  for (let n = 0; queue.length > 0 && n < maxDirs; n++) {
    const d = queue.shift()!;
    try {
      if (fs.statSync(d).ino === id) return d;
      for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) queue.push(path.join(d, e.name));
    } catch {
      /* cgroups come and go */
    }
  }
  return undefined;
}
