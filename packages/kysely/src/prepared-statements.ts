import pg from 'pg'

/**
 * Named prepared statements for the queries the repository compiles once (`compileOnce`): the
 * pool that `openDatabase` makes runs them as `pg` named statements, so that each connection
 * sends their SQL and has PostgreSQL parse and plan it once, then only binds the values. A
 * status read sends about 1 KB of SQL otherwise, and the server plans its subquery every time.
 *
 * Kysely's `PostgresDialect` calls `client.query(sql, values)`: the pool's clients give a name
 * to the SQL texts registered here, and leave every other query as it is. Apps that pass their
 * own Kysely instance keep their own pool, unnamed.
 */
const names = new Map<string, string>()

/** Past this many texts (a process making repositories on ever new schemas), no more names. */
const MAX_NAMED = 1000

/** Has every connection of `openDatabase`'s pools prepare `sql` as a named statement. */
export function prepareOnEveryConnection(sql: string): void {
  if (names.has(sql) || names.size >= MAX_NAMED) return
  names.set(sql, `transcodekit_${names.size + 1}`)
}

type Query = (this: pg.Client, config: unknown, values?: unknown, ...rest: unknown[]) => unknown

const query = pg.Client.prototype.query as Query

/**
 * A `pg` client that runs the registered SQL texts as named prepared statements. (`query`
 * is replaced on the prototype: pg types it as a dozen overloads that no override can match.)
 */
export class PreparingClient extends pg.Client {}

const namedQuery: Query = function (config, values, ...rest) {
  const name = typeof config === 'string' ? names.get(config) : undefined
  if (name === undefined || (values !== undefined && !Array.isArray(values))) {
    return query.call(this, config, values, ...rest)
  }
  return query.call(this, { name, text: config, values }, ...rest)
}
;(PreparingClient.prototype as unknown as { query: Query }).query = namedQuery
