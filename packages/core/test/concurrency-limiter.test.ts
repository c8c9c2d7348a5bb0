import { describe, expect, it } from 'vitest'
import { ConcurrencyLimiter } from '../src/service/concurrency-limiter.ts'

describe('ConcurrencyLimiter', () => {
  it('runs at most its limit at once, in order, and lets an aborted waiter go', async () => {
    const limiter = new ConcurrencyLimiter(1)
    const order: string[] = []
    let release = () => {}
    const first = limiter.run(
      () =>
        new Promise<void>((resolve) => {
          order.push('first')
          release = resolve
        }),
    )
    const controller = new AbortController()
    const aborted = limiter.run(async () => order.push('aborted'), controller.signal)
    const third = limiter.run(async () => order.push('third'))
    controller.abort(new Error('gone'))
    await expect(aborted).rejects.toThrow('gone')
    expect(order).toEqual(['first'])
    release()
    await Promise.all([first, third])
    expect(order).toEqual(['first', 'third'])
    // The slot is free again: a failing task releases it too.
    await expect(limiter.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom')
    await expect(limiter.run(async () => 'ok')).resolves.toBe('ok')
  })
})
