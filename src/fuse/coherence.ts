// Coherent kernel caching: while subscribed to the metaserver's change feed the kernel may cache
// entries and attributes for a long time (1 h), because every change made by another client comes
// back as an event and is turned into a precise notification (INVAL_ENTRY / INVAL_INODE). If the
// feed breaks, everything the kernel holds is invalidated and short timeouts are used until the
// subscription is back. Our own changes come back too; those the kernel already knows are skipped.
import { moduleLogger } from '../common/logger';
import type { ChangeEvent, MetaService, Subscription } from '../metaserver/api';
import type { Notifier } from './protocol/raw-fs';
import { changeEventsBy, feedConnected, invalidationsBy } from './client-metrics';
import { DirCache } from './dir-cache';

const log = moduleLogger('coherence');

export interface CoherenceOptions {
  readonly entryTimeout: number;
  readonly attrTimeout: number;
  readonly degradedTimeout: number;
}

export interface CoherenceHooks {
  /** Data of an inode changed elsewhere (drop stale chunks). */
  onData(ino: number, dataVersion: number): void;
  /** Attributes changed elsewhere. */
  onAttr?(ino: number): void;
  /** A name changed (called for our own echoes too: dropping a daemon cache entry is harmless). */
  onEntry?(parent: number, name: Buffer): void;
  /** The feed broke: every cached thing may be stale. */
  onReset(): void;
  /** Inodes the kernel may hold (for a full invalidation). */
  knownInodes(): Iterable<number>;
  /**
   * Whether the kernel may hold the inode now (a lookup of it not yet forgotten). An inode it
   * does not hold has nothing to invalidate (the kernel answers ENOENT), so no notification is
   * sent for it: e.g. the purge of every file an `rm -rf` removed, after the unlink grace.
   */
  held?(ino: number): boolean;
}

/** How long an expectation of our own event waits for it. */
const OWN_EVENT_TTL_MS = 5000;
/** Cap on remembered dentries; past it a reset can only rely on timeouts for the forgotten ones. */
const MAX_DENTRIES = 1_000_000;

export class Coherence {
  private notifier?: Notifier;
  private sub?: Subscription;
  private connected = false;
  private closed = false;
  private lastSeq = 0;
  private retryMs = 100;
  private retryTimer?: NodeJS.Timeout;
  private healthyTimer?: NodeJS.Timeout;
  /**
   * Dentries handed to the kernel: parent -> name (latin1) -> the inode it names (0: negative).
   * The inode lets our own unlink expect the echo of the inode it removes (see guessIno).
   */
  private readonly dentries = new Map<number, Map<string, number>>();
  private dentryCount = 0;
  /** Our own data commits: ino -> dataVersion the feed will echo. */
  private readonly ownData = new Map<number, number>();
  /** Our own namespace/attr changes the feed will echo: key -> [count, expiry]. */
  private readonly ownEvents = new Map<string, { n: number; until: number }>();
  /** Directories whose listing the kernel may cache (FOPEN_CACHE_DIR), kept coherent here. */
  readonly dirs = new DirCache((ino) => this.invalInode(ino, 0, 0, 'dir'));

  constructor(
    private readonly meta: MetaService,
    private readonly fsId: number,
    private readonly opts: CoherenceOptions,
    private readonly hooks: CoherenceHooks,
  ) {}

  get subscribed(): boolean {
    return this.connected;
  }
  get entryTimeout(): number {
    return this.connected ? this.opts.entryTimeout : Math.min(this.opts.degradedTimeout, this.opts.entryTimeout);
  }
  get attrTimeout(): number {
    return this.connected ? this.opts.attrTimeout : Math.min(this.opts.degradedTimeout, this.opts.attrTimeout);
  }

  start(notifier: Notifier): void {
    this.notifier = notifier;
    this.subscribe(true);
  }

  private subscribe(first: boolean): void {
    if (this.closed) return;
    try {
      this.sub = this.meta.subscribe(this.fsId, this.lastSeq, {
        event: (e) => this.onEvent(e),
        error: (err) => this.onError(err),
      });
    } catch (err) {
      this.onError(err as Error);
      return;
    }
    // A stream that fails right away reports it quickly; one that stays up this long is trusted.
    clearTimeout(this.healthyTimer);
    this.healthyTimer = setTimeout(() => {
      if (this.sub && !this.closed) {
        if (!first) log.info({ fromSeq: this.lastSeq }, 'change feed resubscribed: long kernel cache timeouts again');
        this.connected = true;
        this.retryMs = 100;
        feedConnected.set(1);
      }
    }, first ? 0 : 1000);
    this.healthyTimer.unref();
  }

  private onError(err: Error): void {
    if (this.closed) return;
    const wasConnected = this.connected;
    this.connected = false;
    feedConnected.set(0);
    this.sub = undefined;
    clearTimeout(this.healthyTimer);
    if (wasConnected) log.warn({ err: err.message }, 'change feed lost: invalidating kernel caches, short timeouts until resubscribed');
    this.invalidateAll();
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.subscribe(false), this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, 2000);
  }

  private onEvent(e: ChangeEvent): void {
    if (e.seq > this.lastSeq) this.lastSeq = e.seq;
    changeEventsBy(e.kind).inc();
    switch (e.kind) {
      case 'entry':
        this.hooks.onEntry?.(e.parent, e.name);
        if (this.consumeOwn(`e${e.parent}/${e.name.toString('latin1')}`)) return;
        this.invalEntry(e.parent, e.name);
        return;
      case 'attr':
        this.hooks.onAttr?.(e.ino);
        // Our own entry changes touch the parent (mtime, ctime, nlink); the kernel drops a parent's
        // attributes itself when such a reply arrives (fuse_dir_changed), so the echo is skipped:
        // a notification is a write(2) to /dev/fuse per create.
        if (this.consumeOwn(`a${e.ino}`)) return;
        if (this.unheld(e.ino)) return;
        this.invalInode(e.ino, -1, 0, 'attr');
        return;
      case 'data':
        if (this.ownData.get(e.ino) === e.dataVersion) {
          this.ownData.delete(e.ino);
          return;
        }
        this.hooks.onData(e.ino, e.dataVersion);
        if (this.unheld(e.ino)) return;
        this.invalInode(e.ino, 0, 0, 'data');
        return;
      case 'reset':
        log.warn({ seq: e.seq }, 'change feed reset: invalidating kernel caches');
        this.invalidateAll();
        return;
    }
  }

  private unheld(ino: number): boolean {
    return this.hooks.held !== undefined && !this.hooks.held(ino);
  }

  /** Drops everything: every known inode's attributes and pages (cached listings too), every dentry handed out. */
  invalidateAll(): void {
    this.hooks.onReset();
    this.dirs.reset();
    for (const ino of this.hooks.knownInodes()) this.invalInode(ino, 0, 0, 'reset');
    for (const [parent, names] of this.dentries) {
      for (const n of names.keys()) this.send(this.notifier?.invalEntry(parent, Buffer.from(n, 'latin1')), 'reset');
    }
    this.dentries.clear();
    this.dentryCount = 0;
    this.ownData.clear();
    this.ownEvents.clear();
  }

  /** A dentry naming `ino` (0: a negative one) was handed to the kernel. */
  noteDentry(parent: number, name: Buffer, ino: number): void {
    let names = this.dentries.get(parent);
    if (!names) this.dentries.set(parent, (names = new Map()));
    const key = name.toString('latin1');
    if (!names.has(key)) {
      if (this.dentryCount >= MAX_DENTRIES) return;
      this.dentryCount++;
    }
    names.set(key, ino);
  }

  /** Our own unlink removed the name: the kernel's dentry is gone or invalid (entry time 0). */
  dropDentry(parent: number, name: Buffer): void {
    const names = this.dentries.get(parent);
    if (names?.delete(name.toString('latin1'))) this.dentryCount--;
  }

  /** Our own rename: the kernel moved (or, exchanging, swapped) its dentries itself (d_move). */
  renamed(parent: number, name: Buffer, newParent: number, newName: Buffer, exchange: boolean): void {
    const moved = this.guessIno(parent, name);
    const other = this.guessIno(newParent, newName);
    this.dropDentry(parent, name);
    this.dropDentry(newParent, newName);
    if (moved !== undefined) this.noteDentry(newParent, newName, moved);
    if (exchange && other !== undefined) this.noteDentry(parent, name, other);
  }

  /**
   * The inode the kernel's dentry (parent, name) names, as of our last reply for it (undefined:
   * unknown or negative). A guess: a change by another client not yet seen here may have moved
   * the name, so a caller that learns the real inode afterwards checks it (see KurveFs.unlink).
   */
  guessIno(parent: number, name: Buffer): number | undefined {
    return this.dentries.get(parent)?.get(name.toString('latin1')) || undefined;
  }

  /**
   * We are about to change (parent, name) ourselves: the kernel will know, so skip the echo once.
   * Registered BEFORE the operation (the feed may deliver before the call returns); the returned
   * function cancels it if the operation fails. Expect at most what the op surely emits: an extra
   * echo costs one harmless notification, a missing one would hide another client's change.
   */
  expectEntry(parent: number, name: Buffer): () => void {
    const key = `e${parent}/${name.toString('latin1')}`;
    this.expect(key);
    return () => this.consumeOwn(key);
  }
  /**
   * Our change will emit one attr event for `ino` that the kernel already knows of: the parent
   * of an entry we add or remove (the kernel invalidates its attributes on the reply), or the
   * inode an unlink/rmdir removes a name of (nlink, orphan or purge). Same contract as expectEntry.
   */
  expectAttr(ino: number): () => void {
    const key = `a${ino}`;
    this.expect(key);
    return () => this.consumeOwn(key);
  }
  /** Our commit will produce this dataVersion (see uploadAndCommit in chunk-commit.ts). */
  expectData(ino: number, dataVersion: number): void {
    this.ownData.set(ino, dataVersion);
  }
  cancelData(ino: number, dataVersion: number): void {
    if (this.ownData.get(ino) === dataVersion) this.ownData.delete(ino);
  }

  private expect(key: string): void {
    const now = Date.now();
    const cur = this.ownEvents.get(key);
    if (cur && cur.until > now) {
      cur.n++;
      cur.until = now + OWN_EVENT_TTL_MS;
    } else {
      this.ownEvents.set(key, { n: 1, until: now + OWN_EVENT_TTL_MS });
    }
    if (this.ownEvents.size > 100_000) {
      for (const [k, v] of this.ownEvents) if (v.until <= now) this.ownEvents.delete(k);
    }
  }

  private consumeOwn(key: string): boolean {
    const cur = this.ownEvents.get(key);
    if (!cur) return false;
    if (cur.until <= Date.now()) {
      this.ownEvents.delete(key);
      return false;
    }
    if (--cur.n <= 0) this.ownEvents.delete(key);
    return true;
  }

  /**
   * A name changed behind the kernel's back. The kernel marks the directory changed only if it
   * has a dentry for the name, so a cached listing of the directory is dropped explicitly.
   */
  invalEntry(parent: number, name: Buffer): void {
    this.dropDentry(parent, name);
    this.send(this.notifier?.invalEntry(parent, name), 'entry');
    this.dirs.changed(parent);
  }

  invalInode(ino: number, off: number, len: number, kind: string): void {
    this.send(this.notifier?.invalInode(ino, off, len), kind);
  }

  /**
   * Drops the kernel's cached attributes of `ino` and resolves once the kernel has them dropped:
   * for a change the kernel learns of from no reply (privilege bits a WRITE or OPEN cleared).
   */
  async invalAttrNow(ino: number): Promise<void> {
    const p = this.notifier?.invalInode(ino, -1, 0);
    this.send(p, 'attr');
    await p?.catch(() => undefined);
  }

  private send(p: Promise<number> | undefined, kind: string): void {
    if (!p) return;
    invalidationsBy(kind).inc();
    p.then(
      (rc) => {
        if (rc < 0 && rc !== -2) log.debug({ rc, kind }, 'notification refused by the kernel');
      },
      (err: unknown) => log.debug({ err: String(err), kind }, 'notification failed'),
    );
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.healthyTimer);
    this.sub?.close();
    this.sub = undefined;
    this.connected = false;
    feedConnected.set(0);
  }
}
