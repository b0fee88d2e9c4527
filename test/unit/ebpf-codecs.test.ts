// Pure logic of the eBPF layer: codec layouts (against the C structs in bpf/), prefixes, bpftrace
// JSON parsing, verifier message shaping, recipe results.
import { array, bytes, perCpu, struct, u8, u16, u32, u64 } from '../../src/ebpf/codecs';
import { parseBpftraceLine } from '../../src/ebpf/bpftrace';
import { VerifierError } from '../../src/ebpf/errors';
import { formatPrefix, parsePrefix, prefixToKey, keyToPrefix, rtoKey } from '../../src/ebpf/prefix';
import { recipe, RECIPES } from '../../src/ebpf/trace-recipes';
import { validateRtoMin, validateSynRto } from '../../src/ebpf/rto-tuner';

describe('codecs', () => {
  it('lays structs out like C (natural alignment, tail padding)', () => {
    const s = struct({ a: u8, b: u32, c: u16 });
    expect(s.size).toBe(12);
    const buf = Buffer.alloc(12, 0xff);
    s.encode({ a: 1, b: 2, c: 3 }, buf, 0);
    expect([...buf]).toEqual([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]);
    expect(s.decode(buf, 0)).toEqual({ a: 1, b: 2, c: 3 });
  });

  it('matches the sizes of the BPF programs\' structs', () => {
    // struct op_stats (fuse_trace.bpf.c): 4 u64 + 40 buckets
    expect(struct({ count: u64, completed: u64, errors: u64, sumNs: u64, hist: array(u64, 40) }).size).toBe(352);
    // struct inflight_key: u32 connection, u32 pad, u64 unique
    expect(struct({ c: u32, pad: u32, u: u64 }).size).toBe(16);
    // struct rto_key: u32 prefixlen, u32 family, u8 addr[16]
    expect(rtoKey.size).toBe(24);
  });

  it('per-CPU values are padded to 8 bytes per CPU', () => {
    const c = perCpu(u32, 3);
    expect(c.size).toBe(24);
    expect(c.perCpuValueSize).toBe(4);
    const buf = Buffer.alloc(24);
    c.encode([1, 2, 3], buf, 0);
    expect(buf.readUInt32LE(8)).toBe(2);
    expect(c.decode(buf, 0)).toEqual([1, 2, 3]);
    expect(() => c.encode([1], buf, 0)).toThrow(/expected 3 per-CPU values/);
  });

  it('rejects oversized byte strings', () => {
    expect(() => bytes(2).encode(Buffer.from([1, 2, 3]), Buffer.alloc(2), 0)).toThrow(/at most 2 bytes/);
  });
});

describe('prefixes', () => {
  it('parses and canonicalises IPv4, IPv6 and default', () => {
    expect(formatPrefix(parsePrefix('10.1.2.3/8'))).toBe('10.0.0.0/8');
    expect(formatPrefix(parsePrefix('192.168.1.7'))).toBe('192.168.1.7/32');
    expect(formatPrefix(parsePrefix('fd00:1:2::5/32'))).toBe('fd00:1::/32');
    expect(formatPrefix(parsePrefix('::1'))).toBe('::1/128');
    expect(formatPrefix(parsePrefix('2001:db8:0:0:1:0:0:1/128'))).toBe('2001:db8::1:0:0:1/128');
    expect(formatPrefix(parsePrefix('::ffff:10.0.0.1/128'))).toBe('::ffff:a00:1/128');
    expect(formatPrefix(parsePrefix('default'))).toBe('default');
  });

  it('gives clear errors', () => {
    expect(() => parsePrefix('10.0.0.0/33')).toThrow(/length 33 is more than 32/);
    expect(() => parsePrefix('fd00::/129')).toThrow(/more than 128/);
    expect(() => parsePrefix('nope/8')).toThrow(/not an IPv4 or IPv6 address/);
    expect(() => parsePrefix('10.0.0.0/x')).toThrow(/length must be a number/);
    expect(() => parsePrefix('10.0.0.0/8/9')).toThrow(/expected ADDRESS/);
  });

  it('builds trie keys with the family bits counted in prefixlen', () => {
    const k = prefixToKey(parsePrefix('10.77.0.0/24'));
    expect(k.prefixlen).toBe(56);
    expect(k.family).toBe(2);
    expect([...k.addr.subarray(0, 4)]).toEqual([10, 77, 0, 0]);
    expect(prefixToKey(parsePrefix('default')).prefixlen).toBe(0);
    expect(formatPrefix(keyToPrefix(prefixToKey(parsePrefix('fd00::/8'))))).toBe('fd00::/8');
  });

  it('validates RTO ranges', () => {
    expect(validateSynRto(200)).toBe(200);
    expect(validateSynRto(0.5 + 1)).toBe(2);
    expect(() => validateSynRto(0)).toThrow(/1 ms to 120 s/);
    expect(() => validateSynRto(120_001)).toThrow(/out of range/);
    expect(validateRtoMin(8)).toBe(8);
    expect(() => validateRtoMin(7)).toThrow(/8 ms to 200 ms/);
    expect(() => validateRtoMin(201)).toThrow(/8 ms to 200 ms/);
  });
});

describe('bpftrace JSON', () => {
  it('parses every output type', () => {
    expect(parseBpftraceLine('{"type": "attached_probes", "data": {"probes": 2}}')).toEqual({ type: 'attached_probes', probes: 2 });
    expect(parseBpftraceLine('{"type": "printf", "data": "15 42 1200 0 cat\\n"}')).toEqual({ type: 'printf', text: '15 42 1200 0 cat\n' });
    expect(parseBpftraceLine('{"type": "map", "data": {"@": {"bash,3": 1, "node,4": 7}}}')).toEqual({
      type: 'map', name: '@', entries: [{ key: ['bash', '3'], value: 1 }, { key: ['node', '4'], value: 7 }],
    });
    expect(parseBpftraceLine('{"type": "map", "data": {"@n": 5}}')).toEqual({ type: 'map', name: '@n', entries: [{ key: [], value: 5 }] });
    expect(parseBpftraceLine('{"type": "hist", "data": {"@h": [{"min": 4, "max": 7, "count": 3}]}}')).toEqual({
      type: 'hist', name: '@h', series: [{ key: [], buckets: [{ min: 4, max: 7, count: 3 }] }],
    });
    const keyed = parseBpftraceLine('{"type": "hist", "data": {"@lat": {"tail,read": [{"min": 1, "max": 1, "count": 2}]}}}');
    expect(keyed).toEqual({ type: 'hist', name: '@lat', series: [{ key: ['tail', 'read'], buckets: [{ min: 1, max: 1, count: 2 }] }] });
    expect(parseBpftraceLine('{"type": "stats", "data": {"@st": {"node": {"count": 2, "average": 1, "total": 2}}}}')).toEqual({
      type: 'stats', name: '@st', series: [{ key: ['node'], count: 2, average: 1, total: 2 }],
    });
    expect(parseBpftraceLine('')).toBeUndefined();
    expect(parseBpftraceLine('not json')).toBeUndefined();
  });

  it('turns recipe output into typed results', () => {
    const lat = recipe('fuse-latency').result([
      { type: 'hist', name: '@lat_us', series: [{ key: ['3'], buckets: [{ min: 8, max: 15, count: 4 }] }, { key: ['15'], buckets: [{ min: 1, max: 1, count: 9 }] }] },
    ]);
    expect(lat).toEqual({ kind: 'histograms', unit: 'us', keyNames: ['op'], rows: [
      { key: ['READ'], count: 9, buckets: [{ min: 1, max: 1, count: 9 }] },
      { key: ['GETATTR'], count: 4, buckets: [{ min: 8, max: 15, count: 4 }] },
    ] });
    const slow = recipe('slow-fuse-requests').result([{ type: 'printf', text: '1 77 25000 -2 my, prog\n' }]);
    expect(slow).toEqual({ kind: 'table', columns: ['op', 'pid', 'comm', 'latency_us', 'error'], rows: [['LOOKUP', 77, 'my, prog', 25000, -2]] });
    const byProc = recipe('fuse-ops-by-process').result([{ type: 'map', name: '@ops', entries: [{ key: ['12', '3', 'a,b'], value: 5 }] }]);
    expect(byProc).toEqual({ kind: 'table', columns: ['pid', 'comm', 'op', 'count'], rows: [[12, 'a,b', 'GETATTR', 5]] });
    expect(() => recipe('nope')).toThrow(/unknown recipe "nope"; known: fuse-latency/);
  });

  it('filters recipes on the connection and mount', () => {
    expect(recipe('fuse-latency').program({ connection: 57 })).toContain('args->connection == 57');
    const sys = recipe('syscall-latency').program({ connection: 57, mount: '/mnt/k' });
    expect(sys).toContain('$sb->s_dev == 57');
    expect(sys).toContain('"/mnt/k/", 7');
    expect(recipe('syscall-latency').program({})).toContain('s_magic == 0x65735546');
    expect(() => recipe('syscall-latency').program({ connection: 1, mount: '/mnt/"x' })).toThrow(/unsupported characters/);
    expect(RECIPES.map((r) => r.name)).toEqual(['fuse-latency', 'fuse-ops-by-process', 'slow-fuse-requests', 'tcp-retransmits', 'syscall-latency']);
  });
});

describe('VerifierError', () => {
  it('shows the last useful lines and keeps the whole log', () => {
    const log = ['func#0 @0', ...Array.from({ length: 20 }, (_, i) => `${i}: (b7) r0 = ${i}`), 'R1 invalid mem access \'scalar\'', 'processed 22 insns (limit 1000000) max_states_per_insn 0', ''].join('\n');
    const e = new VerifierError('obj/prog', -13, log, false);
    expect(e.message).toMatch(/^load program obj\/prog: .*\(EACCES\):/);
    expect(e.message).toContain("R1 invalid mem access 'scalar'");
    expect(e.message).toContain('(14 lines omitted)');
    expect(e.message).not.toContain('processed 22 insns');
    expect(e.log).toBe(log);
    expect(e.errno).toBe(13);
  });

  it('hints at privileges on EPERM with an empty log', () => {
    expect(new VerifierError('o/p', -1, '', false).message).toMatch(/needs root .*lockdown/);
  });
});
