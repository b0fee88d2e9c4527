// The daemon's per-opcode request counter and latency histogram (typed arrays exported at scrape).
import { Registry } from 'prom-client';
import { countRequest, observeDuration, registerOpStats } from '../../src/fuse/protocol/op-stats';
import { Opcode } from '../../src/fuse/protocol/opcodes';

describe('op-stats', () => {
  it('exports counts and a cumulative histogram in Prometheus text', async () => {
    const reg = new Registry();
    registerOpStats(reg);
    registerOpStats(reg); // idempotent
    const line = (text: string, prefix: string): number => {
      const l = text.split('\n').find((x) => x.startsWith(prefix));
      return l === undefined ? NaN : Number(l.slice(l.lastIndexOf(' ') + 1));
    };
    const before = await reg.metrics();
    const n0 = line(before, 'kurve_fuse_requests_total{op="STATFS"}') || 0;
    const c0 = line(before, 'kurve_fuse_request_duration_seconds_count{op="STATFS"}') || 0;
    const b0 = line(before, 'kurve_fuse_request_duration_seconds_bucket{le="0.0001",op="STATFS"}') || 0;
    const i0 = line(before, 'kurve_fuse_request_duration_seconds_bucket{le="+Inf",op="STATFS"}') || 0;
    for (let i = 0; i < 3; i++) countRequest(Opcode.STATFS);
    observeDuration(Opcode.STATFS, 0.00002);
    observeDuration(Opcode.STATFS, 0.003);
    observeDuration(Opcode.STATFS, 60); // above every bound: only +Inf and count
    const text = await reg.metrics();
    expect(text).toContain('# TYPE kurve_fuse_requests_total counter');
    expect(text).toContain('# TYPE kurve_fuse_request_duration_seconds histogram');
    expect(line(text, 'kurve_fuse_requests_total{op="STATFS"}')).toBe(n0 + 3);
    expect(line(text, 'kurve_fuse_request_duration_seconds_bucket{le="0.0001",op="STATFS"}')).toBe(b0 + 1);
    expect(line(text, 'kurve_fuse_request_duration_seconds_bucket{le="+Inf",op="STATFS"}')).toBe(i0 + 3);
    expect(line(text, 'kurve_fuse_request_duration_seconds_count{op="STATFS"}')).toBe(c0 + 3);
  });
});
