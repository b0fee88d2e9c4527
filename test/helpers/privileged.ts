// Skips that say why, and that CI forbids: with KURVE_REQUIRE_PRIVILEGED=1 a missing capability
// fails the test instead of skipping it, so a skip cannot hide a regression.
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';

export const requirePrivileged = process.env.KURVE_REQUIRE_PRIVILEGED === '1';

export function whyNotRoot(): string | undefined {
  return process.getuid?.() === 0 ? undefined : 'not root';
}
export function whyNoFuse(): string | undefined {
  return whyNotRoot() ?? (fs.existsSync('/dev/fuse') ? undefined : 'no /dev/fuse');
}
export function whyNoCommand(cmd: string): string | undefined {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return undefined;
  } catch {
    return `${cmd} missing`;
  }
}
export function whyNoBpf(): string | undefined {
  return whyNotRoot() ?? (fs.existsSync('/sys/kernel/btf/vmlinux') ? undefined : 'no kernel BTF');
}

/**
 * describe() when every reason is undefined; otherwise describe.skip with the reason in the title,
 * or a failing test when KURVE_REQUIRE_PRIVILEGED=1.
 */
export function describeIf(reasons: Array<string | undefined>, title: string, body: () => void): void {
  const why = reasons.filter((r): r is string => r !== undefined).join(', ');
  if (!why) {
    describe(title, body);
  } else if (requirePrivileged) {
    describe(title, () => {
      it(`requires privileges (${why})`, () => {
        throw new Error(`KURVE_REQUIRE_PRIVILEGED=1 but: ${why}`);
      });
    });
  } else {
    describe.skip(`${title} [skipped: ${why}]`, body);
  }
}
