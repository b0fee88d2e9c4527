// `kurve rto`: per destination prefix TCP SYN RTO and minimum RTO through the tcp_tune sockops
// program; settings, statistics and the attachment live in pins and outlive this command.
import { Command } from 'commander';

const PIN_HELP = 'BPF pin directory (env KURVE_BPF_PIN_DIR)';

async function ms(text: string, what: string): Promise<number> {
  const { parseDuration } = await import('../../common/config');
  try {
    return parseDuration(text, 'ms');
  } catch {
    throw new Error(`invalid ${what} "${text}": use a duration such as 200ms, 1.5s or 2m`);
  }
}

function fmtMs(v: number | undefined): string {
  if (v === undefined) return '-';
  return v >= 1000 && v % 1000 === 0 ? `${v / 1000}s` : `${v}ms`;
}

function table(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function register(program: Command): void {
  const rto = program
    .command('rto')
    .description('tune TCP retransmission timeouts per destination prefix (eBPF sockops; needs root)')
    .addHelpText('after', `
The SYN RTO replaces the kernel's fixed 1 s initial retransmission timeout for connections to a
prefix, so a lost SYN to a nearby server costs e.g. 200 ms instead of 1 s. The minimum RTO lowers
the 200 ms floor on established connections (the kernel accepts 8-200 ms). Settings, statistics
and the attachment are pinned under the pin directory and survive this command exiting.

Examples:
  kurve rto set 10.0.0.0/8 --syn-rto 200ms --rto-min 20ms
  kurve rto set default --syn-rto 500ms      # every destination no other prefix matches
  kurve rto attach                           # tune every process's sockets (cgroup2 root)
  kurve rto list
  kurve rto clear 10.0.0.0/8
  kurve rto detach`);

  rto
    .command('set <prefix>')
    .description('set the SYN RTO and/or minimum RTO for a prefix (IPv4/IPv6 CIDR, an address, or "default")')
    .option('--syn-rto <duration>', 'initial (SYN) retransmission timeout, 1ms-120s (kernel default 1s)')
    .option('--rto-min <duration>', 'minimum RTO on established connections, 8ms-200ms (kernel default 200ms)')
    .option('--pin-dir <dir>', PIN_HELP)
    .addHelpText('after', `
A set replaces the prefix's settings: an option left out means the kernel default for it.
The longest matching prefix wins; "default" matches every destination (IPv4 and IPv6) that no
other prefix matches. Statistics of a prefix survive changes to its settings.

Examples:
  kurve rto set 192.168.1.0/24 --syn-rto 200ms
  kurve rto set fd00::/8 --syn-rto 100ms --rto-min 10ms`)
    .action(async (prefix: string, o: { synRto?: string; rtoMin?: string; pinDir?: string }) => {
      if (o.synRto === undefined && o.rtoMin === undefined) throw new Error('give --syn-rto and/or --rto-min');
      const synRtoMs = o.synRto === undefined ? undefined : await ms(o.synRto, '--syn-rto');
      const rtoMinMs = o.rtoMin === undefined ? undefined : await ms(o.rtoMin, '--rto-min');
      const { RtoTuner, validateSynRto, validateRtoMin } = await import('../../ebpf/rto-tuner');
      const { parsePrefix } = await import('../../ebpf/prefix');
      // Validate everything before touching the kernel, so a typo never half-applies.
      parsePrefix(prefix);
      if (synRtoMs !== undefined) validateSynRto(synRtoMs);
      if (rtoMinMs !== undefined) validateRtoMin(rtoMinMs);
      const t = RtoTuner.open(o.pinDir);
      try {
        const s = t.set(prefix, { synRtoMs, rtoMinMs });
        const att = t.attachment();
        process.stdout.write(`${s.prefix}: SYN RTO ${fmtMs(s.synRtoMs)}, min RTO ${fmtMs(s.rtoMinMs)}\n`);
        if (!att) process.stdout.write('note: not attached yet; run `kurve rto attach` to apply it to new connections\n');
      } finally {
        t.close();
      }
    });

  rto
    .command('list')
    .description('show prefixes, settings and statistics (connections tuned, SYN/data retransmits, smoothed RTT)')
    .option('--json', 'print JSON', false)
    .option('--pin-dir <dir>', PIN_HELP)
    .action(async (o: { json: boolean; pinDir?: string }) => {
      const { RtoTuner } = await import('../../ebpf/rto-tuner');
      const t = RtoTuner.open(o.pinDir);
      try {
        const entries = t.list();
        const attachment = t.attachment();
        if (o.json) {
          process.stdout.write(JSON.stringify({ attached: attachment ?? null, prefixes: entries }, null, 2) + '\n');
          return;
        }
        process.stdout.write(attachment ? `attached to cgroup ${attachment.cgroup ?? `id ${attachment.cgroupId}`}\n` : 'not attached (kurve rto attach)\n');
        if (entries.length === 0) {
          process.stdout.write('no prefixes set (kurve rto set PREFIX --syn-rto 200ms)\n');
          return;
        }
        process.stdout.write(table(
          ['PREFIX', 'SYN_RTO', 'MIN_RTO', 'TUNED', 'MIN_RTO_SET', 'SYN_RETRANS', 'DATA_RETRANS', 'SRTT', 'RTT_SAMPLES'],
          entries.map((e) => [
            e.prefix, fmtMs(e.synRtoMs), fmtMs(e.rtoMinMs), String(e.stats.synTuned), String(e.stats.rtoMinSet),
            String(e.stats.synRetrans), String(e.stats.dataRetrans),
            e.stats.rttSamples ? `${(e.stats.srttUs / 1000).toFixed(3)}ms` : '-', String(e.stats.rttSamples),
          ]),
        ));
      } finally {
        t.close();
      }
    });

  rto
    .command('clear [prefix]')
    .description('remove one prefix, or all of them without an argument')
    .option('--pin-dir <dir>', PIN_HELP)
    .action(async (prefix: string | undefined, o: { pinDir?: string }) => {
      const { RtoTuner } = await import('../../ebpf/rto-tuner');
      const t = RtoTuner.open(o.pinDir);
      try {
        const n = t.clear(prefix);
        if (prefix !== undefined && n === 0) throw new Error(`prefix ${prefix} is not set`);
        process.stdout.write(`cleared ${n} prefix${n === 1 ? '' : 'es'}\n`);
      } finally {
        t.close();
      }
    });

  rto
    .command('attach')
    .description('attach the sockops program to a cgroup v2 directory (and the retransmit tracepoint)')
    .option('--cgroup <path>', 'cgroup v2 directory (default: the cgroup2 mount root, found in /proc/mounts)')
    .option('--pin-dir <dir>', PIN_HELP)
    .addHelpText('after', `
The default is the root of the cgroup v2 hierarchy: sockops programs apply to sockets created by
processes in the cgroup and its descendants, so the root covers every process on the host,
Kurve's own gRPC clients and servers included. Give a narrower cgroup to tune only its processes.

Examples:
  kurve rto attach
  kurve rto attach --cgroup /sys/fs/cgroup/kurve.slice`)
    .action(async (o: { cgroup?: string; pinDir?: string }) => {
      const { RtoTuner } = await import('../../ebpf/rto-tuner');
      const t = RtoTuner.open(o.pinDir);
      try {
        const a = t.attach(o.cgroup);
        process.stdout.write(`attached to cgroup ${a.cgroup ?? o.cgroup ?? `id ${a.cgroupId}`} (pinned: ${a.links.join(', ')})\n`);
      } finally {
        t.close();
      }
    });

  rto
    .command('detach')
    .description('detach the programs (settings stay; `kurve bpf unload` removes everything)')
    .option('--pin-dir <dir>', PIN_HELP)
    .action(async (o: { pinDir?: string }) => {
      const { RtoTuner } = await import('../../ebpf/rto-tuner');
      const t = RtoTuner.open(o.pinDir);
      try {
        process.stdout.write(t.detach() ? 'detached\n' : 'was not attached\n');
      } finally {
        t.close();
      }
    });
}
