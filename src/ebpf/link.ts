// Link: a link-based attachment (tracepoint perf link, cgroup link). It dies with the process
// unless pinned; removing the pin (unpin, or deleting the file) detaches it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BpfError, check } from './errors';
import { libbpf, lastErrno, LinkPtr } from './ffi';
import { objectInfo, LinkInfo } from './info';

export class Link {
  private ptr: LinkPtr | undefined;
  private pinPath: string | undefined;

  constructor(ptr: LinkPtr, readonly description: string, pinnedAt?: string) {
    this.ptr = ptr;
    this.pinPath = pinnedAt;
  }

  /** Re-opens a link pinned by an earlier process (e.g. the CLI that ran `kurve rto attach`). */
  static open(pinPath: string): Link {
    const ptr = libbpf().bpf_link__open(pinPath);
    if (!ptr) throw new BpfError(`open pinned link ${pinPath}`, -lastErrno());
    return new Link(ptr, path.basename(pinPath), pinPath);
  }

  get fd(): number {
    return libbpf().bpf_link__fd(this.live());
  }
  get pinnedAt(): string | undefined {
    return this.pinPath;
  }
  info(): LinkInfo {
    const i = objectInfo(this.fd);
    if (i.kind !== 'link') throw new TypeError('not a link');
    return i.link;
  }

  /** Pins the link so it outlives this process. */
  pin(pinPath: string): void {
    fs.mkdirSync(path.dirname(pinPath), { recursive: true });
    check(`pin link ${this.description} at ${pinPath}`, libbpf().bpf_link__pin(this.live(), pinPath));
    this.pinPath = pinPath;
  }

  /** Removes the pin: the attachment then ends when the last fd (ours included) closes. */
  unpin(): void {
    if (!this.pinPath) return;
    if (this.ptr) check(`unpin link ${this.description}`, libbpf().bpf_link__unpin(this.ptr));
    else fs.rmSync(this.pinPath, { force: true });
    this.pinPath = undefined;
  }

  /** Closes our handle. A pinned link stays attached; an unpinned one detaches now. */
  close(): void {
    if (!this.ptr) return;
    const p = this.ptr;
    this.ptr = undefined;
    libbpf().bpf_link__destroy(p);
  }

  /** Unpins and closes: the program is detached when this returns. */
  detach(): void {
    this.unpin();
    this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  private live(): LinkPtr {
    if (!this.ptr) throw new Error(`link ${this.description} is closed`);
    return this.ptr;
  }
}
