/**
 * An exclusive lock's value in Redis is `<owner token>:<fence>` (the fence is kept with the hold).
 * Tests that look at the raw key compare owners: this is the token part, or null for no lock.
 */
export function ownerOf(value: string | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  const separator = value.indexOf(':');
  return separator < 0 ? value : value.slice(0, separator);
}
