// etcd client helpers without etcd: endpoint parsing, error classification, bounded retries.
import {
  EtcdHostDownError, EtcdUnavailableError, isAmbiguousEtcdError, isTransientEtcdError, parseEtcdEndpoints, retryEtcd,
} from '../../src/common/etcd-client';
import { GRPCDeadlineExceededError, GRPCUnavailableError, EtcdError } from 'etcd3';

describe('parseEtcdEndpoints', () => {
  it('accepts host:port lists and URLs, trims, and normalises to http URLs', () => {
    expect(parseEtcdEndpoints(' 127.0.0.1:2379, localhost:2381 ,http://10.0.0.1:2379/')).toEqual([
      'http://127.0.0.1:2379', 'http://localhost:2381', 'http://10.0.0.1:2379',
    ]);
    expect(parseEtcdEndpoints(['[::1]:2379'])).toEqual(['http://[::1]:2379']);
  });
  it('rejects empty lists, missing ports and bad ports with the offending text', () => {
    expect(() => parseEtcdEndpoints('')).toThrow(/no etcd endpoints/);
    expect(() => parseEtcdEndpoints('127.0.0.1')).toThrow(/invalid etcd endpoint "127.0.0.1"/);
    expect(() => parseEtcdEndpoints('h:0')).toThrow(/invalid etcd endpoint "h:0"/);
    expect(() => parseEtcdEndpoints('h:70000')).toThrow(/invalid etcd endpoint/);
  });
});

describe('etcd error classes', () => {
  it('unavailable and deadline errors are transient; only the deadline one is ambiguous for writes', () => {
    const unavailable = new GRPCUnavailableError('14 UNAVAILABLE: No connection established');
    const deadline = new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED: Deadline exceeded');
    expect(isTransientEtcdError(unavailable)).toBe(true);
    expect(isTransientEtcdError(deadline)).toBe(true);
    expect(isAmbiguousEtcdError(deadline)).toBe(true);
    expect(isAmbiguousEtcdError(unavailable)).toBe(false);
    expect(isTransientEtcdError(new EtcdError('etcdserver: mvcc: required revision has been compacted'))).toBe(false);
    expect(isTransientEtcdError('nope')).toBe(false);
    const down = new EtcdHostDownError('4 DEADLINE_EXCEEDED: Deadline exceeded');
    expect(isTransientEtcdError(down)).toBe(true);
    expect(isAmbiguousEtcdError(down)).toBe(false);
  });
});

describe('retryEtcd', () => {
  it('retries transient errors until success', async () => {
    let n = 0;
    const r = await retryEtcd('t', { attemptTimeoutMs: 100, totalTimeoutMs: 2000 }, async () => {
      if (++n < 3) throw new GRPCUnavailableError('14 UNAVAILABLE');
      return 'ok';
    });
    expect(r).toBe('ok');
    expect(n).toBe(3);
  });
  it('does not retry other errors', async () => {
    let n = 0;
    await expect(retryEtcd('t', { attemptTimeoutMs: 100, totalTimeoutMs: 2000 }, async () => {
      n++;
      throw new Error('etcdserver: too many operations in txn request');
    })).rejects.toThrow(/too many operations/);
    expect(n).toBe(1);
  });
  it('gives up after the total time with EtcdUnavailableError', async () => {
    const t0 = Date.now();
    await expect(retryEtcd('t', { attemptTimeoutMs: 50, totalTimeoutMs: 300 }, async () => {
      throw new GRPCUnavailableError('14 UNAVAILABLE');
    })).rejects.toThrow(EtcdUnavailableError);
    expect(Date.now() - t0).toBeLessThan(1500);
  });
  it('asks whether an ambiguous write applied before retrying it', async () => {
    let attempts = 0;
    const r = await retryEtcd('t', { attemptTimeoutMs: 50, totalTimeoutMs: 2000 }, async () => {
      attempts++;
      throw new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED');
    }, async () => 'applied');
    expect(r).toBe('applied');
    expect(attempts).toBe(1);
  });
});
