import { combineRanges, parse } from 'range-parser'

/**
 * Parses a `Range` header against an object of `size` bytes (RFC 9110 §14.1.2, §14.2) with
 * jshttp's `range-parser`. Returns `null` when the whole object should be sent (no header,
 * another unit, an invalid range-spec, or several ranges that do not merge into one — which
 * the RFC lets a server ignore), or `'unsatisfiable'` when no range overlaps the object
 * (416), however large its first position.
 */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | 'unsatisfiable' | null {
  if (!header) return null
  const { code, type, ranges } = parse(size, header)
  // Bit 1: a range-spec that is not valid syntax (or last < first): ignore the header.
  if (type !== 'bytes' || (code & 1) !== 0) return null
  if (ranges.length === 0) return 'unsatisfiable'
  const merged = combineRanges(ranges)
  if (merged.length !== 1) return null
  const { start, end } = merged[0]!
  return { start, end }
}
