import { randomUUID } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type Asset,
  createTranscoder,
  createWebhookDispatcher,
  ffmpegEngine,
  type Job,
  localStorage,
  type NewJob,
  ServiceWebhooks,
  type WebhookOptions,
} from '@transcodekit/core'
import { makeTone, startWebhookReceiver, webhookSecret } from '@transcodekit/core/testing'
import { sql } from 'kysely'
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import { type KyselyRepository, kyselyRepository } from '../src/index.ts'
import { TestDatabase } from './support/test-databases.ts'

// A job change and the webhook deliveries announcing it are one transaction (the outbox):
// triggers in the test's own schema make one half fail, and the other half must not land.
const database = new TestDatabase('postgres')
const silent = { info() {}, warn() {}, error() {} }
const open: Array<{ close(): Promise<void> }> = []
let db: Awaited<ReturnType<TestDatabase['schema']>>['db']
let schema: string
let repository: KyselyRepository

beforeAll(async () => {
  ;({ db, schema } = await database.schema())
  repository = kyselyRepository({ db, schema })
  await sql
    .raw(`
      create function ${schema}.refuse() returns trigger language plpgsql as $$
      begin raise exception '%', tg_argv[0]; end $$;
      create trigger refuse_some_deliveries before insert on ${schema}.webhook_deliveries
        for each row when (new.event_type = 'job.complete' or new.owner = 'refused'
          or (new.owner = 'no-jobs' and new.event_type like 'job.%'))
        execute function ${schema}.refuse('no job.complete delivery, nothing for "refused"');
      create trigger refuse_error_job before update on ${schema}.jobs
        for each row when (new.state = 'error')
        execute function ${schema}.refuse('no job in error');
    `)
    .execute(db)
})
afterEach(async () => {
  for (const thing of open.splice(0).reverse()) await thing.close()
})
afterAll(() => database.close())

/** The service's webhooks on the repository's own store, so that job writes record deliveries. */
function webhooks(options: Partial<WebhookOptions> = {}): ServiceWebhooks {
  const dispatcher = createWebhookDispatcher(
    {
      endpoints: [{ id: 'main', url: 'http://127.0.0.1:9/', secret: webhookSecret() }],
      allowPrivateAddresses: true,
      logger: silent,
      worker: false,
      ...options,
    },
    { store: repository.webhookStore() },
  )
  open.push(dispatcher)
  return new ServiceWebhooks(dispatcher, { recordsWithJobs: true })
}

function newJob(asset: Asset): NewJob {
  const id = randomUUID()
  return {
    id,
    owner: asset.owner,
    assetId: asset.id,
    engine: 'ffmpeg',
    idempotencyKey: null,
    requestHash: 'hash',
    outputs: [
      { name: 'wav', presetId: 'wav', storageKey: `out/${id}.wav`, contentType: 'audio/wav' },
    ],
    createdAt: new Date(),
  }
}

async function newAsset(owner = 'alice'): Promise<Asset> {
  const asset: Asset = {
    id: randomUUID(),
    owner,
    storageKey: 'originals/a.wav',
    originalFilename: 'a.wav',
    contentType: 'audio/wav',
    size: 10,
    sha256: 'a'.repeat(64),
    media: { formatName: 'wav', durationSec: 1, bitRate: null, streams: [] },
    createdAt: new Date(),
  }
  await repository.createAsset(asset)
  return asset
}

async function submittedJob(): Promise<Job> {
  const { job } = await repository.createJob(newJob(await newAsset()))
  return job
}

async function deliveriesOf(job: { id: string }) {
  const { items } = await repository.webhookStore().list({ limit: 100 })
  return items.filter((d) => d.eventKey.endsWith(`:${job.id}`)).map((d) => d.eventType)
}

it('records the deliveries of a job change with it, and the write reports them', async () => {
  const hooks = webhooks()
  const job = await submittedJob()
  const outbox = hooks.jobOutbox(() => true)
  const written = await repository.updateJob(job.id, { state: 'progressing' }, { outbox })
  expect(written?.state).toBe('progressing')
  expect(await deliveriesOf(job)).toEqual(['job.progressing'])
  expect(outbox.deliveries.map((d) => d.eventType)).toEqual(['job.progressing'])
  // The event as written: the payload carries the state after the patch.
  expect(JSON.parse(outbox.deliveries[0]!.payload).data.state).toBe('progressing')
})

it('records the job.submitted deliveries of a job created, and none for one found by its key', async () => {
  const hooks = webhooks()
  const input = { ...newJob(await newAsset()), idempotencyKey: 'once' }
  const outbox = hooks.newJobOutbox()
  const { job, created } = await repository.createJob(input, { outbox })
  expect(created).toBe(true)
  expect(await deliveriesOf(job)).toEqual(['job.submitted'])
  expect(outbox.deliveries.map((d) => d.eventType)).toEqual(['job.submitted'])
  const again = hooks.newJobOutbox()
  const second = await repository.createJob({ ...input, id: randomUUID() }, { outbox: again })
  expect(second).toMatchObject({ created: false, job: { id: job.id } })
  expect(again.deliveries).toEqual([])
  expect(await deliveriesOf(job)).toEqual(['job.submitted'])
})

it('creates no job when its job.submitted delivery cannot be recorded', async () => {
  const hooks = webhooks()
  const input = newJob(await newAsset('refused'))
  await expect(repository.createJob(input, { outbox: hooks.newJobOutbox() })).rejects.toThrow(
    /no job.complete delivery/,
  )
  expect(await repository.getJob(input.id)).toBeNull()
  expect(await deliveriesOf(input)).toEqual([])
})

it('rolls the job change back when its delivery cannot be recorded, and throws', async () => {
  const hooks = webhooks()
  const job = await submittedJob()
  await repository.updateJob(job.id, { state: 'progressing', progress: 10 })
  const outbox = hooks.jobOutbox(() => true)
  await expect(
    repository.updateJob(job.id, { state: 'complete', progress: 100 }, { outbox }),
  ).rejects.toThrow(/no job.complete delivery/)
  expect(await repository.getJob(job.id)).toMatchObject({ state: 'progressing', progress: 10 })
  expect(await deliveriesOf(job)).toEqual([])
  expect(outbox.deliveries).toEqual([])
})

it('records no delivery when the job change fails', async () => {
  const hooks = webhooks()
  const job = await submittedJob()
  const outbox = hooks.jobOutbox(() => true)
  await expect(
    repository.updateJob(job.id, { state: 'error', errorCode: 'ENGINE_FAILED' }, { outbox }),
  ).rejects.toThrow(/no job in error/)
  expect(await repository.getJob(job.id)).toMatchObject({ state: 'submitted' })
  expect(await deliveriesOf(job)).toEqual([])
})

it('records nothing for a write that is not news', async () => {
  const hooks = webhooks()
  const job = await submittedJob()
  const outbox = hooks.jobOutbox(() => false)
  await repository.updateJob(job.id, { state: 'progressing' }, { outbox })
  expect(await deliveriesOf(job)).toEqual([])
})

it('a delivery recorded with a job change but never scheduled is sent by the sweep', async () => {
  const secret = webhookSecret()
  const receiver = await startWebhookReceiver(secret)
  open.push({ close: () => receiver.stop() })
  const hooks = webhooks({
    endpoints: [{ id: 'main', url: receiver.url, secret }],
    worker: { concurrency: 1 },
    sweepIntervalMs: 20,
  })
  // Started first, so that its resume() finds nothing: only the sweep can send the delivery.
  await hooks.dispatcher.start()
  const job = await submittedJob()
  const outbox = hooks.jobOutbox(() => true)
  // The writer dies after the commit: `jobWritten` (which schedules) never runs.
  await repository.updateJob(job.id, { state: 'progressing' }, { outbox })
  const [recorded] = outbox.deliveries
  const got = await receiver.next((w) => w.data.id === job.id)
  expect(got).toMatchObject({ id: recorded!.id, type: 'job.progressing' })
  expect(receiver.rejected).toBe(0)
})

it('records asset.created with the asset, and creates no asset when it cannot', async () => {
  const hooks = webhooks()
  const asset = await newAsset()
  const mine = { ...asset, id: randomUUID() }
  const outbox = hooks.assetOutbox('asset.created')
  await repository.createAsset(mine, { outbox })
  expect(await deliveriesOf(mine)).toEqual(['asset.created'])
  expect(outbox.deliveries.map((d) => d.eventType)).toEqual(['asset.created'])

  const refused = { ...asset, id: randomUUID(), owner: 'refused' }
  await expect(
    repository.createAsset(refused, { outbox: hooks.assetOutbox('asset.created') }),
  ).rejects.toThrow(/nothing for "refused"/)
  expect(await repository.getAsset(refused.id)).toBeNull()
})

it('records asset.deleted with the deletion, and keeps the asset when it cannot', async () => {
  const hooks = webhooks()
  const asset = await newAsset()
  const outbox = hooks.assetOutbox('asset.deleted')
  expect(await repository.deleteAsset(asset.id, { outbox })).toBe(true)
  expect(await repository.getAsset(asset.id)).toBeNull()
  expect(await deliveriesOf(asset)).toEqual(['asset.deleted'])
  // Deleting it again deletes nothing, and records nothing.
  const again = hooks.assetOutbox('asset.deleted')
  expect(await repository.deleteAsset(asset.id, { outbox: again })).toBe(false)
  expect(again.deliveries).toEqual([])

  const refused = await newAsset('refused')
  await expect(
    repository.deleteAsset(refused.id, { outbox: hooks.assetOutbox('asset.deleted') }),
  ).rejects.toThrow(/nothing for "refused"/)
  expect(await repository.getAsset(refused.id)).toMatchObject({ id: refused.id })
})

it('the service records its deliveries with its writes: a refused one refuses the write', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tk-outbox-'))
  open.push({ close: () => rm(dir, { recursive: true, force: true }) })
  const tone = await makeTone(join(dir, 'tone.wav'), { seconds: 1, format: 'wav' })
  const service = createTranscoder({
    storage: localStorage({ root: join(dir, 'storage') }),
    engine: ffmpegEngine({ tmpDir: join(dir, 'tmp') }),
    repository,
    worker: false,
    tmpDir: join(dir, 'spool'),
    logger: silent,
    webhooks: {
      endpoints: [{ url: 'https://receiver.example/hooks', secret: webhookSecret() }],
      worker: false,
    },
  })
  open.push(service)
  await service.ready()

  const refusedAssets = async () => (await repository.listAssets({ owner: 'refused' })).items
  const before = await refusedAssets()
  await expect(service.ingest(createReadStream(tone), { owner: 'refused' })).rejects.toThrow(
    /nothing for "refused"/,
  )
  expect(await refusedAssets()).toEqual(before)
  expect(await readdir(join(dir, 'storage', 'originals')).catch(() => [])).toEqual([])

  const asset = await service.ingest(createReadStream(tone), { owner: 'no-jobs' })
  expect(await deliveriesOf(asset)).toEqual(['asset.created'])
  await expect(
    service.transcode(asset.id, { owner: 'no-jobs', presets: ['flac'] }),
  ).rejects.toThrow(/nothing for "refused"/)
  expect((await repository.listJobs({ assetId: asset.id })).items).toEqual([])
})
