import { randomUUID } from 'node:crypto'
import { type Asset, DEFAULT_OWNER, type Job, type NewJob } from '@transcodekit/core'
import { type Kysely, sql } from 'kysely'
import { Migrator } from 'kysely/migration'
import { afterAll, beforeEach, describe, expect, it } from 'vitest'
import {
  type KyselyRepository,
  kyselyRepository,
  migrateToLatest,
  transcodekitMigrations,
} from '../src/index.ts'
import { type Backend, randomSchema, TestDatabase } from './support/test-databases.ts'

function asset(overrides: Partial<Asset> = {}): Asset {
  return {
    id: randomUUID(),
    owner: 'owner-a',
    storageKey: `${randomUUID()}/original.mp3`,
    originalFilename: 'song (1).mp3',
    contentType: 'audio/mpeg',
    size: 5_000_000_000,
    sha256: 'ab'.repeat(32),
    media: {
      formatName: 'mp3',
      durationSec: 12.5,
      bitRate: 192_000,
      streams: [
        {
          index: 0,
          type: 'audio',
          codec: 'mp3',
          durationSec: 12.5,
          bitRate: 192_000,
          channels: 2,
          sampleRate: 44_100,
        },
      ],
    },
    createdAt: new Date('2026-11-20T10:00:00.123Z'),
    ...overrides,
  }
}

/** An asset as its row, as 0001 wrote them. */
function toRow(a: Asset) {
  return {
    id: a.id,
    storage_key: a.storageKey,
    original_filename: a.originalFilename,
    content_type: a.contentType,
    size: a.size,
    sha256: a.sha256,
    media: JSON.stringify(a.media),
    created_at: a.createdAt,
  }
}

function newJob(assetId: string, overrides: Partial<NewJob> = {}): NewJob {
  const id = overrides.id ?? randomUUID()
  return {
    id,
    owner: 'owner-a',
    assetId,
    engine: 'ffmpeg',
    idempotencyKey: null,
    requestHash: 'hash-1',
    createdAt: new Date(),
    outputs: [
      {
        name: 'wav',
        presetId: '1351620000001-300300',
        storageKey: `a/${id}/wav.wav`,
        contentType: 'audio/wav',
      },
      {
        name: 'flac',
        presetId: '1351620000001-300110',
        storageKey: `a/${id}/flac.flac`,
        contentType: 'audio/flac',
      },
    ],
    ...overrides,
  }
}

describe.each<Backend>(['pglite', 'postgres'])('kyselyRepository on %s', (backend) => {
  const database = new TestDatabase(backend)
  let db: Kysely<any>
  let schema: string
  let repository: KyselyRepository

  beforeEach(async () => {
    ;({ db, schema } = await database.schema())
    repository = kyselyRepository({ db, schema })
  })

  afterAll(() => database.close())

  async function count(table: string, where = sql`true`): Promise<number> {
    const { rows } = await sql<{
      n: number
    }>`select count(*)::int as n from ${sql.table(`${schema}.${table}`)} where ${where}`.execute(db)
    return rows[0]!.n
  }

  it('creates its tables in its own schema, and migrating again changes nothing', async () => {
    const { rows } = await sql<{ table_name: string }>`
      select table_name from information_schema.tables where table_schema = ${schema} order by table_name`.execute(
      db,
    )
    expect(rows.map((r) => r.table_name)).toEqual([
      'assets',
      'et_jobs',
      'et_pipelines',
      'et_presets',
      'jobs',
      'outputs',
      'transcodekit_migration',
      'transcodekit_migration_lock',
      'webhook_deliveries',
    ])
    expect(await migrateToLatest(db, { schema })).toEqual([])
  })

  it('has an index for every lookup the service makes', async () => {
    const { rows } = await sql<{ indexdef: string }>`
      select indexdef from pg_indexes where schemaname = ${schema} order by indexname`.execute(db)
    const defs = rows.map((r) => r.indexdef.replace(`${schema}.`, ''))
    const expected = [
      'ON assets USING btree (created_at DESC, id DESC)',
      'ON jobs USING btree (asset_id, created_at DESC, id DESC)',
      'ON jobs USING btree (created_at DESC, id DESC)',
      'ON jobs USING btree (engine, engine_job_id) WHERE (engine_job_id IS NOT NULL)',
      'ON jobs USING btree (state, created_at DESC, id DESC)',
      'UNIQUE INDEX jobs_owner_idempotency_key_key ON jobs USING btree (owner, idempotency_key)',
      'ON assets USING btree (owner, created_at DESC, id DESC)',
      'ON jobs USING btree (owner, created_at DESC, id DESC)',
      'ON jobs USING btree (owner, state, created_at DESC, id DESC)',
      'UNIQUE INDEX outputs_pkey ON outputs USING btree (job_id, name)',
      'UNIQUE INDEX outputs_storage_key_key ON outputs USING btree (storage_key)',
      'UNIQUE INDEX webhook_deliveries_event_unique ON webhook_deliveries USING btree (endpoint_id, event_key)',
      'ON webhook_deliveries USING btree (owner, created_at DESC, id DESC)',
      "ON webhook_deliveries USING btree (next_attempt_at) WHERE (state = 'pending'::text)",
    ]
    for (const fragment of expected)
      expect(
        defs.some((d) => d.includes(fragment)),
        fragment,
      ).toBe(true)
  })

  it('runs in an app’s own Migrator beside the app’s migrations', async () => {
    const appSchema = randomSchema('tk_app')
    try {
      const migrator = new Migrator({
        db,
        migrationTableSchema: appSchema,
        provider: {
          getMigrations: async () => ({
            ...transcodekitMigrations({ schema: appSchema }),
            'app-0001-posts': {
              up: (app: Kysely<any>) =>
                app
                  .withSchema(appSchema)
                  .schema.createTable('posts')
                  .addColumn('id', 'serial', (c) => c.primaryKey())
                  .execute(),
            },
          }),
        },
      })
      const { error, results } = await migrator.migrateToLatest()
      expect(error).toBeUndefined()
      expect(results?.map((r) => r.migrationName)).toEqual([
        'app-0001-posts',
        'transcodekit-0001-initial',
        'transcodekit-0002-owners',
        'transcodekit-0003-output-errors',
        'transcodekit-0004-webhook-deliveries',
        'transcodekit-0005-elastic-transcoder',
        'transcodekit-0006-et-presets',
        'transcodekit-0007-deferred-probe',
      ])
      const app = kyselyRepository({ db, schema: appSchema })
      const a = asset()
      await app.createAsset(a)
      expect((await app.getAsset(a.id))?.id).toBe(a.id)
      expect(await repository.getAsset(a.id)).toBeNull()
    } finally {
      await db.schema.dropSchema(appSchema).ifExists().cascade().execute()
    }
  })

  it('gives the rows made before owners the default owner, and scopes their keys to it', async () => {
    const oldSchema = randomSchema('tk_old')
    try {
      const migrations = transcodekitMigrations({ schema: oldSchema })
      const migrator = new Migrator({
        db,
        provider: { getMigrations: async () => migrations },
        migrationTableSchema: oldSchema,
        migrationTableName: 'transcodekit_migration',
        migrationLockTableName: 'transcodekit_migration_lock',
      })
      await db.schema.createSchema(oldSchema).execute()
      const before = await migrator.migrateTo('transcodekit-0001-initial')
      expect(before.error).toBeUndefined()
      // Rows as 0001 wrote them: no owner column yet.
      const a = asset()
      const jobId = randomUUID()
      await db.withSchema(oldSchema).insertInto('assets').values(toRow(a)).execute()
      await db
        .withSchema(oldSchema)
        .insertInto('jobs')
        .values({
          id: jobId,
          asset_id: a.id,
          engine: 'ffmpeg',
          state: 'submitted',
          idempotency_key: 'old-key',
          request_hash: 'h',
          created_at: a.createdAt,
          updated_at: a.createdAt,
        })
        .execute()

      expect(
        (await migrateToLatest(db, { schema: oldSchema })).map((r) => r.migrationName),
      ).toEqual([
        'transcodekit-0002-owners',
        'transcodekit-0003-output-errors',
        'transcodekit-0004-webhook-deliveries',
        'transcodekit-0005-elastic-transcoder',
        'transcodekit-0006-et-presets',
        'transcodekit-0007-deferred-probe',
      ])
      const old = kyselyRepository({ db, schema: oldSchema })
      expect(await old.getAsset(a.id)).toEqual({ ...a, owner: DEFAULT_OWNER })
      // 0007: an asset may now be recorded before it is probed.
      const unprobed = asset({ media: null })
      await old.createAsset(unprobed)
      expect((await old.getAsset(unprobed.id))?.media).toBeNull()
      expect(await old.getJob(jobId)).toMatchObject({ owner: DEFAULT_OWNER, assetId: a.id })
      expect((await old.getJobByIdempotencyKey('old-key', DEFAULT_OWNER))?.id).toBe(jobId)
      expect(await old.getJobByIdempotencyKey('old-key', 'owner-b')).toBeNull()
      expect((await old.listAssets({ owner: DEFAULT_OWNER })).items.map((x) => x.id)).toEqual([
        a.id,
      ])
      // The old key is now the default owner's only: another owner's same key is a new job.
      const b = asset({ owner: 'owner-b' })
      await old.createAsset(b)
      const made = await old.createJob(
        newJob(b.id, { owner: 'owner-b', idempotencyKey: 'old-key' }),
      )
      expect(made.created).toBe(true)
      // New rows must name their owner: the column has no default left.
      await expect(
        db
          .withSchema(oldSchema)
          .insertInto('assets')
          .values({ ...toRow(asset()), owner: undefined })
          .execute(),
      ).rejects.toMatchObject({ code: '23502' })

      // And back down: the column and the per-owner key go, the rows stay.
      const down = await migrator.migrateTo('transcodekit-0001-initial')
      expect(down.error).toBeUndefined()
      const { rows } = await sql<{ n: number }>`
        select count(*)::int as n from information_schema.columns
        where table_schema = ${oldSchema} and column_name = 'owner'`.execute(db)
      expect(rows[0]!.n).toBe(0)
      const { rows: jobs } = await sql<{ id: string; idempotency_key: string | null }>`
        select id, idempotency_key from ${sql.table(`${oldSchema}.jobs`)} order by created_at`.execute(
        db,
      )
      expect(jobs.filter((j) => j.idempotency_key === 'old-key')).toHaveLength(1)
    } finally {
      await db.schema.dropSchema(oldSchema).ifExists().cascade().execute()
    }
  })

  it('refuses a schema name that is not a plain identifier', () => {
    expect(() => kyselyRepository({ db, schema: 'x; drop table jobs' })).toThrow(
      expect.objectContaining({ code: 'CONFIGURATION' }),
    )
  })

  it('stores media info as jsonb and gives back Dates and numbers', async () => {
    const a = asset()
    await repository.createAsset(a)
    expect(await repository.getAsset(a.id)).toEqual(a)
    const { rows } = await sql<{
      t: string
    }>`select jsonb_typeof(media) as t from ${sql.table(`${schema}.assets`)}`.execute(db)
    expect(rows[0]!.t).toBe('object')
    await expect(repository.createAsset(a)).rejects.toMatchObject({ code: 'INVALID_STATE' })
  })

  it('gives one job for one idempotency key under concurrent calls, with its outputs', async () => {
    const a = asset()
    await repository.createAsset(a)
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        repository.createJob(
          newJob(a.id, { idempotencyKey: 'upload:42', requestHash: `hash-${i}` }),
        ),
      ),
    )
    expect(results.filter((r) => r.created)).toHaveLength(1)
    const winner = results.find((r) => r.created)!
    expect(new Set(results.map((r) => r.job.id))).toEqual(new Set([winner.job.id]))
    // Every caller sees the stored fingerprint (the winner's), and the outputs with the job.
    expect(new Set(results.map((r) => r.requestHash))).toEqual(new Set([winner.requestHash]))
    for (const r of results) expect(r.job.outputs.map((o) => o.name)).toEqual(['wav', 'flac'])
    expect(await count('jobs')).toBe(1)
    expect(await count('outputs')).toBe(2)
    expect((await repository.getJobByIdempotencyKey('upload:42', 'owner-a'))?.id).toBe(
      winner.job.id,
    )
  })

  it('refuses a job for a missing asset, or with an id in use, leaving no row', async () => {
    await expect(repository.createJob(newJob(randomUUID()))).rejects.toMatchObject({
      code: 'NOT_FOUND',
    })
    const a = asset()
    await repository.createAsset(a)
    const first = newJob(a.id)
    await repository.createJob(first)
    await expect(
      repository.createJob(newJob(a.id, { id: first.id, outputs: [] })),
    ).rejects.toMatchObject({ code: 'INVALID_STATE' })
    expect(await count('jobs')).toBe(1)
  })

  it('never overwrites a terminal state, even when two endings race', async () => {
    const a = asset()
    await repository.createAsset(a)
    const { job } = await repository.createJob(newJob(a.id))
    await repository.updateJob(job.id, { state: 'progressing', progress: 30 })
    const [complete, canceled] = await Promise.all([
      repository.updateJob(job.id, {
        state: 'complete',
        progress: 100,
        outputs: [
          { name: 'wav', state: 'complete', size: 10 },
          { name: 'flac', state: 'complete', size: 20 },
        ],
      }),
      repository.updateJob(job.id, {
        state: 'canceled',
        outputs: [
          { name: 'wav', state: 'canceled' },
          { name: 'flac', state: 'canceled' },
        ],
      }),
    ])
    const final = (await repository.getJob(job.id))!
    expect(['complete', 'canceled']).toContain(final.state)
    // Both callers were told the truth: the job as it is after the winner.
    expect(complete).toEqual(final)
    expect(canceled).toEqual(final)
    expect(new Set(final.outputs.map((o) => o.state))).toEqual(new Set([final.state]))
    expect(final.finishedAt).toBeInstanceOf(Date)

    const after = await repository.updateJob(job.id, {
      state: 'progressing',
      progress: 100,
      errorCode: 'LATE',
      incrementAttempts: true,
      outputs: [{ name: 'wav', state: 'error' }],
    })
    expect(after).toEqual(final)
  })

  it('never lowers progress, whatever order concurrent updates land in', async () => {
    const a = asset()
    await repository.createAsset(a)
    const { job } = await repository.createJob(newJob(a.id))
    const values = Array.from({ length: 40 }, (_, i) => (i * 37) % 97)
    await Promise.all(
      values.map((progress) => repository.updateJob(job.id, { state: 'progressing', progress })),
    )
    const updated = (await repository.getJob(job.id))!
    expect(updated.progress).toBe(Math.max(...values))
    expect((await repository.updateJob(job.id, { progress: 5 }))?.progress).toBe(
      Math.max(...values),
    )
    expect((await repository.updateJob(job.id, { progress: 250 }))?.progress).toBe(100)
    expect(updated.updatedAt.getTime()).toBeGreaterThanOrEqual(job.updatedAt.getTime())
  })

  it('counts attempts atomically, keeps a job out of `submitted` once it progresses, and keeps terminal outputs', async () => {
    const a = asset()
    await repository.createAsset(a)
    const { job } = await repository.createJob(newJob(a.id))
    await Promise.all(
      Array.from({ length: 10 }, () => repository.updateJob(job.id, { incrementAttempts: true })),
    )
    expect((await repository.getJob(job.id))?.attempts).toBe(10)

    await repository.updateJob(job.id, {
      state: 'progressing',
      outputs: [{ name: 'wav', state: 'complete', size: 99 }],
    })
    const back = (await repository.updateJob(job.id, {
      state: 'submitted',
      outputs: [{ name: 'wav', state: 'progressing', durationSec: 12.5 }],
    }))!
    expect(back.state).toBe('progressing')
    expect(back.finishedAt).toBeNull()
    expect(back.outputs[0]).toMatchObject({
      name: 'wav',
      state: 'complete',
      size: 99,
      durationSec: 12.5,
    })
    expect(back.outputs[1]).toMatchObject({ name: 'flac', state: 'submitted', size: null })
  })

  it('finds jobs by engine job id and reports missing ones as null', async () => {
    const a = asset()
    await repository.createAsset(a)
    const { job } = await repository.createJob(newJob(a.id, { engine: 'elastic-transcoder' }))
    await repository.updateJob(job.id, { engineJobId: '1700000000000-abcdef' })
    expect(
      (await repository.getJobByEngineJobId('elastic-transcoder', '1700000000000-abcdef'))?.id,
    ).toBe(job.id)
    expect(await repository.getJobByEngineJobId('mediaconvert', '1700000000000-abcdef')).toBeNull()
    expect(await repository.getJob(randomUUID())).toBeNull()
    expect(await repository.getJob('not-a-uuid')).toBeNull()
    expect(await repository.updateJob('not-a-uuid', { progress: 1 })).toBeNull()
    expect(await repository.deleteAsset('../etc')).toBe(false)
  })

  it('pages newest first with a stable order, even when jobs share a creation time', async () => {
    const a = asset()
    const b = asset()
    await repository.createAsset(a)
    await repository.createAsset(b)
    const same = new Date('2026-11-21T00:00:00.000Z')
    const created: Job[] = []
    for (let i = 0; i < 25; i++) {
      const when = i < 15 ? same : new Date(same.getTime() + i * 1000)
      created.push(
        (await repository.createJob(newJob(i % 2 ? a.id : b.id, { createdAt: when }))).job,
      )
    }
    const expected = [...created]
      .sort((x, y) => y.createdAt.getTime() - x.createdAt.getTime() || (x.id < y.id ? 1 : -1))
      .map((j) => j.id)
    const seen: string[] = []
    let cursor: string | null = null
    do {
      const page: Awaited<ReturnType<typeof repository.listJobs>> = await repository.listJobs({
        limit: 7,
        cursor,
      })
      expect(page.items.length).toBeLessThanOrEqual(7)
      seen.push(...page.items.map((j) => j.id))
      cursor = page.nextCursor
      // A job created meanwhile (newer than every cursor) does not shift the pages.
      if (seen.length === 7)
        await repository.createJob(newJob(a.id, { createdAt: new Date('2030-01-01') }))
    } while (cursor)
    expect(seen).toEqual(expected)

    const ofA = await repository.listJobs({ assetId: a.id, limit: 100 })
    expect(ofA.items.every((j) => j.assetId === a.id)).toBe(true)
    expect(ofA.items).toHaveLength(13)
    await repository.updateJob(created[3]!.id, { state: 'error', errorCode: 'DECODE_FAILED' })
    const failed = await repository.listJobs({ state: 'error' })
    expect(failed.items.map((j) => j.id)).toEqual([created[3]!.id])
    expect(failed.items[0]!.errorCode).toBe('DECODE_FAILED')
    expect(await repository.listJobs({ assetId: 'nope' })).toEqual({ items: [], nextCursor: null })

    await expect(repository.listJobs({ cursor: 'garbage' })).rejects.toMatchObject({
      code: 'INVALID_CURSOR',
    })
    const forged = Buffer.from(JSON.stringify([new Date().toISOString(), "x' or 1=1"])).toString(
      'base64url',
    )
    await expect(repository.listAssets({ cursor: forged })).rejects.toMatchObject({
      code: 'INVALID_CURSOR',
    })
  })

  it('pages assets newest first', async () => {
    const assets = Array.from({ length: 5 }, (_, i) =>
      asset({ createdAt: new Date(Date.UTC(2026, 0, 1 + i)) }),
    )
    for (const a of assets) await repository.createAsset(a)
    const first = await repository.listAssets({ limit: 3 })
    const second = await repository.listAssets({ limit: 3, cursor: first.nextCursor })
    expect([...first.items, ...second.items].map((a) => a.id)).toEqual(
      assets.reverse().map((a) => a.id),
    )
    expect(second.nextCursor).toBeNull()
  })

  it('deletes an asset with its jobs and outputs', async () => {
    const a = asset()
    const keep = asset()
    await repository.createAsset(a)
    await repository.createAsset(keep)
    await repository.createJob(newJob(a.id, { idempotencyKey: 'k-a' }))
    await repository.createJob(newJob(a.id))
    await repository.createJob(newJob(keep.id))
    expect(await repository.deleteAsset(a.id)).toBe(true)
    expect(await repository.deleteAsset(a.id)).toBe(false)
    expect(await count('jobs')).toBe(1)
    expect(await count('outputs')).toBe(2)
    expect(await repository.getJobByIdempotencyKey('k-a', 'owner-a')).toBeNull()
    // The key is free again: a new job may take it.
    const again = await repository.createJob(newJob(keep.id, { idempotencyKey: 'k-a' }))
    expect(again.created).toBe(true)
  })
})
