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
export class PreparingClient extends pg.Client {
  /** The statements this connection prepared again under a name of its own, by SQL text. */
  readonly ownNames = new Map<string, string>()
  /** How many it renamed, for the next name. */
  renamed = 0
}

const namedQuery: Query = function (config, values, ...rest) {
  const client = this as PreparingClient
  const name = typeof config === 'string' ? statementName(client, config) : undefined
  if (name === undefined || (values !== undefined && !Array.isArray(values))) {
    return query.call(client, config, values, ...rest)
  }
  // Kysely waits for a promise; a callback (none of ours passes one) goes without the retry.
  if (rest.length > 0) return query.call(client, { name, text: config, values }, ...rest)
  return runNamed(client, config as string, values as unknown[] | undefined)
}
;(PreparingClient.prototype as unknown as { query: Query }).query = namedQuery

/**
 * Runs a registered text as this connection's named statement. A statement whose result
 * columns changed since it was prepared (another process altered the table: a rolling deploy's
 * migration) fails once on each connection that holds it; outside a transaction, it is
 * prepared again under a new name and run once more, so the caller never sees that.
 *
 * A new name rather than `DEALLOCATE`: the wire server in front of PGlite gives each connection
 * its statement names in the protocol's messages, never in SQL text, and pg keeps its own
 * record of the names a connection parsed. The stale statement stays on the server until the
 * connection closes: one per statement and migration.
 */
async function runNamed(
  client: PreparingClient,
  text: string,
  values: unknown[] | undefined,
): Promise<unknown> {
  const run = () =>
    query.call(client, { name: statementName(client, text), text, values }) as Promise<unknown>
  try {
    return await run()
  } catch (error) {
    // In a transaction the error aborted it: the caller's retry is the transaction's.
    if (!isStalePlan(error) || client.getTransactionStatus() !== 'I') throw error
    client.ownNames.set(text, `${names.get(text)}_r${++client.renamed}`)
    return run()
  }
}

/** The name `text` has on this connection, if it is a registered text. */
function statementName(client: PreparingClient, text: string): string | undefined {
  return client.ownNames.get(text) ?? names.get(text)
}

/**
 * PostgreSQL's "cached plan must not change result type" (SQLSTATE 0A000, feature_not_supported,
 * raised by RevalidateCachedQuery): the other errors of that code are not about a plan.
 */
function isStalePlan(error: unknown): boolean {
  const { code, routine, message } = (error ?? {}) as Partial<pg.DatabaseError>
  return (
    code === '0A000' &&
    (routine === 'RevalidateCachedQuery' || message === 'cached plan must not change result type')
  )
}
