import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Kysely } from 'kysely'
import pg from 'pg'
import { migrateToLatest, openDatabase, startEmbeddedPostgres } from '../../src/index.ts'

export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/**
 * `pglite`: in this process; `embedded`: PGlite in its own process, through the wire protocol
 * (`startEmbeddedPostgres`); `postgres`: the server at DATABASE_URL.
 */
export type Backend = 'pglite' | 'embedded' | 'postgres'

/** A schema name of its own for every test file (or test), so files run in parallel. */
export function randomSchema(prefix = 'tk_test'): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`
}

/**
 * One database per test file: PGlite in a temp folder (in this process or its own), or a pool
 * on the PostgreSQL server.
 * `schema()` makes a fresh migrated schema in it, `bossSchema()` names one for pg-boss;
 * `close()` drops every schema of both kinds and closes what it opened (and removes PGlite's
 * folder).
 */
export class TestDatabase {
  readonly backend: Backend
  #opened: Promise<{ db: Kysely<any>; close: () => Promise<void>; dir: string | null }> | null =
    null
  readonly #schemas: string[] = []

  constructor(backend: Backend) {
    this.backend = backend
  }

  async db(): Promise<Kysely<any>> {
    return (await this.#open()).db
  }

  #open() {
    this.#opened ??= (async () => {
      if (this.backend === 'postgres') {
        const { db, close } = await openDatabase({ url: DATABASE_URL, maxConnections: 12 })
        return { db, close, dir: null }
      }
      const dir = await mkdtemp(join(tmpdir(), 'tk-pglite-'))
      if (this.backend === 'pglite') {
        const { db, close } = await openDatabase({ dataDir: dir })
        return { db, close, dir }
      }
      const embedded = await startEmbeddedPostgres({ dataDir: dir })
      const opened = await openDatabase({ url: embedded.url })
      const close = async () => {
        await opened.close()
        await embedded.close()
      }
      return { db: opened.db, close, dir }
    })()
    return this.#opened
  }

  /** A new schema with our tables in it. */
  async schema(): Promise<{ db: Kysely<any>; schema: string }> {
    const db = await this.db()
    const schema = randomSchema()
    this.#schemas.push(schema)
    await migrateToLatest(db, { schema })
    return { db, schema }
  }

  /** A schema name of its own for pg-boss (which makes the schema), dropped by `close()`. */
  bossSchema(): string {
    const schema = randomSchema('tk_boss')
    this.#schemas.push(schema)
    return schema
  }

  async dropSchema(schema: string): Promise<void> {
    const db = await this.db()
    await db.schema.dropSchema(schema).ifExists().cascade().execute()
  }

  async close(): Promise<void> {
    if (!this.#opened && this.#schemas.length === 0) return
    const { db, close, dir } = await this.#open()
    for (const schema of this.#schemas) {
      await db.schema.dropSchema(schema).ifExists().cascade().execute()
    }
    await close()
    if (dir) await rm(dir, { recursive: true, force: true })
  }
}

/** Runs one statement on the PostgreSQL server with a short-lived client. */
export async function serverQuery<T extends pg.QueryResultRow = any>(
  text: string,
  values: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: DATABASE_URL })
  await client.connect()
  try {
    return (await client.query<T>(text, values)).rows
  } finally {
    await client.end()
  }
}

/** Polls `read` until `done` holds, at most `timeoutMs`. */
export async function waitFor<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  { timeoutMs = 30_000, intervalMs = 100, what = 'condition' } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await read()
    if (done(value)) return value
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}; last value: ${JSON.stringify(value)}`,
      )
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}
