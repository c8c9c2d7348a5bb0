/**
 * Webhook outbox benchmark, on PostgreSQL: the job writes of one job's life (create,
 * `progressing`, `complete`), each announced to one webhook endpoint,
 *
 *   - `after` (the baseline, as before the outbox): the write, then the delivery inserted by
 *     the store in a statement of its own;
 *   - `outbox`: the write with its deliveries in one transaction (`{ outbox }`).
 *
 * Neither schedules the delivery (the queue is the same in both). Rounds interleave the two
 * (the order reversed every other round); prints each round's wall time and this process's
 * CPU seconds, then the per-round ratios outbox / after.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test node bench/outbox-bench.ts
 *   ROUNDS=5 JOBS=200   (the defaults)
 */
import { randomUUID } from 'node:crypto'
import {
  createWebhookDispatcher,
  type Job,
  jobWebhookEvent,
  type NewJob,
  ServiceWebhooks,
} from '../packages/core/src/index.ts'
import { kyselyRepository, migrateToLatest, openDatabase } from '../packages/kysely/src/index.ts'
import { interleave, printSpread, ratios, roundsFromEnv } from './support/bench-rounds.ts'

const url = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test'
const rounds = roundsFromEnv()
const jobs = Number(process.env.JOBS ?? 200)

const { db, close } = await openDatabase({ url, maxConnections: 4 })
const schema = `tk_bench_outbox_${randomUUID().slice(0, 8)}`
await migrateToLatest(db, { schema })
const repository = kyselyRepository({ db, schema })
const dispatcher = createWebhookDispatcher(
  {
    endpoints: [
      { id: 'main', url: 'https://receiver.example/hooks', secret: `whsec_${'A'.repeat(32)}` },
    ],
    worker: false,
  },
  { store: repository.webhookStore() },
)
const webhooks = new ServiceWebhooks(dispatcher, { recordsWithJobs: true })

function newJob(assetId: string): NewJob {
  const id = randomUUID()
  return {
    id,
    owner: 'bench',
    assetId,
    engine: 'ffmpeg',
    idempotencyKey: null,
    requestHash: 'hash',
    outputs: [
      { name: 'wav', presetId: 'wav', storageKey: `out/${id}.wav`, contentType: 'audio/wav' },
    ],
    createdAt: new Date(),
  }
}

/** One job's life, each write followed by its delivery in a statement of its own. */
async function after(assetId: string): Promise<void> {
  const record = async (job: Job | null) => {
    if (!job) throw new Error('the job is gone')
    for (const delivery of dispatcher.deliveriesOf(jobWebhookEvent(job))) {
      await dispatcher.store.create(delivery)
    }
  }
  const { job } = await repository.createJob(newJob(assetId))
  await record(job)
  await record(await repository.updateJob(job.id, { state: 'progressing', progress: 10 }))
  await record(await repository.updateJob(job.id, { state: 'complete', progress: 100 }))
}

/** One job's life, each write with its deliveries in one transaction. */
async function outbox(assetId: string): Promise<void> {
  const { job } = await repository.createJob(newJob(assetId), {
    outbox: webhooks.newJobOutbox(),
  })
  for (const patch of [
    { state: 'progressing' as const, progress: 10 },
    { state: 'complete' as const, progress: 100 },
  ]) {
    await repository.updateJob(job.id, patch, { outbox: webhooks.jobOutbox(() => true) })
  }
}

async function measure(life: (assetId: string) => Promise<void>) {
  const assetId = randomUUID()
  await repository.createAsset({
    id: assetId,
    owner: 'bench',
    storageKey: `originals/${assetId}.wav`,
    originalFilename: null,
    contentType: 'audio/wav',
    size: 1,
    sha256: '0'.repeat(64),
    media: { formatName: 'wav', durationSec: 1, bitRate: null, streams: [] },
    createdAt: new Date(),
  })
  const cpu = process.cpuUsage()
  const start = performance.now()
  for (let i = 0; i < jobs; i++) await life(assetId)
  const wallMs = performance.now() - start
  const used = process.cpuUsage(cpu)
  return { wallMs, cpuSec: (used.user + used.system) / 1e6 }
}

try {
  // One unmeasured life of each warms the pool and the prepared plans.
  await measure(after)
  await measure(outbox)
  const samples = await interleave(
    rounds,
    [
      { name: 'after', run: () => measure(after) },
      { name: 'outbox', run: () => measure(outbox) },
    ],
    (round, name, { wallMs, cpuSec }) =>
      console.log(
        `round ${round} ${name.padEnd(6)} ${jobs} jobs  ${wallMs.toFixed(0)} ms  ${cpuSec.toFixed(2)} CPU s`,
      ),
  )
  const wall = (name: string) => samples.get(name)!.map((s) => s.wallMs)
  const cpu = (name: string) => samples.get(name)!.map((s) => s.cpuSec)
  printSpread('wall time, outbox / after', ratios(wall('outbox'), wall('after')))
  printSpread('client CPU, outbox / after', ratios(cpu('outbox'), cpu('after')))
} finally {
  await dispatcher.close()
  await db.schema.dropSchema(schema).ifExists().cascade().execute()
  await close()
}
