import { decodeCursor, encodeCursor, InvalidRequestError, type Page } from '@transcodekit/core'
import type { SelectQueryBuilder } from 'kysely'

export interface NewestFirstPageOptions<Row, T> {
  /** The keyset: the `created_at` and `id` columns (table-qualified when the query joins). */
  columns: readonly [createdAt: string, id: string]
  /** The caller's cursor: the page starts after the row it names. */
  cursor: string | null | undefined
  /** The page size, already bounded (`pageLimit`). */
  limit: number
  /** Whether a cursor's id can be an id of these rows: a cursor whose id cannot is refused. */
  validId(id: string): boolean
  toItem(row: Row): T
}

/**
 * One page of `query`'s rows newest first, keyed on (created_at, id), and the cursor of the
 * next page: the listing shape of the repository and the webhook store.
 */
export async function newestFirstPage<Row, T extends { createdAt: Date; id: string }>(
  // biome-ignore lint/suspicious/noExplicitAny: any database and table that have the two columns
  query: SelectQueryBuilder<any, any, Row>,
  options: NewestFirstPageOptions<Row, T>,
): Promise<Page<T>> {
  const { columns, cursor, limit } = options
  const [createdAt, id] = columns
  let paged = query
  if (cursor) {
    const after = decodeCursor(cursor)
    if (!options.validId(after.id)) {
      throw new InvalidRequestError('INVALID_CURSOR', 'the cursor is malformed')
    }
    paged = paged.where(({ eb, refTuple, tuple }) =>
      eb(refTuple(createdAt, id), '<', tuple(after.createdAt, after.id)),
    )
  }
  const rows = (await paged
    .orderBy(createdAt, 'desc')
    .orderBy(id, 'desc')
    .limit(limit + 1)
    .execute()) as Row[]
  const items = rows.slice(0, limit).map(options.toItem)
  const last = items.at(-1)
  return {
    items,
    nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.id) : null,
  }
}
