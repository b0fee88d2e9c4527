import * as grpc from '@grpc/grpc-js';
import { envName, parseDuration, parseSize, resolveOptions } from '../../src/common/config';
import { Errno, FsError, toErrno } from '../../src/common/errno';
import { forEachLimited } from '../../src/common/limited';
import { adaptService, clientChannelOptions, startRpcServer, unary } from '../../src/common/rpc';
import { registry } from '../../src/common/metrics';
import { HealthClient, HealthService } from '../../src/gen/common';

describe('config', () => {
  it('names env vars', () => {
    expect(envName('entryTimeout')).toBe('KURVE_ENTRY_TIMEOUT');
  });
  it('resolves flags > env > file > defaults with coercion', () => {
    const got = resolveOptions(
      { a: 1, b: 'x', c: false, d: 7 },
      { flags: { a: '5' }, env: { KURVE_B: 'env', KURVE_C: 'yes' } as NodeJS.ProcessEnv },
    );
    expect(got).toEqual({ a: 5, b: 'env', c: true, d: 7 });
  });
  it('rejects bad numbers clearly', () => {
    expect(() => resolveOptions({ a: 1 }, { flags: { a: 'x' } })).toThrow('invalid a from --a');
  });
  it('parses durations and sizes', () => {
    expect(parseDuration('200ms')).toBe(200);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(() => parseDuration('fast')).toThrow('invalid duration');
    expect(parseSize('4MiB')).toBe(4 * 1024 * 1024);
    expect(parseSize('100G')).toBe(100 * 1024 ** 3);
  });
});

describe('forEachLimited', () => {
  const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  it('runs every item, at most `limit` at once', async () => {
    let running = 0;
    let peak = 0;
    const done: number[] = [];
    await forEachLimited([1, 2, 3, 4, 5, 6, 7], 3, async (i) => {
      peak = Math.max(peak, ++running);
      await tick(2);
      running--;
      done.push(i);
    });
    expect(done.sort()).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(peak).toBe(3);
  });
  it('after a failure starts nothing more, and rejects only once the calls in flight settled', async () => {
    const started: number[] = [];
    let inFlight = 0;
    const p = forEachLimited([1, 2, 3, 4, 5, 6], 2, async (i) => {
      started.push(i);
      inFlight++;
      try {
        if (i === 1) throw new Error('no space');
        await tick(20);
      } finally {
        inFlight--;
      }
    });
    await expect(p).rejects.toThrow('no space');
    expect(inFlight).toBe(0);
    expect(started).toEqual([1, 2]);
  });
});

describe('rpc', () => {
  it('serves async handlers, maps FsError to errno, checks the token, counts calls', async () => {
    let fail = false;
    const impl = adaptService('health', HealthService, {
      check: async () => {
        if (fail) throw new FsError(Errno.ENOENT, 'nothing here');
        return { service: 'test', version: '1', uptimeMs: 1, pid: process.pid };
      },
    }, { token: 'sekrit' });
    const server = await startRpcServer('127.0.0.1:0', [{ definition: HealthService, impl }], { token: 'sekrit' });
    try {
      const good = new HealthClient(server.address, grpc.credentials.createInsecure(), clientChannelOptions({ token: 'sekrit' }));
      const bad = new HealthClient(server.address, grpc.credentials.createInsecure(), clientChannelOptions({ token: 'nope' }));
      expect((await unary(good, good.check, {})).service).toBe('test');
      await expect(unary(bad, bad.check, {})).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
      fail = true;
      const err = await unary(good, good.check, {}).catch((e: unknown) => e);
      expect(toErrno(err)).toBe(Errno.ENOENT);
      const text = await registry.metrics();
      expect(text).toMatch(/kurve_rpc_requests_total\{service="health",method="Check",code="OK"\} 1/);
      good.close();
      bad.close();
    } finally {
      await server.close();
    }
  });
});
