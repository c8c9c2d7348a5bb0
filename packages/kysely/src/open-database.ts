import { mkdir } from 'node:fs/promises'
import { resolve } from 'node:path'
import { ConfigurationError, consoleLogger, type Logger } from '@transcodekit/core'
import { Kysely, PGliteDialect, PostgresDialect } from 'kysely'
import pg from 'pg'
import { PreparingClient } from './prepared-statements.ts'

export interface OpenServerDatabaseOptions {
  /** A PostgreSQL connection string (`postgres://user@host:5432/db`). */
  url: string
  /** Most connections the pool opens. @default 10 */
  maxConnections?: number
  /** Where a failure of an idle connection is reported (pino fits). @default core's consoleLogger() */
  logger?: Logger
}

export interface OpenEmbeddedDatabaseOptions {
  /** A folder where the embedded PostgreSQL (PGlite) keeps its files; made if missing. */
  dataDir: string
  /**
   * PostgreSQL settings for the embedded server (`-c name=value` at start), e.g.
   * `{ shared_buffers: '16MB' }`: its WebAssembly memory never shrinks, so smaller buffers mean
   * a smaller process. @default PGlite's own (shared_buffers 128MB)
   */
  postgresSettings?: Record<string, string>
}

export type OpenDatabaseOptions = OpenServerDatabaseOptions | OpenEmbeddedDatabaseOptions

export interface OpenedDatabase<DB> {
  db: Kysely<DB>
  /** Closes the pool or the embedded database that `openDatabase` created. Idempotent. */
  close(): Promise<void>
}

// pg's type parsers are global to the `pg` module, which an installed app shares with us: Strapi,
// for one, sets JSONB to come back as text for its own connections. Our pool parses the JSON our
// tables hold itself, whatever the app set; every other type keeps pg's (global) parser.
const JSON_OIDS = new Set([114, 3802]) // json, jsonb
const OUR_TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    JSON_OIDS.has(oid) && format !== 'binary'
      ? (value: string) => JSON.parse(value)
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
}

/**
 * Opens a PostgreSQL database: the server at `url` through a `pg` pool, or PGlite (PostgreSQL
 * in WebAssembly, in this process) persisted in `dataDir`. What it opens, `close()` closes; a
 * `Kysely` the app made itself is never closed by this package.
 *
 * @example
 * const { db, close } = await openDatabase(
 *   process.env.DATABASE_URL ? { url: process.env.DATABASE_URL } : { dataDir: './data/db' },
 * )
 * await migrateToLatest(db)
 * const repository = kyselyRepository({ db })
 * // … at shutdown
 * await close()
 */
export async function openDatabase<DB = any>(
  options: OpenDatabaseOptions,
): Promise<OpenedDatabase<DB>> {
  if ('url' in options && typeof options.url === 'string' && options.url !== '') {
    const max = options.maxConnections ?? 10
    if (!Number.isInteger(max) || max < 1) {
      throw new ConfigurationError('option "maxConnections" must be a positive integer')
    }
    // The repository's hot reads run as named prepared statements (prepared-statements.ts).
    const pool = new pg.Pool({
      connectionString: options.url,
      max,
      types: OUR_TYPES,
      Client: PreparingClient,
    })
    // An idle connection that the server drops emits `error` on the pool; without a listener
    // that would end the process. The next query reconnects on its own: only worth a warning.
    const logger = options.logger ?? consoleLogger()
    pool.on('error', (error) => {
      logger.warn(
        { error: error.message },
        'transcodekit: an idle database connection failed; the pool opens a new one when needed',
      )
    })
    const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) })
    return { db, close: once(() => db.destroy()) }
  }
  if ('dataDir' in options && typeof options.dataDir === 'string' && options.dataDir !== '') {
    const dataDir = resolve(options.dataDir)
    await mkdir(dataDir, { recursive: true })
    // Loaded only here: a process on a PostgreSQL server (or on the embedded database's own
    // process) never holds PGlite's code.
    const { openPGlite } = await import('./pglite-open.ts')
    const pglite = await openPGlite(dataDir, options.postgresSettings)
    const db = new Kysely<DB>({ dialect: new PGliteDialect({ pglite }) })
    return {
      db,
      close: once(async () => {
        await db.destroy()
        // Kysely only closes PGlite if it ran a query: close it ourselves otherwise.
        if (!pglite.closed) await pglite.close()
      }),
    }
  }
  throw new ConfigurationError('openDatabase needs a non-empty "url" or "dataDir"')
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | null = null
  return () => {
    done ??= fn()
    return done
  }
}
