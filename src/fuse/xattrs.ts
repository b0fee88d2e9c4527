// Extended attributes for the Kurve file system: the special names (warmup trigger, file
// capabilities, POSIX ACLs) and a per-inode cache of xattr names kept while the change feed is
// connected, because `ls -l` asks two xattrs of every file (ACL and security label) and the
// kernel caches none of them: without it, a listing costs two metaserver round trips per entry.
import { Errno, FsError } from '../common/errno';
import type { MetaService } from '../metaserver/api';
import { errnoReply } from './protocol/raw-fs';

/** The kernel asks for this before every write (to drop file capabilities); Kurve has none. */
const CAPABILITY = 'security.capability';
/** Kurve does not implement POSIX ACLs (the kernel would not enforce them without FUSE_POSIX_ACL). */
const ACLS = new Set(['system.posix_acl_access', 'system.posix_acl_default']);
const MAX_CACHED = 100_000;

export class Xattrs {
  /** ino -> the inode's xattr names, as of the last listing. */
  private readonly names = new Map<number, Set<string>>();

  constructor(
    private readonly meta: MetaService,
    private readonly fsId: number,
    /** True while the change feed is connected and `epoch` says nothing changed meanwhile. */
    private readonly cacheable: (epoch: number) => boolean,
    private readonly epoch: () => number,
  ) {}

  /** An attribute change (setxattr/removexattr emit one) or reset: forget what we knew. */
  forget(ino?: number): void {
    if (ino === undefined) this.names.clear();
    else this.names.delete(ino);
  }

  /**
   * Answers from the cache without a round trip when it can: ENODATA for a name the inode does not
   * have (returned, not thrown: this is the hot path of `ls -l`). undefined = ask get().
   */
  fast(ino: number, name: string): FsError | undefined {
    if (name === CAPABILITY || ACLS.has(name)) return errnoReply(Errno.ENODATA);
    const names = this.cacheable(this.epoch()) ? this.names.get(ino) : undefined;
    return names && !names.has(name) ? errnoReply(Errno.ENODATA) : undefined;
  }

  async get(ino: number, name: string): Promise<Buffer> {
    if (name === CAPABILITY || ACLS.has(name)) throw errnoReply(Errno.ENODATA);
    let names = this.cacheable(this.epoch()) ? this.names.get(ino) : undefined;
    if (!names) {
      const epoch = this.epoch();
      names = new Set(await this.meta.listxattr(this.fsId, ino));
      if (this.cacheable(epoch)) {
        if (this.names.size >= MAX_CACHED) this.names.clear();
        this.names.set(ino, names);
      }
    }
    if (!names.has(name)) throw errnoReply(Errno.ENODATA);
    return this.meta.getxattr(this.fsId, ino, name);
  }

  async set(ino: number, name: string, value: Buffer, flags: number): Promise<void> {
    if (name === CAPABILITY) throw new FsError(Errno.EOPNOTSUPP, 'file capabilities are not supported on Kurve');
    if (ACLS.has(name)) throw new FsError(Errno.EOPNOTSUPP, 'POSIX ACLs are not supported on Kurve');
    this.names.delete(ino);
    try {
      await this.meta.setxattr(this.fsId, ino, name, value, flags);
    } finally {
      this.names.delete(ino);
    }
  }

  list(ino: number): Promise<string[]> {
    return this.meta.listxattr(this.fsId, ino);
  }

  async remove(ino: number, name: string): Promise<void> {
    this.names.delete(ino);
    try {
      await this.meta.removexattr(this.fsId, ino, name);
    } finally {
      this.names.delete(ino);
    }
  }
}
