import { randomUUID } from 'node:crypto'
import type { QueueHandlerContext, QueueMessage } from '@transcodekit/core'
import { repositoryConformance } from '@transcodekit/core/testing'
import knexFactory, { type Knex } from 'knex'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrateStrapiTables, TABLES } from '../src/knex-migrations.ts'
import { knexQueue } from '../src/knex-queue.ts'
import { knexRepository } from '../src/knex-repository.ts'

// The Strapi-database repository and queue on a bare Knex over PostgreSQL, in a schema of
// their own (the real Strapi boots, on SQLite and PostgreSQL, are in test/strapi-database.test.ts).

const URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const SCHEMA = `tk_knex_${randomUUID().replaceAll('-', '').slice(0, 12)}`

let knex: Knex

beforeAll(async () => {
  const admin = knexFactory({ client: 'pg', connection: URL })
  await admin.raw(`CREATE SCHEMA ${SCHEMA}`)
  await admin.destroy()
  knex = knexFactory({ client: 'pg', connection: URL, searchPath: [SCHEMA], pool: { max: 10 } })
  // Twice at once, as two processes starting together: Knex's migration lock makes it once.
  await Promise.all([migrateStrapiTables(knex), migrateStrapiTables(knex)])
})

afterAll(async () => {
  await knex?.raw(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`)
  await knex?.destroy()
})

repositoryConformance('knexRepository on PostgreSQL', async () => ({
  repository: knexRepository({ knex }),
}))

/** A handler that records its deliveries and holds each one until released. */
function heldHandler() {
  const runs: Array<{ jobId: string; attempt: number; signal: AbortSignal }> = []
  const releases: Array<() => void> = []
  let started: () => void = () => {}
  let startedPromise = new Promise<void>((r) => {
    started = r
  })
  return {
    runs,
    /** Resolves on the next delivery. */
    nextStart() {
      return startedPromise
    },
    releaseAll() {
      for (const release of releases.splice(0)) release()
    },
    handler: async (message: QueueMessage, context: QueueHandlerContext) => {
      runs.push({ jobId: message.jobId, attempt: context.attempt, signal: context.signal })
      const done = new Promise<void>((resolve, reject) => {
        releases.push(resolve)
        context.signal.addEventListener('abort', () => reject(new Error('aborted')), {
          once: true,
        })
      })
      const signal = started
      startedPromise = new Promise<void>((r) => {
        started = r
      })
      signal()
      await done
    },
  }
}

async function workRow(jobId: string) {
  return knex(TABLES.work).where({ job_id: jobId }).first()
}

describe('knexQueue', () => {
  it('gives one job to one of two workers, however often it is sent, and deletes it once done', async () => {
    const a = heldHandler()
    const b = heldHandler()
    const queueA = knexQueue({ knex, pollIntervalMs: 20 })
    const queueB = knexQueue({ knex, pollIntervalMs: 20 })
    try {
      await queueA.work(a.handler, { concurrency: 2 })
      await queueB.work(b.handler, { concurrency: 2 })
      const jobId = randomUUID()
      const firstStart = Promise.race([a.nextStart(), b.nextStart()])
      await Promise.all(Array.from({ length: 5 }, () => queueA.send({ jobId })))
      await queueB.send({ jobId })
      await firstStart
      // Both workers keep polling while the first one holds the job: nobody else gets it.
      for (let i = 0; i < 10; i++) {
        await new Promise((r) => setTimeout(r, 20))
        expect(a.runs.length + b.runs.length).toBe(1)
      }
      expect((await workRow(jobId))?.locked_by).toEqual(expect.any(String))
      a.releaseAll()
      b.releaseAll()
      for (let i = 0; (await workRow(jobId)) && i < 500; i++) {
        await new Promise((r) => setTimeout(r, 10))
      }
      expect(await workRow(jobId)).toBeUndefined()
      expect([...a.runs, ...b.runs].map((r) => r.attempt)).toEqual([1])
    } finally {
      await queueA.close()
      await queueB.close()
    }
  })

  it('releases a running job at close, and the next worker takes it at once', async () => {
    const first = heldHandler()
    const queue = knexQueue({ knex, pollIntervalMs: 20, leaseMs: 600_000 })
    const jobId = randomUUID()
    await queue.work(first.handler)
    const started = first.nextStart()
    await queue.send({ jobId })
    await started
    await queue.close()
    expect(first.runs[0]!.signal.aborted).toBe(true)
    expect(await workRow(jobId)).toMatchObject({ locked_by: null, locked_until: null })

    const second = heldHandler()
    const next = knexQueue({ knex, pollIntervalMs: 20, leaseMs: 600_000 })
    try {
      const again = second.nextStart()
      await next.work(second.handler)
      await again
      // A stop is not a failed delivery: this is attempt 1 again.
      expect(second.runs).toMatchObject([{ jobId, attempt: 1 }])
      second.releaseAll()
    } finally {
      await next.close()
    }
  })

  it('takes over the job of a killed worker once its lease lapses', async () => {
    const jobId = randomUUID()
    // What a killed process leaves behind: a claim nobody renews, now lapsed.
    await knex(TABLES.work).insert({
      job_id: jobId,
      available_at: Date.now() - 60_000,
      locked_by: 'killed-process',
      locked_until: Date.now() - 1,
      deliveries: 1,
    })
    const rescuer = heldHandler()
    const alive = knexQueue({ knex, pollIntervalMs: 20 })
    try {
      const taken = rescuer.nextStart()
      await alive.work(rescuer.handler)
      await taken
      expect(rescuer.runs).toMatchObject([{ jobId, attempt: 2 }])
      rescuer.releaseAll()
    } finally {
      await alive.close()
    }
  })

  it('stops a handler whose claim another worker took (it stalled past its lease)', async () => {
    const stalled = heldHandler()
    const jobId = randomUUID()
    const queue = knexQueue({ knex, pollIntervalMs: 20, leaseMs: 300 })
    try {
      await queue.work(stalled.handler)
      const started = stalled.nextStart()
      await queue.send({ jobId })
      await started
      await knex(TABLES.work).where({ job_id: jobId }).update({ locked_by: 'another-process' })
      // Its next renewal (every leaseMs / 3) finds the claim gone and aborts the handler.
      for (let i = 0; !stalled.runs[0]!.signal.aborted && i < 200; i++) {
        await new Promise((r) => setTimeout(r, 10))
      }
      expect(stalled.runs[0]!.signal.aborted).toBe(true)
      // The other worker's claim is left alone.
      expect(await workRow(jobId)).toMatchObject({ locked_by: 'another-process' })
    } finally {
      await queue.close()
      await knex(TABLES.work).where({ job_id: jobId }).delete()
    }
  })

  it('delivers a failed job again after a delay, then drops it after its last delivery, logged', async () => {
    const errors: unknown[] = []
    const queue = knexQueue({
      knex,
      pollIntervalMs: 10,
      retryLimit: 1,
      retryDelayMs: 10,
      logger: { warn: () => {}, error: (fields) => errors.push(fields) },
    })
    const jobId = randomUUID()
    const attempts: number[] = []
    try {
      await queue.work(async (_message, context) => {
        attempts.push(context.attempt)
        throw new Error('engine down')
      })
      await queue.send({ jobId })
      for (let i = 0; (attempts.length < 2 || (await workRow(jobId))) && i < 500; i++) {
        await new Promise((r) => setTimeout(r, 10))
      }
      expect(attempts).toEqual([1, 2])
      expect(await workRow(jobId)).toBeUndefined()
      expect(errors).toMatchObject([{ jobId, attempt: 2, error: 'engine down' }])
    } finally {
      await queue.close()
    }
  })
})
