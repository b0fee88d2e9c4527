// A client whose server went away comes back quickly once it returns: `kurve mount` of a `kurve up`
// that is killed, stays down for a while and restarts on the same address answers again within
// a few seconds (gRPC's own reconnect backoff grows to 120 s; ours is capped at 2 s). Meanwhile its
// operations fail with EIO in bounded time instead of hanging.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cleanupKurve, Daemon, kurveMount, kurveUp, lazyUnmount, sleep, tempDir, waitFor } from '../helpers/kurve-mount';
import { freePortBase } from '../helpers/etcd';
import { describeIf, whyNoFuse } from '../helpers/privileged';

describeIf([whyNoFuse()], 'a client across a server restart', () => {
  afterAll(async () => {
    await cleanupKurve();
  });

  it('answers again within seconds of the server coming back after 60 s down', async () => {
    const base = tempDir('kurve-reconnect-');
    const listen = `127.0.0.1:${await freePortBase(1)}`;
    const upOpts = { dataDir: path.join(base, 'data'), mountpoint: path.join(base, 'a'), args: ['--no-bpf', '--listen', listen] };
    let a: Daemon = await kurveUp(upOpts);
    const b = await kurveMount(a);
    fs.writeFileSync(path.join(a.mountpoint, 'before'), 'one');
    await waitFor('the other mount to see the file', () => fs.existsSync(path.join(b.mountpoint, 'before')), 3000, 20);

    await a.kill9();
    lazyUnmount(a.mountpoint);
    // Failing calls while it is down: bounded, EIO.
    const t0 = Date.now();
    expect(() => fs.writeFileSync(path.join(b.mountpoint, 'during'), 'x')).toThrow(/EIO/);
    expect(Date.now() - t0).toBeLessThan(20_000);
    // Long enough for grpc-js's default backoff to have grown to ~25 s between attempts.
    await sleep(Math.max(0, 60_000 - (Date.now() - t0)));

    a = await kurveUp(upOpts);
    const back = Date.now();
    await waitFor('the other mount to write again', () => {
      try {
        fs.writeFileSync(path.join(b.mountpoint, 'after'), 'two');
        return true;
      } catch {
        return false;
      }
    }, 30_000, 100);
    const took = Date.now() - back;
    expect(took).toBeLessThan(5_000);
    expect(fs.readFileSync(path.join(a.mountpoint, 'after'), 'utf8')).toBe('two');
    expect(fs.readFileSync(path.join(b.mountpoint, 'before'), 'utf8')).toBe('one');
  }, 150_000);
});
