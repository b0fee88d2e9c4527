// An owner lock for a data directory: a pid file created exclusively, taken over when its process
// is gone. lmdb allows several writers and a chunk store is plain files, so without it a second
// process on the same directory would corrupt the first (its overlay and revision counter; its
// temp objects, deleted by the newcomer's startup cleanup).
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Takes `dir`/`name`; throws "`dir` is in use by process N (`what`)" while its owner lives. */
export function takePidLock(dir: string, name: string, what: string): string {
  const file = path.join(dir, name);
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
    if (alive) throw new Error(`${dir} is in use by process ${pid} (${what})`);
    fs.rmSync(file, { force: true });
  }
  throw new Error(`cannot take the lock on ${dir}`);
}
