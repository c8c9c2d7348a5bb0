import { randomUUID } from 'node:crypto'
import { encodeCursor, type Job } from '@transcodekit/core'
import type { CompiledQuery } from 'kysely'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { kyselyRepository, migrateToLatest } from '../src/index.ts'
import { DATABASE_URL, randomSchema } from './support/test-databases.ts'

// Every lookup the repository makes, planned by PostgreSQL with sequential scans priced out:
// a plan that still scans a whole table has no index to use.
const schema = randomSchema()
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 })
const captured: CompiledQuery[] = []
const db = new Kysely<any>({
  dialect: new PostgresDialect({ pool }),
  log: (event) => {
    if (event.level === 'query') captured.push(event.query)
  },
})

beforeAll(() => migrateToLatest(db, { schema }))
afterAll(async () => {
  await db.schema.dropSchema(schema).ifExists().cascade().execute()
  await db.destroy()
})

async function plan(query: CompiledQuery): Promise<string> {
  return db.transaction().execute(async (trx) => {
    await sql`set local enable_seqscan = off`.execute(trx)
    const { rows } = await trx.executeQuery<{ 'QUERY PLAN': string }>({
      ...query,
      sql: `explain (costs off) ${query.sql}`,
    })
    return rows.map((r) => r['QUERY PLAN']).join('\n')
  })
}

it('answers every lookup of the service from an index', async () => {
  const repository = kyselyRepository({ db, schema })
  const assetId = randomUUID()
  await repository.createAsset({
    id: assetId,
    owner: 'owner-a',
    storageKey: `${assetId}/original.wav`,
    originalFilename: null,
    contentType: 'audio/wav',
    size: 1,
    sha256: '0'.repeat(64),
    media: { formatName: 'wav', durationSec: 1, bitRate: null, streams: [] },
    createdAt: new Date(),
  })
  const jobs: Job[] = []
  for (let i = 0; i < 3; i++) {
    jobs.push(
      (
        await repository.createJob({
          id: randomUUID(),
          owner: 'owner-a',
          assetId,
          engine: 'ffmpeg',
          idempotencyKey: `k-${i}`,
          requestHash: 'h',
          createdAt: new Date(),
          outputs: [
            {
              name: 'flac',
              presetId: 'flac',
              storageKey: `${assetId}/${i}/flac.flac`,
              contentType: 'audio/flac',
            },
          ],
        })
      ).job,
    )
  }
  const cursor = (await repository.listJobs({ limit: 1 })).nextCursor
  const assetCursor = encodeCursor(new Date(), randomUUID())

  captured.length = 0
  const lookups: Record<string, () => Promise<unknown>> = {
    getAsset: () => repository.getAsset(assetId),
    listAssets: () => repository.listAssets({ limit: 1, cursor: assetCursor }),
    getJob: () => repository.getJob(jobs[0]!.id),
    getJobByIdempotencyKey: () => repository.getJobByIdempotencyKey('k-1', 'owner-a'),
    getJobByEngineJobId: () => repository.getJobByEngineJobId('ffmpeg', 'remote-1'),
    listJobs: () => repository.listJobs({ cursor }),
    'listJobs by asset': () => repository.listJobs({ assetId, cursor }),
    'listJobs by state': () => repository.listJobs({ state: 'submitted', cursor }),
    'listAssets by owner': () =>
      repository.listAssets({ owner: 'owner-a', limit: 1, cursor: assetCursor }),
    'listJobs by owner': () => repository.listJobs({ owner: 'owner-a', cursor }),
    'listJobs by owner and state': () =>
      repository.listJobs({ owner: 'owner-a', state: 'submitted', cursor }),
  }
  const plans: Record<string, string> = {}
  for (const [name, lookup] of Object.entries(lookups)) {
    captured.length = 0
    await lookup()
    const [query] = captured.filter((q) => q.sql.startsWith('select'))
    plans[name] = await plan(query!)
  }
  for (const [name, text] of Object.entries(plans)) {
    expect(text, `${name}:\n${text}`).not.toMatch(/Seq Scan/)
    expect(text, `${name}:\n${text}`).toMatch(/Index/)
    // Newest-first listings come straight out of the index, with no sort step.
    if (name.startsWith('list'))
      expect(text, `${name}:\n${text}`).not.toMatch(/Sort Key: .*created_at/)
  }
})
