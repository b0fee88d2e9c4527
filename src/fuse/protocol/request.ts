// One request in flight: the decoded header doubles as the handler's RequestContext.
import { performance } from 'node:perf_hooks';
import { Errno, FsError } from '../../common/errno';
import type { RequestContext } from './raw-fs';
import type { InHeader } from './wire';

/** A request being handled: its header fields, timing, and a lazily made abort signal. */
export class Request implements RequestContext {
  readonly start = performance.now();
  private ac: AbortController | undefined;
  constructor(readonly h: InHeader) {}
  get unique(): number { return this.h.unique; }
  get nodeid(): number { return this.h.nodeid; }
  get uid(): number { return this.h.uid; }
  get gid(): number { return this.h.gid; }
  get pid(): number { return this.h.pid; }
  get opcode(): number { return this.h.opcode; }
  get signal(): AbortSignal {
    this.ac ??= new AbortController();
    return this.ac.signal;
  }
  interrupt(): void {
    this.ac ??= new AbortController();
    this.ac.abort(new FsError(Errno.EINTR, 'interrupted'));
  }
}

