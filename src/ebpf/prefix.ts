// Destination prefixes for tcp_tune's LPM trie: parsing ("10.0.0.0/8", "fd00::/8", "1.2.3.4",
// "default"), canonical form (host bits cleared) and the trie key layout.
import * as net from 'node:net';
import { bytes, struct, u32 } from './codecs';

export const AF_INET = 2;
export const AF_INET6 = 10;

/** struct rto_key in bpf/tcp_tune.bpf.c: prefixlen counts the 32 family bits, then the address. */
export const rtoKey = struct({ prefixlen: u32, family: u32, addr: bytes(16) });
export type RtoKey = ReturnType<typeof rtoKey.decode>;

export interface Prefix {
  /** 0 for the default entry (matches every destination of both families). */
  readonly family: 0 | typeof AF_INET | typeof AF_INET6;
  readonly addr: Buffer;
  readonly length: number;
}

function parseV6(s: string): Buffer {
  const out = Buffer.alloc(16);
  let text = s;
  // A trailing dotted quad (::ffff:1.2.3.4) becomes two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1].split('.').map(Number);
    text = text.slice(0, -v4[1].length) + `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function mask(addr: Buffer, bits: number): Buffer {
  const out = Buffer.from(addr);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    out[i] &= (0xff << (8 - keep)) & 0xff;
  }
  return out;
}

/** Parses a prefix; throws a message that says what is wrong. */
export function parsePrefix(input: string): Prefix {
  const s = input.trim();
  if (s === 'default') return { family: 0, addr: Buffer.alloc(16), length: 0 };
  const [ip, len, extra] = s.split('/');
  if (extra !== undefined) throw new Error(`invalid prefix "${input}": expected ADDRESS[/LENGTH] or "default"`);
  const kind = net.isIP(ip);
  if (kind === 0) throw new Error(`invalid prefix "${input}": "${ip}" is not an IPv4 or IPv6 address`);
  const max = kind === 4 ? 32 : 128;
  if (len !== undefined && !/^\d+$/.test(len)) throw new Error(`invalid prefix "${input}": length must be a number 0-${max}`);
  const length = len === undefined ? max : Number(len);
  if (length > max) throw new Error(`invalid prefix "${input}": length ${length} is more than ${max}`);
  const raw = kind === 4 ? Buffer.from(ip.split('.').map(Number)) : parseV6(ip);
  return { family: kind === 4 ? AF_INET : AF_INET6, addr: mask(raw, length), length };
}

export function formatPrefix(p: Prefix): string {
  if (p.family === 0) return 'default';
  if (p.family === AF_INET) return `${[...p.addr.subarray(0, 4)].join('.')}/${p.length}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(p.addr.readUInt16BE(i).toString(16));
  // Compress the longest run of zero groups, as RFC 5952 asks.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const text = best < 0 ? groups.join(':') : `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
  return `${text}/${p.length}`;
}

export function prefixToKey(p: Prefix): RtoKey {
  if (p.family === 0) return { prefixlen: 0, family: 0, addr: Buffer.alloc(16) };
  const addr = Buffer.alloc(16);
  p.addr.copy(addr, 0, 0, p.family === AF_INET ? 4 : 16);
  return { prefixlen: 32 + p.length, family: p.family, addr };
}

export function keyToPrefix(k: RtoKey): Prefix {
  if (k.prefixlen === 0) return { family: 0, addr: Buffer.alloc(16), length: 0 };
  const family = k.family === AF_INET ? AF_INET : AF_INET6;
  return { family, addr: family === AF_INET ? k.addr.subarray(0, 4) : k.addr, length: k.prefixlen - 32 };
}
