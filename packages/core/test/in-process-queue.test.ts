import { afterEach, describe, expect, it, vi } from 'vitest'
import type { QueueHandlerContext, QueueMessage } from '../src/ports/queue.ts'
import { inProcessQueue } from '../src/queue/in-process-queue.ts'

interface Call {
  jobId: string
  attempt: number
  signal: AbortSignal
}

/** A promise with its resolve function, to hold a handler until the test lets it go. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void
  const promise = new Promise<void>((resolve) => {
    open = resolve
  })
  return { promise, open }
}

/** Lets the event loop run a few turns, so anything that was going to start has started. */
async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve))
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 10_000; i++) {
    if (condition()) return
    await new Promise((resolve) => setImmediate(resolve))
  }
  throw new Error(`timed out waiting for ${what}`)
}

describe('inProcessQueue', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('delivers a message to the handler, also one sent before work started', async () => {
    const queue = inProcessQueue()
    const calls: Call[] = []
    await queue.send({ jobId: 'early' })
    await settle()
    expect(calls).toEqual([])
    await queue.work(async ({ jobId }, { attempt, signal }) => {
      calls.push({ jobId, attempt, signal })
    })
    await queue.send({ jobId: 'late' })
    await queue.idle()
    expect(calls.map((c) => [c.jobId, c.attempt])).toEqual([
      ['early', 1],
      ['late', 1],
    ])
    expect(calls.every((c) => !c.signal.aborted)).toBe(true)
    await queue.close()
  })

  it('retries a handler that throws, counting attempts, then gives up and reports it', async () => {
    const failures: Array<[unknown, QueueMessage, number]> = []
    const queue = inProcessQueue({
      retryLimit: 2,
      retryDelayMs: 0,
      onError: (error, message, attempt) => failures.push([error, message, attempt]),
    })
    const attempts = new Map<string, number[]>()
    await queue.work(async ({ jobId }, { attempt }) => {
      attempts.set(jobId, [...(attempts.get(jobId) ?? []), attempt])
      if (jobId === 'flaky' && attempt < 3) throw new Error(`flaky attempt ${attempt}`)
      if (jobId === 'broken') throw new Error('always broken')
    })
    await queue.send({ jobId: 'flaky' })
    await queue.send({ jobId: 'broken' })
    await queue.idle()
    expect(attempts.get('flaky')).toEqual([1, 2, 3])
    expect(attempts.get('broken')).toEqual([1, 2, 3])
    expect(failures).toHaveLength(1)
    expect(failures[0]![1]).toEqual({ jobId: 'broken' })
    expect(failures[0]![2]).toBe(3)
    expect((failures[0]![0] as Error).message).toBe('always broken')

    // A dropped message can be sent again.
    await queue.send({ jobId: 'broken' })
    await queue.idle()
    expect(attempts.get('broken')).toEqual([1, 2, 3, 1, 2, 3])
    await queue.close()
  })

  it("warns when the app's own onError throws, and keeps working", async () => {
    const warnings: Error[] = []
    const onWarning = (warning: Error) => warnings.push(warning)
    process.on('warning', onWarning)
    try {
      const queue = inProcessQueue({
        retryLimit: 0,
        retryDelayMs: 0,
        onError: () => {
          throw new Error('the reporter is down')
        },
      })
      const seen: string[] = []
      await queue.work(async ({ jobId }) => {
        seen.push(jobId)
        if (jobId === 'broken') throw new Error('always broken')
      })
      await queue.send({ jobId: 'broken' })
      await queue.idle()
      await new Promise((resolve) => setImmediate(resolve))
      expect(warnings.map((w) => [w.name, w.message])).toContainEqual([
        'TranscodeKitQueueWarning',
        "the queue's onError failed for job broken: the reporter is down",
      ])
      await queue.send({ jobId: 'next' })
      await queue.idle()
      expect(seen).toEqual(['broken', 'next'])
      await queue.close()
    } finally {
      process.off('warning', onWarning)
    }
  })

  it('waits longer before each retry (exponential backoff)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    const queue = inProcessQueue({ retryLimit: 3, retryDelayMs: 1000, onError: () => {} })
    const seen: number[] = []
    await queue.work(async (_message, { attempt }) => {
      seen.push(attempt)
      throw new Error('fails')
    })
    await queue.send({ jobId: 'j' })
    await settle()
    expect(seen).toEqual([1])

    // While it waits for a retry, the same job id is not queued again.
    await queue.send({ jobId: 'j' })
    await settle()
    expect(seen).toEqual([1])

    await vi.advanceTimersByTimeAsync(999)
    expect(seen).toEqual([1])
    await vi.advanceTimersByTimeAsync(1)
    await settle()
    expect(seen).toEqual([1, 2])
    await vi.advanceTimersByTimeAsync(1999)
    expect(seen).toEqual([1, 2])
    await vi.advanceTimersByTimeAsync(1)
    await settle()
    expect(seen).toEqual([1, 2, 3])
    await vi.advanceTimersByTimeAsync(4000)
    await settle()
    expect(seen).toEqual([1, 2, 3, 4])
    await queue.idle()
    await queue.close()
  })

  it('does not queue a job id twice while it is waiting or running', async () => {
    const queue = inProcessQueue()
    const calls: string[] = []
    const hold = gate()
    await queue.send({ jobId: 'a' })
    await queue.send({ jobId: 'a' })
    await queue.work(async ({ jobId }) => {
      calls.push(jobId)
      if (jobId === 'a' && calls.length === 1) await hold.promise
    })
    await until(() => calls.length === 1, 'the first delivery')
    await queue.send({ jobId: 'a' })
    await queue.send({ jobId: 'a' })
    await queue.send({ jobId: 'b' })
    hold.open()
    await queue.idle()
    expect(calls).toEqual(['a', 'b'])

    // Once it has been handled, the same id is a new message.
    await queue.send({ jobId: 'a' })
    await queue.idle()
    expect(calls).toEqual(['a', 'b', 'a'])
    await queue.close()
  })

  it('close() aborts running handlers and resolves only after they return, without retrying', async () => {
    const queue = inProcessQueue({ retryLimit: 5, retryDelayMs: 0 })
    const calls: Call[] = []
    let returned = false
    let reason: unknown
    await queue.work(
      async ({ jobId }, context: QueueHandlerContext) => {
        calls.push({ jobId, attempt: context.attempt, signal: context.signal })
        await new Promise<void>((resolve) =>
          context.signal.addEventListener('abort', () => resolve()),
        )
        reason = context.signal.reason
        // Some cleanup after the abort, which close() must wait for.
        await settle(3)
        returned = true
        throw context.signal.reason
      },
      { concurrency: 2 },
    )
    await queue.send({ jobId: 'running' })
    await queue.send({ jobId: 'also-running' })
    await queue.send({ jobId: 'waiting' })
    await until(() => calls.length === 2, 'two running handlers')

    await queue.close()
    expect(returned).toBe(true)
    expect(calls.map((c) => c.jobId)).toEqual(['running', 'also-running'])
    expect(calls.every((c) => c.signal.aborted)).toBe(true)
    expect(reason).toMatchObject({ code: 'ABORTED' })
    await settle()
    expect(calls).toHaveLength(2)
    await expect(queue.send({ jobId: 'after' })).rejects.toMatchObject({ code: 'INVALID_STATE' })
    await queue.close()
  })

  it('never runs more handlers at once than its concurrency', async () => {
    const queue = inProcessQueue()
    const holds = new Map<string, ReturnType<typeof gate>>()
    const started: string[] = []
    let active = 0
    let maxActive = 0
    await queue.work(
      async ({ jobId }) => {
        active++
        maxActive = Math.max(maxActive, active)
        started.push(jobId)
        const hold = gate()
        holds.set(jobId, hold)
        await hold.promise
        active--
      },
      { concurrency: 2 },
    )
    for (const jobId of ['j1', 'j2', 'j3', 'j4', 'j5']) await queue.send({ jobId })
    await until(() => started.length === 2, 'two handlers')
    await settle()
    expect(started).toEqual(['j1', 'j2'])

    holds.get('j1')!.open()
    await until(() => started.length === 3, 'a third handler')
    await settle()
    expect(started).toEqual(['j1', 'j2', 'j3'])

    for (const jobId of ['j2', 'j3', 'j4', 'j5']) {
      await until(() => holds.has(jobId), jobId)
      holds.get(jobId)!.open()
    }
    await queue.idle()
    expect(started).toEqual(['j1', 'j2', 'j3', 'j4', 'j5'])
    expect(maxActive).toBe(2)
    await queue.close()
  })

  it('refuses bad options and a second worker with clear errors', async () => {
    expect(() => inProcessQueue({ retryLimit: -1 })).toThrow(/retryLimit/)
    expect(() => inProcessQueue({ retryDelayMs: Number.NaN })).toThrow(/retryDelayMs/)
    const queue = inProcessQueue()
    await expect(queue.work(async () => {}, { concurrency: 0 })).rejects.toMatchObject({
      code: 'CONFIGURATION',
    })
    await queue.work(async () => {})
    await expect(queue.work(async () => {})).rejects.toMatchObject({ code: 'INVALID_STATE' })
    await expect(queue.send({ jobId: '' })).rejects.toMatchObject({ code: 'INVALID_MESSAGE' })
    await queue.close()
  })
})
