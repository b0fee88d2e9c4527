// resolveMountOptions: defaults, flags > env > config file, durations and sizes, bpf modes, errors.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { resolveMountOptions } from '../../src/fuse/client-options';

describe('resolveMountOptions', () => {
  const env = {};

  it('defaults: 1 h timeouts, 1 s degraded, 10 GiB cache, passthrough on, bpf auto', () => {
    const o = resolveMountOptions({ env });
    expect(o.entryTimeout).toBe(3600);
    expect(o.attrTimeout).toBe(3600);
    expect(o.degradedTimeout).toBe(1);
    expect(o.cacheSize).toBe(10 * 1024 ** 3);
    expect(o.passthrough).toBe(true);
    expect(o.passthroughWrites).toBe(false);
    expect(o.bpf).toBe('auto');
    expect(o.cacheDir.length).toBeGreaterThan(0);
  });

  it('parses durations and sizes from flags', () => {
    const o = resolveMountOptions({ env, flags: { entryTimeout: '500ms', attrTimeout: '2m', cacheSize: '64MiB' } });
    expect([o.entryTimeout, o.attrTimeout, o.cacheSize]).toEqual([0.5, 120, 64 * 1024 * 1024]);
  });

  it('flags win over env, env over the config file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-opts-'));
    const cfg = path.join(dir, 'kurve.json');
    fs.writeFileSync(cfg, JSON.stringify({ client: { entryTimeout: '30s', attrTimeout: '40s', cacheSize: '1GiB' } }));
    try {
      const o = resolveMountOptions({ configFile: cfg, env: { KURVE_ATTR_TIMEOUT: '5s', KURVE_CACHE_SIZE: '2GiB' }, flags: { cacheSize: '3GiB' } });
      expect(o.entryTimeout).toBe(30);
      expect(o.attrTimeout).toBe(5);
      expect(o.cacheSize).toBe(3 * 1024 ** 3);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('commander --no-bpf and --require-bpf map to bpf modes', () => {
    expect(resolveMountOptions({ env, flags: { bpf: false } }).bpf).toBe('off');
    expect(resolveMountOptions({ env, flags: { bpf: true } }).bpf).toBe('auto');
    expect(resolveMountOptions({ env, flags: { bpf: true, requireBpf: true } }).bpf).toBe('require');
  });

  it('rejects bad values with a clear message', () => {
    expect(() => resolveMountOptions({ env, flags: { entryTimeout: 'soon' } })).toThrow(/invalid duration "soon"/);
    expect(() => resolveMountOptions({ env, flags: { cacheSize: 'lots' } })).toThrow(/invalid size "lots"/);
    expect(() => resolveMountOptions({ env, flags: { cacheSize: '1MiB' } })).toThrow(/at least 16MiB/);
    expect(() => resolveMountOptions({ env: { KURVE_BPF: 'maybe' } })).toThrow(/invalid bpf mode "maybe"/);
    expect(() => resolveMountOptions({ env: { KURVE_PASSTHROUGH: 'perhaps' } })).toThrow(/not a boolean/);
  });

  it('overrides apply last (embedded: cache under the data dir)', () => {
    expect(resolveMountOptions({ env }, { cacheDir: '/x/cache' }).cacheDir).toBe('/x/cache');
  });
});
