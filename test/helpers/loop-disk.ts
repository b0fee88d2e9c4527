// A small ext4 file system on a loop device, for full-disk tests: made in a fresh temp directory
// (not tempDir(): cleanupKurve() removes those, and this one holds a mount until release()).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';

export interface LoopDisk {
  /** The temp directory holding the image and the mount point. */
  readonly base: string;
  /** Where the ext4 file system is mounted. */
  readonly dir: string;
  /** Free bytes for an unprivileged writer (statfs bavail). */
  freeBytes(): number;
  /** Unmounts (lazily if busy) and removes the temp directory. */
  release(): void;
}

export function makeLoopDisk(prefix: string, bytes: number): LoopDisk {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const dir = path.join(base, 'disk');
  fs.mkdirSync(dir);
  const image = path.join(base, 'disk.img');
  fs.writeFileSync(image, '');
  fs.truncateSync(image, bytes);
  execFileSync('mkfs.ext4', ['-q', '-F', image]);
  execFileSync('mount', ['-o', 'loop', image, dir]);
  return {
    base,
    dir,
    freeBytes: () => {
      const s = fs.statfsSync(dir);
      return s.bavail * s.bsize;
    },
    release: () => {
      try {
        execFileSync('umount', [dir]);
      } catch {
        execFileSync('umount', ['-l', dir]);
      }
      fs.rmSync(base, { recursive: true, force: true });
    },
  };
}
