// Typed BPF errors: errno-carrying BpfError, VerifierError (message = the useful tail of the
// verifier log, .log = all of it), UnsupportedFeatureError, and the EPERM hint.
import * as os from 'node:os';
import { bpfStrerror } from './ffi';

const ERRNO_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(os.constants.errno).map(([name, n]) => [n, name]),
);

export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? (errno >= 4000 ? `LIBBPF_ERRNO_${errno}` : `errno ${errno}`);
}

/** Why a root process may still get EPERM from bpf(2): said once, attached to every EPERM. */
export const EPERM_HINT =
  'needs root (or CAP_BPF + CAP_PERFMON/CAP_NET_ADMIN), a large enough RLIMIT_MEMLOCK on old kernels, ' +
  'and a kernel lockdown level that allows BPF (see /sys/kernel/security/lockdown)';

export class BpfError extends Error {
  /** Positive errno (or a libbpf code above 4000). */
  readonly errno: number;
  readonly code: string;
  constructor(what: string, err: number, hint?: string) {
    const errno = Math.abs(err);
    const code = errnoName(errno);
    let text = `${what}: ${bpfStrerror(errno)} (${code})`;
    if (hint) text += `; ${hint}`;
    super(text);
    this.name = 'BpfError';
    this.errno = errno;
    this.code = code;
  }
}

/** Throws a BpfError when a libbpf int call returned -errno; returns the value otherwise. */
export function check(what: string, ret: number): number {
  if (ret < 0) throw new BpfError(what, ret, -ret === os.constants.errno.EPERM ? EPERM_HINT : undefined);
  return ret;
}

const TAIL_LINES = 8;

/**
 * The verifier rejected a program. The message names the program, the cause (errno) and the last
 * useful log lines (the verifier's complaint is at the end, before the "processed N insns" summary);
 * `.log` keeps the whole log.
 */
export class VerifierError extends BpfError {
  readonly program: string;
  readonly log: string;
  readonly truncated: boolean;
  constructor(program: string, err: number, log: string, truncated: boolean) {
    super(`load program ${program}`, err, log.trim() === '' && Math.abs(err) === os.constants.errno.EPERM ? EPERM_HINT : undefined);
    this.name = 'VerifierError';
    this.program = program;
    this.log = log;
    this.truncated = truncated;
    const lines = log.split('\n').map((l) => l.trimEnd()).filter((l) => l !== '');
    // Drop the trailing bookkeeping lines: they say how much was checked, not what is wrong.
    let end = lines.length;
    while (end > 0 && /^(processed \d+ insns|verification time|stack depth|-- END PROG LOAD LOG --)/.test(lines[end - 1])) end--;
    const start = Math.max(0, end - TAIL_LINES);
    const tail = lines.slice(start, end);
    if (tail.length > 0) {
      const omitted = start > 0 ? `\n\t(${start} lines omitted)` : '';
      this.message += `:${omitted}\n\t${tail.join('\n\t')}${truncated ? '\n\t(log truncated)' : ''}`;
    }
  }
}

/** The running kernel (or this machine's setup) lacks something a program needs. */
export class UnsupportedFeatureError extends Error {
  readonly feature: string;
  readonly minKernel?: string;
  constructor(feature: string, minKernel?: string, detail?: string) {
    super(`${feature} is not supported${minKernel ? ` (requires Linux ${minKernel})` : ''}${detail ? `: ${detail}` : ''}`);
    this.name = 'UnsupportedFeatureError';
    this.feature = feature;
    this.minKernel = minKernel;
  }
}
