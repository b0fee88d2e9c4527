// The lmdb engine's owner lock: a pid file in the data directory, so two engines (processes) never
// write one lmdb (the overlay, the revision counter and the journal live in the owning process).
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * One engine per directory: the overlay and the revision counter live in this process, so a
 * second process (or a second engine in this one) writing the same lmdb would corrupt both.
 * lmdb itself allows several writers, hence this pid file; a dead owner's file is taken over.
 */
export function takeLock(dir: string): string {
  const file = path.join(dir, 'kurve-engine.pid');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx');
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      return file;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    let alive = false;
    try {
      if (Number.isInteger(pid) && pid > 0) {
        process.kill(pid, 0);
        alive = true;
      }
    } catch (err) {
      alive = (err as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (alive) throw new Error(`${dir} is in use by process ${pid} (one metaserver or fsck per data directory)`);
    fs.rmSync(file, { force: true });
  }
  throw new Error(`cannot take the lock on ${dir}`);
}
