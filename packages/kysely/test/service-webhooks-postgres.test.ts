import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  createTranscoder,
  ffmpegEngine,
  jobWebhookEvent,
  localStorage,
  type TranscodeService,
} from '@transcodekit/core'
import {
  jobEnd,
  makeTone,
  startWebhookReceiver,
  type WebhookReceiver,
  webhookSecret,
} from '@transcodekit/core/testing'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { kyselyRepository, openDatabase, pgBossQueue } from '../src/index.ts'
import { DATABASE_URL, TestDatabase, waitFor } from './support/test-databases.ts'

// An API process (no job worker) and a worker process, each with its own pool and queue client,
// both with the same webhook endpoint: the process that changes the job publishes, and the
// database makes one delivery per event whoever publishes it.
const database = new TestDatabase('postgres')
const bossSchema = database.bossSchema()
const secret = webhookSecret()
const cleanups: Array<() => Promise<void>> = []
let schema: string
let dir: string
let tone: string
let receiver: WebhookReceiver

async function makeService(worker: boolean): Promise<TranscodeService> {
  const opened = await openDatabase({ url: DATABASE_URL, maxConnections: 5 })
  cleanups.push(opened.close)
  const queue = pgBossQueue({
    connectionString: DATABASE_URL,
    schema: bossSchema,
    queueName: 'webhook-service-test',
    pollingIntervalSeconds: 0.5,
  })
  const service = createTranscoder({
    storage: localStorage({ root: join(dir, 'storage') }),
    engine: ffmpegEngine({ tmpDir: join(dir, 'tmp') }),
    repository: kyselyRepository({ db: opened.db, schema }),
    queue,
    worker: worker ? { concurrency: 1 } : false,
    tmpDir: join(dir, 'spool'),
    pollIntervalMs: 200,
    logger: { info() {}, warn() {}, error() {} },
    webhooks: {
      endpoints: [{ id: 'main', url: receiver.url, secret }],
      allowPrivateAddresses: true,
      retryDelayMs: 1000,
    },
  })
  cleanups.push(async () => {
    await service.close()
    await queue.close()
  })
  await service.ready()
  return service
}

beforeAll(async () => {
  ;({ schema } = await database.schema())
  dir = await mkdtemp(join(tmpdir(), 'tk-service-webhooks-'))
  tone = await makeTone(join(dir, 'tone.wav'), { seconds: 1, format: 'wav' })
  receiver = await startWebhookReceiver(secret)
})
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
  await receiver.stop()
  await database.close()
  await rm(dir, { recursive: true, force: true })
})

it('a worker process publishes the changes it makes; each event is one delivery', async () => {
  const api = await makeService(false)
  const worker = await makeService(true)
  const asset = await api.ingest(createReadStream(tone), { owner: 'alice' })
  const job = await api.transcode(asset.id, { owner: 'alice', presets: ['flac'] })
  const ended = await jobEnd(api, job.id)
  expect(ended.state).toBe('complete')
  await receiver.next((w) => w.type === 'job.complete' && w.data.id === job.id)

  // The API process saw the end too (by polling): publishing it again makes no second delivery.
  await api.webhooks!.publish(jobWebhookEvent(ended))
  await worker.webhooks!.publish(jobWebhookEvent(ended))
  const deliveries = await waitFor(
    async () => (await api.webhooks!.list({ owner: 'alice' })).items,
    (items) => items.length === 4 && items.every((d) => d.state === 'delivered'),
    { what: 'four delivered deliveries', intervalMs: 50 },
  )
  expect(deliveries.map((d) => d.eventType).sort()).toEqual([
    'asset.created',
    'job.complete',
    'job.progressing',
    'job.submitted',
  ])
  const received = receiver.received.filter((w) => w.data.id === job.id || w.data.id === asset.id)
  expect(new Set(received.map((w) => w.id))).toEqual(new Set(deliveries.map((d) => d.id)))
  expect(receiver.rejected).toBe(0)
})
