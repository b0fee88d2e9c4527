// The lmdb engine's owner lock (src/common/pid-lock.ts): one engine per directory, since the
// overlay, the revision counter and the journal live in the owning process; a second process (or a
// second engine in this one) writing the same lmdb would corrupt both.
import { takePidLock } from '../../common/pid-lock';

export function takeLock(dir: string): string {
  return takePidLock(dir, 'kurve-engine.pid', 'one metaserver or fsck per data directory');
}
