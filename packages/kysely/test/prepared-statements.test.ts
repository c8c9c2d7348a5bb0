import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type EmbeddedPostgres,
  kyselyRepository,
  migrateToLatest,
  openDatabase,
  startEmbeddedPostgres,
} from '../src/index.ts'
import { DATABASE_URL, randomSchema } from './support/test-databases.ts'

interface Prepared {
  name: string
  statement: string
}

const preparedStatements = sql<Prepared>`select name, statement from pg_prepared_statements`

describe('named prepared statements of the compiled reads', () => {
  const cleanups: Array<() => Promise<void>> = []
  let embedded: EmbeddedPostgres
  // Started here, under the hooks' longer timeout: a new folder runs initdb first.
  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tk-prepared-'))
    cleanups.push(() => rm(dir, { recursive: true, force: true }))
    embedded = await startEmbeddedPostgres({ dataDir: dir })
    cleanups.push(() => embedded.close())
  })
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup()
  })

  it('a job by id runs as a statement its connection prepared once, on PostgreSQL', async () => {
    const { db, close } = await openDatabase({ url: DATABASE_URL, maxConnections: 1 })
    const schema = randomSchema('tk_prepared')
    cleanups.push(async () => {
      await db.schema.dropSchema(schema).ifExists().cascade().execute()
      await close()
    })
    await migrateToLatest(db, { schema })
    const repository = kyselyRepository({ db, schema })
    expect(await repository.getJob(randomUUID())).toBeNull()
    expect(await repository.getJob(randomUUID())).toBeNull()
    // One connection: the statements listed are the ones our reads prepared on it.
    const { rows } = await preparedStatements.execute(db)
    const getJob = rows.filter((row) => row.statement.includes(`"${schema}"."jobs"."id" = $1`))
    expect(getJob).toEqual([
      { name: expect.stringMatching(/^transcodekit_\d+$/), statement: expect.any(String) },
    ])
  })

  it('on the embedded database, each connection has its own statements, closed when it goes', async () => {
    const pool = await openDatabase({ url: embedded.url, maxConnections: 10 })
    await migrateToLatest(pool.db)
    const repository = kyselyRepository({ db: pool.db })
    // Every connection of the pool prepares the same statement name on PGlite's one session.
    const reads = await Promise.allSettled(
      Array.from({ length: 40 }, () => repository.getJob(randomUUID())),
    )
    expect(reads.filter((read) => read.status === 'rejected')).toEqual([])
    const during = await preparedStatements.execute(pool.db)
    expect(during.rows.length).toBeGreaterThan(1)
    for (const { name } of during.rows) expect(name).toMatch(/^c\d+_transcodekit_\d+$/)
    await pool.close()

    // The closed connections' statements went with them.
    const after = await openDatabase({ url: embedded.url, maxConnections: 1 })
    try {
      expect((await preparedStatements.execute(after.db)).rows).toEqual([])
    } finally {
      await after.close()
    }
  })
})
