// Extended attributes for the Kurve file system: the special names (warmup trigger, file
// capabilities, POSIX ACLs, SELinux labels) and a per-inode cache of xattr names kept while the
// change feed is connected (the kernel caches no xattr answer of a FUSE file system).
//
// POSIX ACLs and SELinux labels are not supported (no FUSE_POSIX_ACL: the kernel would not enforce
// an ACL; no labelling either), so get, set and remove of their names answer EOPNOTSUPP — the
// truthful answer, and the one `ls -l` remembers per device: GNU ls (coreutils ls.c,
// getfilecon_cache / file_has_acl_cache) stops asking for `security.selinux` and
// `system.posix_acl_access` after one EOPNOTSUPP, instead of two GETXATTR round trips per file.
import { Errno, FsError } from '../common/errno';
import type { MetaService } from '../metaserver/api';
import { errnoReply } from './protocol/raw-fs';

/** The kernel asks for this before every write (to drop file capabilities); Kurve has none. */
const CAPABILITY = 'security.capability';
/** Names Kurve does not support at all: POSIX ACLs (not enforced without FUSE_POSIX_ACL), SELinux labels. */
const UNSUPPORTED = new Set(['system.posix_acl_access', 'system.posix_acl_default', 'security.selinux']);
/** Returned, not thrown, on the hot path: one shared error, no stack trace per `ls -l` entry. */
const NOT_SUPPORTED = errnoReply(Errno.EOPNOTSUPP);
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
    if (UNSUPPORTED.has(name)) return NOT_SUPPORTED;
    if (name === CAPABILITY) return errnoReply(Errno.ENODATA);
    const names = this.cacheable(this.epoch()) ? this.names.get(ino) : undefined;
    return names && !names.has(name) ? errnoReply(Errno.ENODATA) : undefined;
  }

  async get(ino: number, name: string): Promise<Buffer> {
    if (UNSUPPORTED.has(name)) throw NOT_SUPPORTED;
    if (name === CAPABILITY) throw errnoReply(Errno.ENODATA);
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

  /**
   * The refusal of a set or remove of `name`, if Kurve refuses it (returned, not thrown: `cp -a`
   * sets system.posix_acl_access on every file it copies, then falls back to chmod).
   */
  refused(name: string): FsError | undefined {
    return name === CAPABILITY || UNSUPPORTED.has(name) ? NOT_SUPPORTED : undefined;
  }

  async set(ino: number, name: string, value: Buffer, flags: number): Promise<void> {
    const refused = this.refused(name);
    if (refused) throw refused;
    this.names.delete(ino);
    try {
      await this.meta.setxattr(this.fsId, ino, name, value, flags);
    } finally {
      this.names.delete(ino);
    }
  }

  /** Names stored before they were refused (an older Kurve kept them) are not listed: get refuses them. */
  async list(ino: number): Promise<string[]> {
    return (await this.meta.listxattr(this.fsId, ino)).filter((n) => !UNSUPPORTED.has(n));
  }

  async remove(ino: number, name: string): Promise<void> {
    if (UNSUPPORTED.has(name)) throw NOT_SUPPORTED;
    this.names.delete(ino);
    try {
      await this.meta.removexattr(this.fsId, ino, name);
    } finally {
      this.names.delete(ino);
    }
  }
}
