import { randomBytes } from 'node:crypto'
import { openAsBlob } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeTone, startWebhookReceiver, webhookSecret } from '@transcodekit/core/testing'
import { openDatabase } from '@transcodekit/kysely'
import { sql } from 'kysely'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { followJob, type RunningServer, startServer } from './server-process.ts'

/**
 * `transcodekit serve` on PostgreSQL with WEBHOOK_URL: a receiver that is down while a job
 * runs gets its events once it is back, after a restart of the server too, each with the
 * webhook id it was first sent with.
 */
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const suffix = randomBytes(4).toString('hex')
const schemas = [`webhooks_${suffix}`, `webhooks_${suffix}_boss`]
let dir: string
let mp3: string
const servers: RunningServer[] = []

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'transcodekit-webhooks-'))
  mp3 = await makeTone(join(dir, 'tone.mp3'), { seconds: 1, format: 'mp3' })
})
afterAll(async () => {
  for (const server of servers) await server.stop('SIGKILL')
  const { db, close } = await openDatabase({ url: DATABASE_URL, maxConnections: 1 })
  for (const schema of schemas)
    await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db)
  await close()
  await rm(dir, { recursive: true, force: true })
})

interface DeliveryView {
  id: string
  eventType: string
  state: string
  attempts: number
  lastError: string | null
  payload: string
}

async function deliveries(server: RunningServer): Promise<DeliveryView[]> {
  const answer = await fetch(`${server.url}/api/webhooks/deliveries?limit=100`)
  expect(answer.status).toBe(200)
  return ((await answer.json()) as { items: DeliveryView[] }).items
}

it('delivers what happened while the receiver was down, across a restart, with the same ids', async () => {
  const secret = webhookSecret()
  const receiver = await startWebhookReceiver(secret)
  await receiver.stop()
  const env = {
    DATA_DIR: join(dir, 'data'),
    DATABASE_URL,
    DATABASE_SCHEMA: schemas[0]!,
    QUEUE_SCHEMA: schemas[1]!,
    WEBHOOK_URL: receiver.url,
    WEBHOOK_SECRET: secret,
    WEBHOOK_ALLOW_PRIVATE: 'true',
    WEBHOOK_RETRY_DELAY_MS: '1000',
  }
  const first = await startServer(env)
  servers.push(first)
  const form = new FormData()
  form.append('presets', 'wav')
  form.append('file', await openAsBlob(mp3, { type: 'audio/mpeg' }), 'tone.mp3')
  const created = await fetch(`${first.url}/api/uploads`, { method: 'POST', body: form })
  expect(created.status).toBe(201)
  const { job } = (await created.json()) as { job: { id: string } }
  expect((await followJob(first.url, job.id)).state).toBe('complete')

  // Every event recorded, each tried at least once against the closed port.
  let before: DeliveryView[] = []
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
    before = await deliveries(first)
    if (before.length === 4 && before.every((d) => d.attempts >= 1)) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  expect(before.map((d) => d.eventType).sort()).toEqual([
    'asset.created',
    'job.complete',
    'job.progressing',
    'job.submitted',
  ])
  for (const delivery of before) {
    expect(delivery).toMatchObject({ state: 'pending' })
    expect(delivery.lastError).toMatch(/ECONNREFUSED/)
  }
  await first.stop('SIGTERM')

  await receiver.start()
  const second = await startServer(env)
  servers.push(second)
  try {
    const complete = await receiver.next(
      (w) => w.type === 'job.complete' && (w.data as { id: string }).id === job.id,
    )
    expect(complete.id).toBe(before.find((d) => d.eventType === 'job.complete')!.id)
    for (const delivery of before) {
      const got = await receiver.next((w) => w.id === delivery.id)
      expect(got.type).toBe(delivery.eventType)
    }
    // A duplicate (at least once) carries the id of its delivery, never a new one.
    const known = new Set(before.map((d) => d.id))
    expect(receiver.received.every((w) => known.has(w.id))).toBe(true)
    expect(receiver.rejected).toBe(0)
  } finally {
    await second.stop('SIGTERM')
    await receiver.stop()
  }
})
