import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import type { QueueHandlerContext } from '@transcodekit/core'
import { PgBoss } from 'pg-boss'
import { afterAll, describe, expect, it } from 'vitest'
import { type PgBossQueue, type PgBossQueueOptions, pgBossQueue } from '../src/index.ts'
import { DATABASE_URL, randomSchema, serverQuery, waitFor } from './support/test-databases.ts'

const bossSchema = randomSchema('tk_boss')
const queues: PgBossQueue[] = []

function makeQueue(options: Partial<PgBossQueueOptions> = {}): PgBossQueue {
  const queue = pgBossQueue({
    connectionString: DATABASE_URL,
    schema: bossSchema,
    queueName: `q-${randomUUID().slice(0, 8)}`,
    pollingIntervalSeconds: 0.5,
    retryDelaySec: 1,
    retryDelayMaxSec: 2,
    ...options,
  })
  queues.push(queue)
  return queue
}

afterAll(async () => {
  await Promise.all(queues.map((q) => q.close()))
  await serverQuery(`drop schema if exists ${bossSchema} cascade`)
})

describe('pgBossQueue', () => {
  it('delivers each message, once per job id while it waits', async () => {
    const queue = makeQueue()
    const seen: Array<{ jobId: string; attempt: number }> = []
    await queue.send({ jobId: 'job-1' })
    await queue.send({ jobId: 'job-1' })
    await queue.send({ jobId: 'job-2' })
    await queue.work(async ({ jobId }, { attempt }) => {
      seen.push({ jobId, attempt })
    })
    await waitFor(
      async () => seen.length,
      (n) => n >= 2,
      { what: 'two deliveries' },
    )
    const rows = await serverQuery<{ n: number }>(
      `select count(*)::int as n from ${bossSchema}.job where name = $1`,
      [queue.queueName],
    )
    expect(rows[0]!.n).toBe(2)
    await waitFor(
      () => serverQuery(`select state from ${bossSchema}.job where name = $1`, [queue.queueName]),
      (r) => r.every((row) => row.state === 'completed'),
      { what: 'both messages completed' },
    )
    expect(seen.sort((a, b) => a.jobId.localeCompare(b.jobId))).toEqual([
      { jobId: 'job-1', attempt: 1 },
      { jobId: 'job-2', attempt: 1 },
    ])
  })

  it('wakes a worker of this process when it sends, instead of leaving the message to the next poll', async () => {
    // A poll every 60 s: a delivery within 20 s can only come from the wake-up.
    const queue = makeQueue({ pollingIntervalSeconds: 60 })
    const seen: string[] = []
    await queue.work(async ({ jobId }) => {
      seen.push(jobId)
    })
    // The worker's first poll (at start) found nothing; it now sleeps for a minute.
    await new Promise((resolve) => setTimeout(resolve, 500))
    await queue.send({ jobId: 'woken' })
    await waitFor(
      async () => seen,
      (jobs) => jobs.includes('woken'),
      { what: 'the delivery', timeoutMs: 20_000 },
    )
    expect(seen).toEqual(['woken'])
  })

  it('retries a handler that throws, counting attempts', async () => {
    const queue = makeQueue({ retryLimit: 2 })
    const attempts: number[] = []
    await queue.work(async (_message, { attempt }) => {
      attempts.push(attempt)
      if (attempt < 3) throw new Error(`failure ${attempt}`)
    })
    await queue.send({ jobId: 'flaky' })
    await waitFor(
      async () => attempts.length,
      (n) => n >= 3,
      { what: 'three attempts' },
    )
    const [row] = await waitFor(
      () =>
        serverQuery(`select state, retry_count from ${bossSchema}.job where name = $1`, [
          queue.queueName,
        ]),
      (r) => r[0]?.state === 'completed',
      { what: 'the message to complete' },
    )
    expect(attempts).toEqual([1, 2, 3])
    expect(row.retry_count).toBe(2)
  })

  it('close() aborts running handlers, waits for them, and leaves their message to another worker', async () => {
    const first = makeQueue()
    const second = makeQueue({ queueName: first.queueName })
    let running: QueueHandlerContext | null = null
    let returned = false
    await first.work(async (_message, context) => {
      running = context
      await once(context.signal, 'abort')
      returned = true
      // Returning normally after an abort still leaves the message to be delivered again.
    })
    await first.send({ jobId: 'long' })
    await waitFor(
      async () => running,
      (r) => r !== null,
      { what: 'the handler to start' },
    )
    await first.close()
    expect(returned).toBe(true)
    expect(running!.signal.aborted).toBe(true)
    expect(running!.signal.reason).toMatchObject({ code: 'ABORTED' })

    const redelivered: Array<{ jobId: string; attempt: number }> = []
    await second.work(async ({ jobId }, { attempt }) => {
      redelivered.push({ jobId, attempt })
    })
    await waitFor(
      async () => redelivered.length,
      (n) => n >= 1,
      { what: 'the redelivery' },
    )
    expect(redelivered).toEqual([{ jobId: 'long', attempt: 2 }])
    await expect(first.send({ jobId: 'after-close' })).rejects.toMatchObject({ code: 'ABORTED' })
  })

  it('aborts a delivery that runs past expireInSeconds and hands the message out again', async () => {
    const queue = makeQueue({ expireInSeconds: 1 })
    const deliveries: Array<{ attempt: number; aborted: boolean }> = []
    await queue.work(async (_message, { attempt, signal }) => {
      const record = { attempt, aborted: false }
      deliveries.push(record)
      if (attempt > 1) return
      // A stuck first run: it only ends when the queue gives up on it.
      await once(signal, 'abort')
      record.aborted = true
    })
    await queue.send({ jobId: 'stuck' })
    await waitFor(
      async () => deliveries.length,
      (n) => n >= 2,
      { what: 'the second delivery' },
    )
    expect(deliveries).toEqual([
      { attempt: 1, aborted: true },
      { attempt: 2, aborted: false },
    ])
  })

  it('never stops a PgBoss the app passed in', async () => {
    const boss = new PgBoss({ connectionString: DATABASE_URL, schema: bossSchema, schedule: false })
    boss.on('error', () => {})
    await boss.start()
    try {
      const queue = pgBossQueue({
        boss,
        queueName: `q-${randomUUID().slice(0, 8)}`,
        pollingIntervalSeconds: 0.5,
      })
      const seen: string[] = []
      await queue.work(async ({ jobId }) => {
        seen.push(jobId)
      })
      await queue.send({ jobId: 'a' })
      await waitFor(
        async () => seen.length,
        (n) => n === 1,
        { what: 'a delivery' },
      )
      await queue.close()
      // The app's boss still works: the queue only stopped its own worker.
      const id = await boss.send(queue.queueName, { jobId: 'b' })
      expect(id).toEqual(expect.any(String))
      const [job] = await boss.fetch<{ jobId: string }>(queue.queueName)
      expect(job?.data.jobId).toBe('b')
      expect(seen).toEqual(['a'])
    } finally {
      await boss.stop({ graceful: false })
    }
  })

  it('refuses bad options with a clear error', () => {
    expect(() => pgBossQueue({})).toThrow(expect.objectContaining({ code: 'CONFIGURATION' }))
    expect(() => pgBossQueue({ connectionString: DATABASE_URL, heartbeatSeconds: 5 })).toThrow(
      /heartbeatSeconds/,
    )
    expect(() => pgBossQueue({ connectionString: DATABASE_URL, queueName: 'a b' })).toThrow(
      /queueName/,
    )
    expect(() => pgBossQueue({ connectionString: DATABASE_URL, retryLimit: -1 })).toThrow(
      /retryLimit/,
    )
  })
})
