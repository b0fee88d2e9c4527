// The loader against the real kernel: every program loads and attaches, a broken object fails
// with the verifier's complaint, codecs are checked against the maps, pins are re-used after a
// "restart" and removed by unload.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { bytes, u32, u64, u8, perCpu } from '../../src/ebpf/codecs';
import { rtoKey as rtoKeyCodec } from '../../src/ebpf/prefix';
import { Collection } from '../../src/ebpf/collection';
import { VerifierError } from '../../src/ebpf/errors';
import { libbpf } from '../../src/ebpf/ffi';
import { FuseTracer } from '../../src/ebpf/fuse-tracer';
import { objectInfo } from '../../src/ebpf/info';
import { bpfObjectDir, bpfObjectPath } from '../../src/ebpf/objects';
import { listPins } from '../../src/ebpf/pins';
import { RtoTuner } from '../../src/ebpf/rto-tuner';
import { ObjectSpec } from '../../src/ebpf/spec';
import { bpfStatus, unloadAll } from '../../src/ebpf/status';
import { TestCgroup, uniqueTag } from '../helpers/netns';
import { describeIf, whyNoBpf, whyNoCommand } from '../helpers/privileged';

const rtoValCodec = bytes(16);

const BAD_PROGRAM = `
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } m SEC(".maps");
SEC("tracepoint/syscalls/sys_enter_getpid")
int forgets_null_check(void *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&m, &k);
	return *v; /* the verifier insists on a NULL check first */
}
char LICENSE[] SEC("license") = "GPL";
`;

describeIf([whyNoBpf(), whyNoCommand('clang')], 'eBPF loader (real kernel)', () => {
  const tag = uniqueTag();
  const pinRoot = `/sys/fs/bpf/kurve-test-${tag}`;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-bpf-'));
  let cg: TestCgroup | undefined;

  beforeAll(() => {
    cg = new TestCgroup(`kurve-test-${tag}`);
  });
  afterAll(() => {
    try {
      unloadAll(pinRoot);
    } finally {
      cg?.close();
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('reads object specs from the ELF', () => {
    const fuse = ObjectSpec.fromFile(bpfObjectPath('fuse_trace'));
    expect(fuse.programs.map((p) => [p.name, p.section])).toEqual([
      ['fuse_request_send', 'tp_btf/fuse_request_send'],
      ['fuse_request_end', 'tp_btf/fuse_request_end'],
    ]);
    // In-flight requests: an array slot per request id (struct inflight_slot: u64, u64, u32, u32).
    expect(fuse.map('inflight')).toMatchObject({ type: 2, keySize: 4, valueSize: 24, maxEntries: 65536, internal: false });
    // Per-CPU stats: a row of 64 opcodes for each of 16 connections.
    expect(fuse.map('stats')).toMatchObject({ type: 6, keySize: 4, valueSize: 352, maxEntries: 1024 });
    const tcp = ObjectSpec.fromFile(bpfObjectPath('tcp_tune'));
    expect(tcp.programs.map((p) => p.name).sort()).toEqual(['tcp_retransmit', 'tcp_tune']);
    expect(tcp.map('rto_prefixes')).toMatchObject({ type: 11, keySize: 24, valueSize: 16 });
    expect(() => tcp.map('nope')).toThrow(/no map nope \(have /);
  });

  it('loads and attaches fuse_trace (both tracepoints)', () => {
    const t0 = performance.now();
    const tracer = FuseTracer.open();
    const openMs = performance.now() - t0;
    try {
      tracer.addConnection(4242);
      expect(tracer.connections).toEqual([4242]);
      expect(tracer.snapshot()).toEqual([]);
      tracer.removeConnection(4242);
    } finally {
      const t1 = performance.now();
      tracer.close();
      // eslint-disable-next-line no-console
      console.log(`fuse_trace: open+load+attach ${openMs.toFixed(1)} ms (load ${tracer.loadMs.toFixed(1)} ms), detach+close ${(performance.now() - t1).toFixed(1)} ms`);
    }
  });

  it('loads tcp_tune and attaches sockops to a cgroup and the retransmit tracepoint', () => {
    const t0 = performance.now();
    const coll = Collection.load(bpfObjectPath('tcp_tune'));
    const loadMs = performance.now() - t0;
    try {
      const t1 = performance.now();
      const sockops = coll.program('tcp_tune').attachCgroup(cg!.path);
      const cgMs = performance.now() - t1;
      const tp = coll.program('tcp_retransmit').attach();
      try {
        const info = sockops.info();
        expect(info.type).toBe('cgroup');
        expect(info.cgroupId).toBe(fs.statSync(cg!.path).ino);
        expect(tp.info().type).toBe('perf');
        const progInfo = objectInfo(coll.program('tcp_tune').fd);
        expect(progInfo.kind === 'prog' && progInfo.prog.name).toBe('tcp_tune');
      } finally {
        const t2 = performance.now();
        sockops.close();
        const cgDetachMs = performance.now() - t2;
        tp.close();
        // eslint-disable-next-line no-console
        console.log(`tcp_tune: load ${loadMs.toFixed(1)} ms, cgroup attach ${cgMs.toFixed(2)} ms, cgroup detach ${cgDetachMs.toFixed(2)} ms`);
      }
    } finally {
      coll.close();
    }
  });

  it('reports the verifier\'s complaint for a broken program, and keeps the whole log', () => {
    const src = path.join(tmp, 'bad.bpf.c');
    const obj = path.join(tmp, 'bad.bpf.o');
    fs.writeFileSync(src, BAD_PROGRAM);
    execFileSync('clang', ['-g', '-O2', '-target', 'bpf', '-I', bpfObjectDir(), '-c', src, '-o', obj]);
    const fdsBefore = fs.readdirSync('/proc/self/fd').length;
    let err: unknown;
    try {
      Collection.load(obj).close();
    } catch (e) {
      err = e;
    }
    // The failed load closed everything it had opened (the map it created included).
    expect(fs.readdirSync('/proc/self/fd').length).toBe(fdsBefore);
    expect(err).toBeInstanceOf(VerifierError);
    const ve = err as VerifierError;
    expect(ve.program).toBe('bad/forgets_null_check');
    expect(ve.message).toMatch(/^load program bad\/forgets_null_check: .*\(EACCES\):/);
    expect(ve.message).toMatch(/invalid mem access 'map_value_or_null'/);
    expect(ve.log).toMatch(/processed \d+ insns/);
    expect(ve.log.length).toBeGreaterThan(ve.message.length / 2);
  });

  it('checks codec sizes against key_size/value_size once, at open', () => {
    const coll = Collection.load(bpfObjectPath('fuse_trace'));
    try {
      expect(() => coll.map('connections', u64, u32)).toThrow('map connections: key codec is 8 bytes but key_size is 4');
      expect(() => coll.map('connections', u32, u8)).toThrow('map connections: value codec is 1 bytes but value_size is 4');
      expect(() => coll.map('stats', u32, u64)).toThrow(/map stats \(percpu_array\): needs a perCpu\(\) value codec/);
      expect(() => coll.map('connections', u32, perCpu(u32, 2))).toThrow(/must not use a perCpu\(\) value codec/);
      const conns = coll.map('connections', u32, u32);
      conns.set(7, 1);
      expect(conns.get(7)).toBe(1);
      expect([...conns.keys()]).toEqual([7]);
      expect(conns.delete(7)).toBe(true);
      expect(conns.delete(7)).toBe(false);
      expect(conns.get(7)).toBeUndefined();
      expect(libbpf().libbpf_num_possible_cpus()).toBeGreaterThan(0);
    } finally {
      coll.close();
    }
  });

  it('refuses an incompatible pinned map with a hint instead of using it', () => {
    const root = `${pinRoot}-bad`;
    const coll = Collection.load(bpfObjectPath('fuse_trace'));
    try {
      // A map of another shape where tcp_tune expects its prefix trie (an older build, say).
      fs.mkdirSync(path.join(root, 'tcp_tune'), { recursive: true });
      const id = objectInfo(coll.map('connections', u32, u32).mapFd);
      execFileSync('bpftool', ['map', 'pin', 'id', String(id.kind === 'map' ? id.map.id : 0), path.join(root, 'tcp_tune', 'rto_prefixes')]);
      expect(() => RtoTuner.open(root)).toThrow(/load BPF object tcp_tune: .*remove them \(kurve bpf unload\)/);
    } finally {
      coll.close();
      unloadAll(root);
    }
    expect(fs.existsSync(root)).toBe(false);
  });

  it('re-uses pinned maps and links after a restart, and unload removes them all', () => {
    const first = RtoTuner.open(pinRoot);
    first.set('192.0.2.0/24', { synRtoMs: 300 });
    first.attach(cg!.path);
    first.close();
    const mapPin = path.join(pinRoot, 'tcp_tune', 'rto_prefixes');
    const mapId = () => {
      const fd = libbpf().bpf_obj_get(mapPin);
      try {
        const i = objectInfo(fd);
        return i.kind === 'map' ? i.map.id : -1;
      } finally {
        fs.closeSync(fd);
      }
    };
    const before = mapId();
    expect(before).toBeGreaterThan(0);

    // A new process (simulated: fresh objects, nothing shared in memory) sees the same maps.
    const second = RtoTuner.open(pinRoot);
    expect(second.list()).toEqual([expect.objectContaining({ prefix: '192.0.2.0/24', synRtoMs: 300 })]);
    expect(second.attachment()).toMatchObject({ cgroup: cg!.path });
    // Loading the object again with the pin directory re-uses the pinned map instead of a new one.
    const coll = Collection.load(bpfObjectPath('tcp_tune'), { pinMapsDir: path.join(pinRoot, 'tcp_tune') });
    try {
      const viaCollection = objectInfo(coll.map('rto_prefixes', rtoKeyCodec, rtoValCodec).mapFd);
      expect(viaCollection.kind === 'map' && viaCollection.map.id).toBe(before);
    } finally {
      coll.close();
    }
    expect(mapId()).toBe(before);
    expect(() => second.attach(cg!.path)).toThrow(/already attached/);

    const status = bpfStatus(pinRoot);
    expect(status.features).toMatchObject({ root: true, btf: true, cgroup2: expect.any(String) });
    const sockopsPin = status.pins.find((p) => p.path.endsWith('link-sockops'))!;
    expect(sockopsPin).toMatchObject({ cgroup: cg!.path, program: expect.objectContaining({ name: 'tcp_tune' }) });
    second.close();

    const removed = unloadAll(pinRoot);
    expect(removed.length).toBe(4);
    expect(listPins(pinRoot)).toEqual([]);
    expect(fs.existsSync(pinRoot)).toBe(false);
    // No program is left on the cgroup.
    const attached = execFileSync('bpftool', ['cgroup', 'show', cg!.path], { encoding: 'utf8' });
    expect(attached).not.toMatch(/sock_ops/);
  });
});
