/** CRC16-CCITT (XMODEM) lookup table, as Redis Cluster uses for key slots. */
const TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ byte) & 0xff];
  return crc;
}

/**
 * The Redis Cluster slot of a key: only the part inside the first `{...}` counts when it is
 * non-empty (a hash tag), so `lock:{order:42}` and `lock:{order:42}:fence` share a slot.
 */
export function clusterSlot(key: string): number {
  const bytes = Buffer.from(key, 'utf8');
  const open = bytes.indexOf(0x7b); // '{'
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1); // '}'
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) % 16384;
  }
  return crc16(bytes) % 16384;
}

/** Candidates tried before giving up on a slot (a prefix with its own `{...}` pins every name to one slot). */
const TAG_SEARCH_LIMIT = 1 << 21;

/**
 * Names of the shared fence counters on a Cluster, one per hash slot: `<prefix>fences{<tag>}`,
 * where `<tag>` is the first of 0, 1, 2, ... (base 36) whose name lands in that slot. Part of the
 * key layout: every instance must find the same name for a slot, so the search order is fixed.
 * Found lazily and remembered: covering all 16384 slots takes about 170,000 CRC16s, once.
 */
export class SlotCounters {
  private readonly names = new Map<number, string>();
  private next = 0;

  constructor(private readonly prefix: string) {}

  /** The counter's name for `slot`, or undefined if no candidate lands there (then use a per-key counter). */
  nameFor(slot: number): string | undefined {
    const known = this.names.get(slot);
    if (known !== undefined || this.next >= TAG_SEARCH_LIMIT) return known;
    while (this.next < TAG_SEARCH_LIMIT) {
      const name = `${this.prefix}fences{${this.next.toString(36)}}`;
      this.next += 1;
      const landsIn = clusterSlot(name);
      if (!this.names.has(landsIn)) this.names.set(landsIn, name);
      if (landsIn === slot) return name;
    }
    return this.names.get(slot);
  }
}
