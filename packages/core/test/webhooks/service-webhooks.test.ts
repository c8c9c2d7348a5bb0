import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  createTranscoder,
  ffmpegEngine,
  localStorage,
  memoryRepository,
  type TranscodeService,
} from '../../src/index.ts'
import {
  jobEnd,
  makeTone,
  startWebhookReceiver,
  type WebhookReceiver,
  webhookSecret,
} from '../../src/testing/index.ts'
import { untilDelivery } from '../support/until-delivery.ts'

const secret = webhookSecret()
let dir: string
let tone: string
let receiver: WebhookReceiver
let service: TranscodeService

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-service-webhooks-'))
  tone = await makeTone(join(dir, 'tone.mp3'), { seconds: 1, format: 'mp3' })
  receiver = await startWebhookReceiver(secret)
  service = createTranscoder({
    storage: localStorage({ root: join(dir, 'files') }),
    engine: ffmpegEngine({ tmpDir: join(dir, 'engine-tmp') }),
    repository: memoryRepository(),
    tmpDir: join(dir, 'spool'),
    logger: { info() {}, warn() {}, error() {} },
    webhooks: {
      endpoints: [{ url: receiver.url, secret }],
      allowPrivateAddresses: true,
      retryDelayMs: 20,
      retryDelayMaxMs: 100,
      maxAttempts: 100,
    },
  })
  await service.ready()
})
afterAll(async () => {
  await service.close()
  await receiver.stop()
  await rm(dir, { recursive: true, force: true })
})

it('sends every state change of a job and the asset events, signed, with the owner', async () => {
  const asset = await service.ingest(createReadStream(tone), { owner: 'alice' })
  const job = await service.transcode(asset.id, { owner: 'alice', presets: ['wav'] })
  await jobEnd(service, job.id)
  const ofJob = (type: string) => (w: { type: string; data: Record<string, unknown> }) =>
    w.type === type && w.data.id === job.id
  await receiver.next((w) => w.type === 'asset.created' && w.data.id === asset.id)
  await receiver.next(ofJob('job.submitted'))
  await receiver.next(ofJob('job.progressing'))
  const complete = await receiver.next(ofJob('job.complete'))
  expect(complete.data).toMatchObject({ owner: 'alice', state: 'complete', assetId: asset.id })
  expect(complete.data).not.toHaveProperty('outputs.0.storageKey')

  await service.deleteAsset(asset.id)
  await receiver.next((w) => w.type === 'asset.deleted' && w.data.id === asset.id)
  // Each event once, whatever the progress ticks in between.
  const aboutJob = receiver.received.filter((w) => w.data.id === job.id).map((w) => w.type)
  expect(aboutJob.sort()).toEqual(['job.complete', 'job.progressing', 'job.submitted'])
  expect(receiver.rejected).toBe(0)
  const { items } = await service.webhooks!.list({ owner: 'alice' })
  expect(items.map((d) => d.eventType).sort()).toEqual([
    'asset.created',
    'asset.deleted',
    'job.complete',
    'job.progressing',
    'job.submitted',
  ])
  for (const { id } of items) {
    const recorded = await untilDelivery(service.webhooks!.store, id, (d) => d.state !== 'pending')
    expect(recorded).toMatchObject({ state: 'delivered', owner: 'alice', lastStatus: 204 })
  }
})

it('holds the delivery of a job that ends while the receiver is down, until it returns', async () => {
  const asset = await service.ingest(createReadStream(tone), { owner: 'bob' })
  await receiver.next((w) => w.type === 'asset.created' && w.data.id === asset.id)
  await receiver.stop()
  const job = await service.transcode(asset.id, { owner: 'bob', presets: ['flac'] })
  await jobEnd(service, job.id)
  const { items } = await service.webhooks!.list({ owner: 'bob' })
  const complete = items.find((d) => d.eventType === 'job.complete')!
  const failing = await untilDelivery(service.webhooks!.store, complete.id, (d) => d.attempts >= 1)
  expect(failing.state).toBe('pending')
  expect(receiver.received.some((w) => w.data.id === job.id)).toBe(false)

  await receiver.start()
  const got = await receiver.next((w) => w.type === 'job.complete' && w.data.id === job.id)
  expect(got.id).toBe(complete.id)
  await untilDelivery(service.webhooks!.store, complete.id, (d) => d.state === 'delivered')
})
