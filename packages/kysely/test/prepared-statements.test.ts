import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { compileOnce } from '../src/compiled-query.ts'
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

  // A rolling deploy: another process migrates the tables while this one's pool holds
  // statements prepared against the old columns.
  describe.each([
    ['PostgreSQL', () => DATABASE_URL],
    ['the embedded database', () => embedded.url],
  ])('on %s, a read whose table another connection altered', (_name, url) => {
    /** A pool of one connection, a table of its own, and a compiled `select *` of it. */
    async function setup() {
      const { db, close } = await openDatabase({ url: url(), maxConnections: 1 })
      const schema = randomSchema('tk_altered')
      cleanups.push(async () => {
        await db.schema.dropSchema(schema).ifExists().cascade().execute()
        await close()
      })
      await db.schema.createSchema(schema).execute()
      await sql`create table ${sql.table(`${schema}.things`)} (id int primary key, name text)`.execute(
        db,
      )
      await sql`insert into ${sql.table(`${schema}.things`)} values (1, 'one')`.execute(db)
      const ID = 0
      const read = compileOnce(
        db.withSchema(schema).selectFrom('things').selectAll().where('id', '=', ID),
        [ID] as [id: number],
      )
      expect((await read.run(db, 1)).rows).toEqual([{ id: 1, name: 'one' }])
      const alter = () =>
        fromAnotherConnection(url(), `alter table "${schema}".things add column extra int`)
      return { db, read, alter }
    }

    it('is prepared again under a new name, once: the caller gets its rows, not the error', async () => {
      const { db, read, alter } = await setup()
      // What the pool's connection meets: a named statement of the old columns fails.
      const plain = new pg.Client({ connectionString: url() })
      await plain.connect()
      try {
        await plain.query({ name: 'stale', text: read.sql, values: [1] })
        await alter()
        await expect(
          plain.query({ name: 'stale', text: read.sql, values: [1] }),
        ).rejects.toMatchObject({
          code: '0A000',
          message: 'cached plan must not change result type',
        })
      } finally {
        await plain.end()
      }

      expect((await read.run(db, 1)).rows).toEqual([{ id: 1, name: 'one', extra: null }])
      expect((await read.run(db, 1)).rows).toEqual([{ id: 1, name: 'one', extra: null }])
      const names = (await preparedStatements.execute(db)).rows
        .filter((row) => row.statement === read.sql)
        .map((row) => row.name.replace(/^c\d+_/, ''))
        .sort()
      // The stale statement, and the one prepared again, which the last run reused (no `_r2`).
      expect(names).toEqual([
        expect.stringMatching(/^transcodekit_\d+$/),
        expect.stringMatching(/^transcodekit_\d+_r1$/),
      ])
      expect(names[1]).toBe(`${names[0]}_r1`)
    })

    it('in a transaction, fails it (it is aborted), and runs again after it', async () => {
      const { db, read, alter } = await setup()
      await alter()
      await expect(db.transaction().execute((trx) => read.run(trx, 1))).rejects.toMatchObject({
        code: '0A000',
      })
      expect((await read.run(db, 1)).rows).toEqual([{ id: 1, name: 'one', extra: null }])
    })
  })
})

/** Runs `statement` on a connection of its own, as another process would. */
async function fromAnotherConnection(url: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query(statement)
  } finally {
    await client.end()
  }
}
