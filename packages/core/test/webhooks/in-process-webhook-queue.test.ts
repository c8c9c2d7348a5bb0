import { describe, expect, it } from 'vitest'
import { AbortedError, inProcessWebhookQueue, type WebhookTask } from '../../src/index.ts'

describe('inProcessWebhookQueue', () => {
  it('runs each (delivery, attempt) once while it waits, and reruns a handler that throws', async () => {
    const queue = inProcessWebhookQueue({ retryDelayMs: 0, retryLimit: 1 })
    // Sent before any worker: all of them wait.
    await queue.send({ deliveryId: 'a', attempt: 1 })
    await queue.send({ deliveryId: 'a', attempt: 1 })
    await queue.send({ deliveryId: 'a', attempt: 2 }, { delayMs: 5 })
    await queue.send({ deliveryId: 'b', attempt: 1 })
    const seen: string[] = []
    let failOnce = true
    await new Promise<void>((resolve) => {
      void queue.work(async (task) => {
        seen.push(`${task.deliveryId}:${task.attempt}`)
        if (task.deliveryId === 'b' && failOnce) {
          failOnce = false
          throw new Error('database down')
        }
        if (seen.length === 4) resolve()
      })
    })
    expect(seen.sort()).toEqual(['a:1', 'a:2', 'b:1', 'b:1'])
    await queue.close()
  })

  it('aborts running handlers on close, waits for them, and drops what waits', async () => {
    const queue = inProcessWebhookQueue()
    const ran: WebhookTask[] = []
    let abortedWith: unknown = null
    const started = new Promise<void>((resolve) => {
      void queue.work(async (task, { signal }) => {
        ran.push(task)
        resolve()
        await new Promise<void>((settle) =>
          signal.addEventListener('abort', () => {
            abortedWith = signal.reason
            settle()
          }),
        )
      })
    })
    await queue.send({ deliveryId: 'slow', attempt: 1 })
    await queue.send({ deliveryId: 'later', attempt: 1 }, { delayMs: 60_000 })
    await started
    await queue.close()
    expect(abortedWith).toBeInstanceOf(AbortedError)
    expect(ran.map((t) => t.deliveryId)).toEqual(['slow'])
    await expect(queue.send({ deliveryId: 'x', attempt: 1 })).rejects.toThrow(/closed/)
  })
})
