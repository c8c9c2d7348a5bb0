import { randomUUID } from 'node:crypto'
import {
  createWebhookDispatcher,
  jobWebhookEvent,
  type WebhookDelivery,
  type WebhookDeliveryStore,
} from '@transcodekit/core'
import { startWebhookReceiver, webhookSecret } from '@transcodekit/core/testing'
import { afterAll, expect, it } from 'vitest'
import { kyselyRepository, pgBossQueue } from '../src/index.ts'
import { DATABASE_URL, TestDatabase, waitFor } from './support/test-databases.ts'

const database = new TestDatabase('postgres')
const bossSchema = database.bossSchema()
afterAll(() => database.close())
const silent = { info() {}, warn() {}, error() {} }

/** One "server": a pg-boss job queue, and webhooks on its second queue and the repository's store. */
async function server(
  db: Awaited<ReturnType<TestDatabase['schema']>>,
  url: string,
  secret: string,
) {
  const queue = pgBossQueue({
    connectionString: DATABASE_URL,
    schema: bossSchema,
    queueName: `jobs-${randomUUID().slice(0, 8)}`,
    pollingIntervalSeconds: 0.5,
  })
  const repository = kyselyRepository(db)
  const webhooks = createWebhookDispatcher(
    {
      endpoints: [{ id: 'main', url, secret }],
      allowPrivateAddresses: true,
      retryDelayMs: 1000,
      retryDelayMaxMs: 1000,
      maxAttempts: 50,
      logger: silent,
    },
    { store: repository.webhookStore(), queue: queue.webhookQueue() },
  )
  await webhooks.start()
  return {
    webhooks,
    store: repository.webhookStore(),
    close: async () => {
      await webhooks.close()
      await queue.close()
    },
  }
}

function until(store: WebhookDeliveryStore, id: string, test: (d: WebhookDelivery) => boolean) {
  return waitFor(
    async () => store.get(id),
    (d) => d !== null && test(d),
    { what: `delivery ${id}`, intervalMs: 50 },
  ) as Promise<WebhookDelivery>
}

it('keeps a delivery to a stopped receiver through a restart, and delivers it with the same id', async () => {
  const db = await database.schema()
  const secret = webhookSecret()
  const receiver = await startWebhookReceiver(secret)
  await receiver.stop()
  const first = await server(db, receiver.url, secret)
  const now = new Date()
  await first.webhooks.publish(
    jobWebhookEvent({
      id: randomUUID(),
      owner: 'alice',
      assetId: randomUUID(),
      engine: 'ffmpeg',
      engineJobId: null,
      state: 'complete',
      progress: 100,
      errorCode: null,
      errorMessage: null,
      idempotencyKey: null,
      attempts: 1,
      outputs: [],
      createdAt: now,
      updatedAt: now,
      finishedAt: now,
    }),
  )
  const [pending] = (await first.store.list()).items
  const failing = await until(first.store, pending!.id, (d) => d.attempts >= 1)
  expect(failing).toMatchObject({ state: 'pending', lastStatus: null })
  await first.close()

  // The next attempt waits in pg-boss; a new process with the receiver back makes it.
  await receiver.start()
  const second = await server(db, receiver.url, secret)
  try {
    const got = await receiver.next()
    expect(got.id).toBe(pending!.id)
    expect(got.type).toBe('job.complete')
    const delivered = await until(second.store, pending!.id, (d) => d.state === 'delivered')
    expect(delivered.attempts).toBeGreaterThanOrEqual(2)
    expect(receiver.rejected).toBe(0)
  } finally {
    await second.close()
    await receiver.stop()
    await database.dropSchema(db.schema)
  }
})
