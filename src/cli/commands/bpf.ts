// `kurve bpf`: what Kurve has loaded in the kernel (pins, attachments, features) and unloading it.
import { Command } from 'commander';

export function register(program: Command): void {
  const bpf = program
    .command('bpf')
    .description('inspect or remove Kurve\'s eBPF programs, maps and pins')
    .addHelpText('after', `
Examples:
  kurve bpf status
  kurve bpf status --json
  kurve bpf unload          # detaches and removes everything pinned under the pin directory`);

  bpf
    .command('status')
    .description('detected kernel features, pinned maps and links (with the program and cgroup of each link)')
    .option('--json', 'print JSON', false)
    .option('--pin-dir <dir>', 'BPF pin directory (env KURVE_BPF_PIN_DIR)')
    .action(async (o: { json: boolean; pinDir?: string }) => {
      const { bpfStatus } = await import('../../ebpf/status');
      const s = bpfStatus(o.pinDir);
      if (o.json) {
        process.stdout.write(JSON.stringify(s, null, 2) + '\n');
        return;
      }
      const f = s.features;
      const yes = (b: boolean | string | undefined) => (b ? (typeof b === 'string' ? b : 'yes') : 'no');
      process.stdout.write(
        `kernel ${f.kernel}; root ${yes(f.root)}; CAP_BPF ${yes(f.capBpf)}; BTF ${yes(f.btf)}; lockdown ${f.lockdown ?? 'n/a'}\n` +
          `bpffs ${yes(f.bpffs)}; tracefs ${yes(f.tracefs)}; cgroup2 ${yes(f.cgroup2)}; bpftrace ${yes(f.bpftrace)}\n` +
          `tracepoints: ${Object.entries(f.tracepoints).map(([k, v]) => `${k} ${v ? 'yes' : 'no'}`).join(', ')}\n` +
          `pins under ${s.pinDir}:\n`,
      );
      if (s.pins.length === 0) process.stdout.write('  (none)\n');
      for (const p of s.pins) {
        const i = p.info;
        const what = p.error ?? (i?.kind === 'map' ? `map ${i.map.name} (${p.detail}, key ${i.map.keySize} B, value ${i.map.valueSize} B, max ${i.map.maxEntries}, id ${i.map.id})` : `${p.detail} (id ${i?.kind === 'link' ? i.link.id : '?'})`);
        process.stdout.write(`  ${p.path}: ${what}\n`);
      }
      process.stdout.write('loaded Kurve programs (pinned or held by a running process):\n');
      if (s.programs.length === 0) process.stdout.write('  (none)\n');
      for (const p of s.programs) process.stdout.write(`  id ${p.id}: ${p.name} (type ${p.type}, tag ${p.tag})\n`);
    });

  bpf
    .command('unload')
    .description('detach and remove every pinned Kurve program, link and map (leaves no pins)')
    .option('--pin-dir <dir>', 'BPF pin directory (env KURVE_BPF_PIN_DIR)')
    .action(async (o: { pinDir?: string }) => {
      const { unloadAll } = await import('../../ebpf/status');
      const removed = unloadAll(o.pinDir);
      process.stdout.write(removed.length ? `removed ${removed.length} pins:\n${removed.map((p) => `  ${p}`).join('\n')}\n` : 'nothing pinned\n');
    });
}
