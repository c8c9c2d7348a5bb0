import type { Compilable, CompiledQuery, QueryResult } from 'kysely'
import { prepareOnEveryConnection } from './prepared-statements.ts'

/** What runs a compiled query: a `Kysely` instance or one of its transactions. */
export interface QueryRunner {
  executeQuery<R>(query: CompiledQuery<R>): Promise<QueryResult<R>>
}

/**
 * A query that Kysely builds and compiles once, then runs with new parameter values: the
 * repository's hot reads (a job by id, polled by every client following a job) skip the
 * query builder and the compiler, which cost as much as the rest of the request.
 *
 * The query is built with `placeholders` for its values; compiling it must yield exactly those
 * values as its parameters, in that order, so that each run can put its own in their place.
 * Anything else (a value inlined in the SQL, an extra parameter) throws at build time.
 *
 * On a pool that `openDatabase` made, it runs as a named prepared statement.
 */
export interface CompiledOnce<Values extends readonly unknown[], Row> {
  /** Runs it on `db`, or on a transaction of it. */
  run(db: QueryRunner, ...values: Values): Promise<QueryResult<Row>>
  /** The SQL it runs (with `$1`, `$2`… for the values). */
  readonly sql: string
}

export function compileOnce<Values extends readonly unknown[], Row>(
  query: Compilable<Row>,
  placeholders: Values,
): CompiledOnce<Values, Row> {
  const compiled = query.compile()
  const { parameters } = compiled
  if (
    parameters.length !== placeholders.length ||
    parameters.some((value, index) => value !== placeholders[index])
  ) {
    throw new Error(
      `compileOnce: the query compiled to parameters ${JSON.stringify(parameters)}, not the placeholders ${JSON.stringify(placeholders)}`,
    )
  }
  prepareOnEveryConnection(compiled.sql)
  return {
    sql: compiled.sql,
    run(db, ...values) {
      const withValues: CompiledQuery<Row> = { ...compiled, parameters: values }
      return db.executeQuery(withValues)
    },
  }
}
