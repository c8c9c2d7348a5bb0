import { decodeCursor, encodeCursor, pageLimit } from '../keys.ts'
import type { Page, PageRequest } from '../model.ts'

/**
 * A page of in-memory items, newest first, ties broken by id (descending), resuming after the
 * cursor's position; the items are copies. The order the database stores list in.
 */
export function paginate<T extends { id: string; createdAt: Date }>(
  items: T[],
  request: PageRequest,
): Page<T> {
  const limit = pageLimit(request.limit)
  const after = request.cursor ? decodeCursor(request.cursor) : null
  const sorted = items.sort(newestFirst)
  const start = after
    ? sorted.findIndex(
        (item) => newestFirst(item, { id: after.id, createdAt: after.createdAt }) > 0,
      )
    : 0
  const page = start === -1 ? [] : sorted.slice(start, start + limit)
  const last = page.at(-1)
  const more = start !== -1 && start + limit < sorted.length
  return {
    items: page.map((item) => structuredClone(item)),
    nextCursor: more && last ? encodeCursor(last.createdAt, last.id) : null,
  }
}

function newestFirst(
  a: { id: string; createdAt: Date },
  b: { id: string; createdAt: Date },
): number {
  const byTime = b.createdAt.getTime() - a.createdAt.getTime()
  if (byTime !== 0) return byTime
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0
}
