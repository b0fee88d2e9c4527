// Process-wide pino logger (JSON; pretty on a TTY) and per-module debug tracers behind KURVE_TRACE.
import pino from 'pino';

function makeRoot(): pino.Logger {
  const level = process.env.KURVE_LOG_LEVEL ?? 'info';
  // Services log to stdout; commands whose stdout is their result (`kurve status --json`) set
  // KURVE_LOG_STDERR=1 so that a warning cannot corrupt it.
  const fd = process.env.KURVE_LOG_STDERR === '1' ? 2 : 1;
  const pretty = (fd === 2 ? process.stderr : process.stdout).isTTY && process.env.KURVE_LOG_JSON !== '1';
  if (pretty) {
    try {
      return pino({ level, base: { pid: process.pid } }, require('pino-pretty')({ colorize: true, sync: true, destination: fd }));
    } catch {
      // pino-pretty is optional at run time: fall back to JSON.
    }
  }
  return pino({ level, base: { pid: process.pid } }, fd === 2 ? pino.destination({ fd: 2, sync: true }) : undefined);
}

let root: pino.Logger | undefined;
export function logger(): pino.Logger {
  root ??= makeRoot();
  return root;
}
export function setLogLevel(level: string): void {
  logger().level = level;
}
export function moduleLogger(module: string): pino.Logger {
  return logger().child({ module });
}

/**
 * A tracer is a cheap guard for hot-path debug lines: `if (tr.on) tr.log('rx %d', unique)`.
 * KURVE_TRACE=fuse,rpc (or `all`) switches modules on.
 */
export interface Tracer {
  readonly on: boolean;
  log(msg: string, ...args: unknown[]): void;
}
export function tracer(module: string): Tracer {
  const spec = (process.env.KURVE_TRACE ?? '').split(',').map((s) => s.trim());
  const on = spec.includes('all') || spec.includes(module);
  const log = logger().child({ module }, { level: on ? 'trace' : 'info' });
  return { on, log: (msg, ...args) => log.trace({}, msg, ...(args as [])) };
}
