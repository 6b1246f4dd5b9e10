import type { LockHolderInfo, LockInfo, LockInstanceInfo } from '../inspection/lock-info.interface.js';

/** 850 ms, 12.3 s, 4m05s, 2h03m. */
export function duration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-';
  if (ms < 0) return ms === -1 ? 'no ttl' : '-';
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)}s`;
  const s = Math.floor(ms / 1_000);
  if (s < 3_600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3_600)}h${String(Math.floor((s % 3_600) / 60)).padStart(2, '0')}m`;
}

/** `app@host:pid`, or `<id> (gone)` when the instance's record has expired. */
export function instanceLabel(instance: LockInstanceInfo | undefined): string {
  if (!instance) return 'unknown (no instance id)';
  if (!instance.alive) return `${instance.id} (gone)`;
  return `${instance.app ? `${instance.app}@` : ''}${instance.host ?? '?'}:${instance.pid ?? '?'}`;
}

function holderLabel(info: LockInfo): string {
  const [first] = info.holders;
  if (!first) return '-';
  return info.holders.length === 1 ? instanceLabel(first.instance) : `${instanceLabel(first.instance)} +${info.holders.length - 1}`;
}

function oldestSince(holders: readonly LockHolderInfo[]): number | undefined {
  const known = holders.map((holder) => holder.since).filter((since): since is number => since !== undefined);
  return known.length === 0 ? undefined : Math.min(...known);
}

function waitersLabel(info: LockInfo): string {
  const parts: string[] = [];
  if (info.queueLength > 0) parts.push(`${info.queueLength} queued`);
  if (info.writerWaiting) parts.push('writer');
  if (parts.length === 0 && info.waiting) parts.push('yes');
  return parts.length === 0 ? '-' : parts.join(', ');
}

function modeLabel(info: LockInfo): string {
  if (info.mode === 'permits') return `permits ${info.holders.length}/${info.permits ?? '?'}`;
  if (info.mode === 'read') return `read x${info.holders.length}`;
  return info.mode ?? '-';
}

export const TABLE_HEADER = ['KEY', 'MODE', 'HOLDER', 'AGE', 'REMAINING', 'FENCE', 'WAITERS'];

/** One row per key: key, mode, holder, age, remaining lease, fence, waiters. */
export function row(info: LockInfo, now: number): string[] {
  const since = oldestSince(info.holders);
  const remaining = info.holders.length === 0 ? undefined : Math.min(...info.holders.map((holder) => holder.remainingMs));
  return [info.key, modeLabel(info), holderLabel(info), duration(since === undefined ? undefined : now - since), duration(remaining), String(info.fence), waitersLabel(info)];
}

export function table(rows: readonly string[][]): string {
  const all = [TABLE_HEADER, ...rows];
  const widths = TABLE_HEADER.map((_, column) => Math.max(...all.map((cells) => cells[column].length)));
  return all.map((cells) => cells.map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]))).join('  ')).join('\n');
}

/** `key=... mode=... holder=... age=... remaining=... fence=... waiters=...` for logs and pipes. */
export function plainLine(info: LockInfo, now: number): string {
  const cells = row(info, now);
  return TABLE_HEADER.map((name, i) => `${name.toLowerCase()}=${/\s/.test(cells[i]) || cells[i] === '' ? JSON.stringify(cells[i]) : cells[i]}`).join(' ');
}

/** The full report of one key, for `inspect`. */
export function details(info: LockInfo, now: number): string {
  const lines = [`${info.key}: ${info.held ? `held (${modeLabel(info)})` : 'not held'}`];
  info.holders.forEach((holder, i) => {
    const instance = holder.instance;
    const who = instanceLabel(instance);
    const parts = [
      `holder ${i + 1}: ${who}`,
      instance ? `instance ${instance.id}` : undefined,
      instance?.version ? `v${instance.version}` : undefined,
      holder.since === undefined ? undefined : `since ${new Date(holder.since).toISOString()} (${duration(now - holder.since)} ago)`,
      `lease left ${duration(holder.remainingMs)}`,
      holder.fence === undefined ? undefined : `fence ${holder.fence}`,
    ].filter(Boolean);
    lines.push(`  ${parts.join(', ')}`);
  });
  lines.push(`  fence counter: ${info.fence}`);
  if (info.permits !== undefined) lines.push(`  permits: ${info.holders.length} of ${info.permits} in use`);
  if (info.writerWaiting) lines.push('  a writer is waiting: new readers queue behind it');
  lines.push(`  queued: ${info.queueLength}`);
  lines.push(`  waiting: ${info.waiting ? 'yes' : 'no'}`);
  if (info.masters) {
    lines.push(`  redlock: quorum ${info.quorum}`);
    for (const master of info.masters) {
      lines.push(
        `    ${master.node}: ${master.up ? (master.held ? `holds it, lease left ${duration(master.remainingMs)}` : 'does not hold it') : `down (${master.error ?? 'no answer'})`}${master.fence === undefined ? '' : `, fence ${master.fence}`}`,
      );
    }
  }
  return lines.join('\n');
}
