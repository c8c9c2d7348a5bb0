import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { kyselyRepository, migrateToLatest, openDatabase } from '../src/index.ts'
import { DATABASE_URL, randomSchema } from './support/test-databases.ts'

/** The modules a fresh Node process loads to import the package's entry. */
function modulesLoadedByTheEntry(): string[] {
  const entry = fileURLToPath(new URL('../src/index.ts', import.meta.url))
  const script = `
    import { registerHooks } from 'node:module'
    const loaded = []
    registerHooks({ load: (url, context, next) => (loaded.push(url), next(url, context)) })
    await import(${JSON.stringify(entry)})
    console.log(JSON.stringify(loaded))`
  return JSON.parse(
    execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }),
  )
}

describe('openDatabase', () => {
  it('loads PGlite only to open it, never in a server that reaches PostgreSQL or the embedded process', () => {
    const loaded = modulesLoadedByTheEntry()
    expect(loaded.some((url) => url.includes('/kysely/src/open-database.ts'))).toBe(true)
    expect(loaded.filter((url) => url.includes('@electric-sql/pglite'))).toEqual([])
  })

  const dirs: string[] = []
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true })
  })

  it('keeps assets and jobs in PGlite’s data folder across a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tk-pglite-'))
    dirs.push(dir)
    const dataDir = join(dir, 'nested', 'db')
    const assetId = randomUUID()
    const jobId = randomUUID()

    const first = await openDatabase({ dataDir })
    await migrateToLatest(first.db)
    const repository = kyselyRepository({ db: first.db })
    await repository.createAsset({
      id: assetId,
      owner: 'owner-a',
      storageKey: `${assetId}/original.wav`,
      originalFilename: null,
      contentType: 'audio/wav',
      size: 10,
      sha256: '0'.repeat(64),
      media: { formatName: 'wav', durationSec: 1, bitRate: null, streams: [] },
      createdAt: new Date(),
    })
    await repository.createJob({
      id: jobId,
      owner: 'owner-a',
      assetId,
      engine: 'ffmpeg',
      idempotencyKey: 'restart',
      requestHash: 'h',
      createdAt: new Date(),
      outputs: [
        {
          name: 'flac',
          presetId: 'flac',
          storageKey: `${assetId}/${jobId}/flac.flac`,
          contentType: 'audio/flac',
        },
      ],
    })
    await repository.updateJob(jobId, { state: 'progressing', progress: 42 })
    await first.close()
    await first.close()
    expect(await readdir(dataDir)).toContain('PG_VERSION')

    const second = await openDatabase({ dataDir })
    try {
      // Migrating again at start finds nothing to do.
      expect(await migrateToLatest(second.db)).toEqual([])
      const reopened = kyselyRepository({ db: second.db })
      expect((await reopened.getAsset(assetId))?.id).toBe(assetId)
      expect(await reopened.getJobByIdempotencyKey('restart', 'owner-a')).toMatchObject({
        id: jobId,
        state: 'progressing',
        progress: 42,
        outputs: [{ name: 'flac', state: 'submitted' }],
      })
    } finally {
      await second.close()
    }
  })

  it('opens a pool on the server that close() ends, and refuses options it cannot use', async () => {
    const { db, close } = await openDatabase({ url: DATABASE_URL, maxConnections: 2 })
    const schema = randomSchema()
    try {
      await migrateToLatest(db, { schema })
      const { rows } = await sql<{ n: number }>`select 1 as n`.execute(db)
      expect(rows).toEqual([{ n: 1 }])
    } finally {
      await db.schema.dropSchema(schema).ifExists().cascade().execute()
      await close()
    }
    await expect(sql`select 1`.execute(db)).rejects.toThrow()
    await expect(openDatabase({ url: '' })).rejects.toMatchObject({ code: 'CONFIGURATION' })
    await expect(openDatabase({} as never)).rejects.toMatchObject({ code: 'CONFIGURATION' })
    await expect(openDatabase({ url: DATABASE_URL, maxConnections: 0 })).rejects.toMatchObject({
      code: 'CONFIGURATION',
    })
  })

  it('reads its JSON columns as objects even when the app set pg to leave JSONB as text (Strapi does)', async () => {
    const { types } = pg
    const jsonbParser = types.getTypeParser(types.builtins.JSONB, 'text')
    types.setTypeParser(types.builtins.JSONB, 'text', (value: string) => value)
    const { db, close } = await openDatabase({ url: DATABASE_URL, maxConnections: 2 })
    const schema = randomSchema()
    try {
      await migrateToLatest(db, { schema })
      const repository = kyselyRepository({ db, schema })
      const id = randomUUID()
      const media = { formatName: 'wav', durationSec: 1, bitRate: null, streams: [] }
      await repository.createAsset({
        id,
        owner: 'default',
        storageKey: `${id}/original.wav`,
        originalFilename: null,
        contentType: 'audio/wav',
        size: 10,
        sha256: '0'.repeat(64),
        media,
        createdAt: new Date(),
      })
      expect((await repository.getAsset(id))?.media).toEqual(media)
      // The app's own connections keep what it set.
      const client = new pg.Client({ connectionString: DATABASE_URL })
      await client.connect()
      const { rows } = await client.query(`select '{"a":1}'::jsonb as v`)
      await client.end()
      expect(rows[0].v).toBe('{"a": 1}')
    } finally {
      types.setTypeParser(types.builtins.JSONB, 'text', jsonbParser)
      await db.schema.dropSchema(schema).ifExists().cascade().execute()
      await close()
    }
  })

  it('migrates once when several processes start at the same moment', async () => {
    const pools = await Promise.all(
      [1, 2, 3].map(() => openDatabase({ url: DATABASE_URL, maxConnections: 2 })),
    )
    const schema = randomSchema()
    try {
      const results = await Promise.all(
        pools.flatMap(({ db }) => [
          migrateToLatest(db, { schema }),
          migrateToLatest(db, { schema }),
        ]),
      )
      expect(results.flat().map((r) => `${r.migrationName}:${r.status}`)).toEqual([
        'transcodekit-0001-initial:Success',
        'transcodekit-0002-owners:Success',
        'transcodekit-0003-output-errors:Success',
        'transcodekit-0004-webhook-deliveries:Success',
        'transcodekit-0005-elastic-transcoder:Success',
        'transcodekit-0006-et-presets:Success',
        'transcodekit-0007-deferred-probe:Success',
      ])
      const { rows } = await sql<{ n: number }>`
        select count(*)::int as n from information_schema.tables where table_schema = ${schema}`.execute(
        pools[0]!.db,
      )
      expect(rows[0]!.n).toBe(9)
    } finally {
      await pools[0]!.db.schema.dropSchema(schema).ifExists().cascade().execute()
      for (const { close } of pools) await close()
    }
  })
  it('logs an idle connection the server drops, and the next query runs on a new one', async () => {
    const warnings: Array<{ fields: unknown; message: string }> = []
    const logger = {
      debug() {},
      info() {},
      warn(fields: unknown, message: string) {
        warnings.push({ fields, message })
      },
      error() {},
    }
    const { db, close } = await openDatabase({ url: DATABASE_URL, maxConnections: 1, logger })
    try {
      const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db)
      const admin = new pg.Client({ connectionString: DATABASE_URL })
      await admin.connect()
      try {
        await admin.query('select pg_terminate_backend($1)', [rows[0]!.pid])
      } finally {
        await admin.end()
      }
      await expect.poll(() => warnings.length, { timeout: 10_000 }).toBeGreaterThan(0)
      expect(warnings[0]!.message).toMatch(/idle database connection failed/)
      expect(warnings[0]!.fields).toMatchObject({ error: expect.stringMatching(/terminat/i) })
      const again = await sql<{ one: number }>`select 1 as one`.execute(db)
      expect(again.rows[0]!.one).toBe(1)
    } finally {
      await close()
    }
  })
})
