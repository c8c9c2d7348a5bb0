import { randomUUID } from 'node:crypto'
import { afterAll, describe, expect, it } from 'vitest'
import { type PgBossQueue, pgBossQueue } from '../src/index.ts'
import { DATABASE_URL, randomSchema, serverQuery, waitFor } from './support/test-databases.ts'

const bossSchema = randomSchema('tk_depth')
const queues: PgBossQueue[] = []

afterAll(async () => {
  await Promise.all(queues.map((q) => q.close()))
  await serverQuery(`drop schema if exists ${bossSchema} cascade`)
})

describe('pgBossQueue.depth()', () => {
  it('counts the messages waiting, then running, across its workers (as of the monitor pass)', async () => {
    const make = () => {
      const queue = pgBossQueue({
        connectionString: DATABASE_URL,
        schema: bossSchema,
        queueName: 'depth',
        superviseIntervalSeconds: 1,
        pollingIntervalSeconds: 0.5,
      })
      queues.push(queue)
      return queue
    }
    const sender = make()
    await sender.send({ jobId: randomUUID() })
    await sender.send({ jobId: randomUUID() })
    await waitFor(
      () => sender.depth(),
      (depth) => depth.waiting === 2 && depth.running === 0,
      { timeoutMs: 30_000, what: 'two waiting' },
    )
    // Another process's worker takes them and holds them.
    const worker = make()
    let release!: () => void
    const held = new Promise<void>((resolve) => {
      release = resolve
    })
    await worker.work(() => held, { concurrency: 2 })
    const running = await waitFor(
      () => sender.depth(),
      (depth) => depth.running === 2,
      { timeoutMs: 30_000, what: 'two running' },
    )
    expect(running).toEqual({ waiting: 0, running: 2 })
    release()
    await waitFor(
      () => sender.depth(),
      (depth) => depth.running === 0 && depth.waiting === 0,
      { timeoutMs: 30_000, what: 'none left' },
    )
  })
})
