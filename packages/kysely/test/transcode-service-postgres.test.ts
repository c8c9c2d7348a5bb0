import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type Asset,
  createTranscoder,
  ffmpegEngine,
  type Job,
  localStorage,
  probeMedia,
  type TranscodeService,
} from '@transcodekit/core'
import { makeTone } from '@transcodekit/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { kyselyRepository, openDatabase, pgBossQueue } from '../src/index.ts'
import { DATABASE_URL, serverQuery, TestDatabase, waitFor } from './support/test-databases.ts'

// The service on the PostgreSQL server: the repository and the pg-boss queue together.
describe('TranscodeService on PostgreSQL with pg-boss', () => {
  const database = new TestDatabase('postgres')
  const bossSchema = database.bossSchema()
  const queueName = 'service-test'
  const cleanups: Array<() => Promise<void>> = []
  let schema: string
  let dir: string
  let tone: string

  let sharedDb: Awaited<ReturnType<TestDatabase['db']>>

  async function makeService(options: {
    worker: boolean
    ownPool?: boolean
  }): Promise<TranscodeService> {
    let db = sharedDb
    if (options.ownPool) {
      // A second "process": its own pool and its own queue client.
      const opened = await openDatabase({ url: DATABASE_URL, maxConnections: 5 })
      cleanups.push(opened.close)
      db = opened.db
    }
    const queue = pgBossQueue({
      connectionString: DATABASE_URL,
      schema: bossSchema,
      queueName,
      pollingIntervalSeconds: 0.5,
      retryDelaySec: 1,
    })
    const service = createTranscoder({
      storage: localStorage({ root: join(dir, 'storage') }),
      engine: ffmpegEngine({ tmpDir: join(dir, 'tmp') }),
      repository: kyselyRepository({ db, schema }),
      queue,
      worker: options.worker ? { concurrency: 1 } : false,
      tmpDir: join(dir, 'spool'),
      pollIntervalMs: 200,
    })
    cleanups.push(async () => {
      await service.close()
      await queue.close()
    })
    return service
  }

  beforeAll(async () => {
    ;({ db: sharedDb, schema } = await database.schema())
    dir = await mkdtemp(join(tmpdir(), 'tk-service-'))
    tone = await makeTone(join(dir, 'tone.wav'), { seconds: 1, format: 'wav' })
  })

  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup()
    await database.close()
    await rm(dir, { recursive: true, force: true })
  })

  async function ingest(service: TranscodeService): Promise<Asset> {
    return service.ingest(createReadStream(tone), { filename: 'tone.wav' })
  }

  it('makes one job (and queues it once) out of 10 concurrent transcode calls with one key, from two processes', async () => {
    const one = await makeService({ worker: false })
    const two = await makeService({ worker: false, ownPool: true })
    const asset = await ingest(one)
    const key = 'upload:concurrent-10'
    const jobs = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? two : one).transcode(asset.id, { presets: ['flac', 'mp3'], idempotencyKey: key }),
      ),
    )
    expect(new Set(jobs.map((job) => job.id)).size).toBe(1)
    const rows = await serverQuery(`select id from ${schema}.jobs where idempotency_key = $1`, [
      key,
    ])
    expect(rows).toHaveLength(1)
    expect(
      await serverQuery(`select name from ${schema}.outputs where job_id = $1`, [jobs[0]!.id]),
    ).toHaveLength(2)
    const messages = await serverQuery(
      `select data->>'jobId' as job_id from ${bossSchema}.job where name = $1 and singleton_key = $2`,
      [queueName, jobs[0]!.id],
    )
    expect(messages).toEqual([{ job_id: jobs[0]!.id }])

    // The same key for a different request is refused, and adds nothing.
    await expect(
      one.transcode(asset.id, { presets: ['wav'], idempotencyKey: key }),
    ).rejects.toMatchObject({
      code: 'IDEMPOTENCY_CONFLICT',
    })
    expect(
      await serverQuery(`select id from ${schema}.jobs where asset_id = $1`, [asset.id]),
    ).toHaveLength(1)
  })

  it('runs a job end to end through pg-boss and the PostgreSQL repository', async () => {
    const submitter = await makeService({ worker: false })
    const worker = await makeService({ worker: true })
    await worker.ready()
    const asset = await ingest(submitter)
    const job = await submitter.transcode(asset.id, { presets: ['flac', 'mp3'] })
    const done = await waitFor(
      () => submitter.getJob(job.id),
      (j: Job) => j.state === 'complete' || j.state === 'error',
      { timeoutMs: 45_000, what: 'the job to end' },
    )
    expect(done).toMatchObject({ state: 'complete', progress: 100, attempts: 1 })
    expect(done.finishedAt).toBeInstanceOf(Date)
    const storage = localStorage({ root: join(dir, 'storage') })
    for (const output of done.outputs) {
      expect(output.state).toBe('complete')
      const path = storage.localPath(output.storageKey)!
      const media = await probeMedia(path)
      expect(media.durationSec).toBeCloseTo(1, 0)
      expect(output.size).toBe((await storage.head(output.storageKey))?.size)
    }
  })
})
