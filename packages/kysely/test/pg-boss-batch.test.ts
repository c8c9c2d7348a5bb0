import { randomUUID } from 'node:crypto'
import { afterAll, describe, expect, it } from 'vitest'
import { type PgBossQueue, pgBossQueue } from '../src/index.ts'
import { DATABASE_URL, randomSchema, serverQuery } from './support/test-databases.ts'

const bossSchema = randomSchema('tk_boss_batch')
const queues: PgBossQueue[] = []

function makeQueue(): PgBossQueue {
  const queue = pgBossQueue({
    connectionString: DATABASE_URL,
    schema: bossSchema,
    queueName: `q-${randomUUID().slice(0, 8)}`,
  })
  queues.push(queue)
  return queue
}

/** Counts the insert statements the queue makes (pg-boss's own insert still runs). */
function countInserts(queue: PgBossQueue): () => number {
  const boss = queue.boss
  const insert = boss.insert.bind(boss)
  let calls = 0
  boss.insert = (...args: Parameters<typeof insert>) => {
    calls++
    return insert(...args)
  }
  return () => calls
}

async function messages(queue: PgBossQueue): Promise<Map<string, number>> {
  const rows = await serverQuery<{ job_id: string; n: number }>(
    `select data->>'jobId' as job_id, count(*)::int as n from ${bossSchema}.job where name = $1 group by 1`,
    [queue.queueName],
  )
  return new Map(rows.map((row) => [row.job_id, row.n]))
}

afterAll(async () => {
  await Promise.all(queues.map((q) => q.close()))
  await serverQuery(`drop schema if exists ${bossSchema} cascade`)
})

describe('pgBossQueue sends in a burst', () => {
  it('queues one message per job in far fewer statements than sends', async () => {
    const queue = makeQueue()
    await queue.start()
    const inserts = countInserts(queue)
    const jobIds = Array.from({ length: 300 }, () => randomUUID())
    await Promise.all(jobIds.map((jobId) => queue.send({ jobId })))
    const queued = await messages(queue)
    expect(queued.size).toBe(300)
    expect([...queued.values()].every((n) => n === 1)).toBe(true)
    expect(inserts()).toBeGreaterThan(0)
    expect(inserts()).toBeLessThanOrEqual(10)
  })

  it('queues a job once however often it is sent, in one burst or after', async () => {
    const queue = makeQueue()
    const jobIds = Array.from({ length: 50 }, () => randomUUID())
    // Each job sent four times in the same burst.
    await Promise.all(jobIds.flatMap((jobId) => [1, 2, 3, 4].map(() => queue.send({ jobId }))))
    await Promise.all(jobIds.map((jobId) => queue.send({ jobId })))
    const queued = await messages(queue)
    expect(queued.size).toBe(50)
    expect([...queued.values()].every((n) => n === 1)).toBe(true)
  })

  it('fails only the send whose message the database refuses', async () => {
    const queue = makeQueue()
    await queue.start()
    const good = Array.from({ length: 20 }, () => randomUUID())
    // PostgreSQL's jsonb refuses a NUL character: this message alone cannot be stored.
    const bad = `bad\u0000${randomUUID()}`
    const outcomes = await Promise.allSettled([
      ...good.map((jobId) => queue.send({ jobId })),
      queue.send({ jobId: bad }),
    ])
    expect(outcomes.slice(0, 20).every((o) => o.status === 'fulfilled')).toBe(true)
    expect(outcomes[20]?.status).toBe('rejected')
    const queued = await messages(queue)
    expect([...queued.keys()].sort()).toEqual([...good].sort())
  })
})
