import { describe, expect, it } from 'vitest'
import { resolvePluginOptions } from '../src/plugin-options.ts'
import { RetryTasks } from '../src/retry-tasks.ts'

class Permanent extends Error {
  readonly code = 'UNSUPPORTED_MEDIA'
}

describe('RetryTasks', () => {
  it('logs an onFailure that fails itself, with the task and both errors, and goes on', async () => {
    const logged: Array<{ fields: Record<string, unknown>; message?: string }> = []
    const record = (fields: Record<string, unknown> | string, message?: string) => {
      if (typeof fields !== 'string') logged.push({ fields, message })
    }
    const tasks = new RetryTasks({
      isPermanent: () => true,
      logger: { info: record, warn: record, error: record },
      onFailure: async () => {
        throw new Error('the database is gone too')
      },
    })
    tasks.run('create:7', async () => {
      throw new Permanent('not media')
    })
    await tasks.idle()
    expect(logged).toEqual([
      {
        fields: { key: 'create:7', error: 'not media', failure: 'the database is gone too' },
        message: 'transcodekit: a task failed, and so did recording its failure',
      },
    ])
    let ran = false
    tasks.run('create:8', async () => {
      ran = true
    })
    await tasks.idle()
    expect(ran).toBe(true)
  })

  it('retries a failing task with growing delays until it succeeds', async () => {
    const retries: Array<{ attempt: number; delayMs: number }> = []
    const tasks = new RetryTasks({
      initialDelayMs: 10,
      maxDelayMs: 40,
      onRetry: (_key, _error, attempt, delayMs) => retries.push({ attempt, delayMs }),
    })
    let calls = 0
    tasks.run('a', async () => {
      calls++
      if (calls < 4) throw new Error('down')
    })
    await tasks.idle()
    expect(calls).toBe(4)
    expect(retries.map((r) => r.attempt)).toEqual([1, 2, 3])
    // Each delay lies in [ceiling/2, ceiling] with ceiling = min(40, 10·2^(attempt-1)).
    const ceilings = [10, 20, 40]
    retries.forEach((r, i) => {
      expect(r.delayMs).toBeGreaterThanOrEqual(ceilings[i]! / 2)
      expect(r.delayMs).toBeLessThanOrEqual(ceilings[i]!)
    })
    expect(tasks.has('a')).toBe(false)
  })

  it('stops at once on a permanent error, and after maxAttempts on a transient one', async () => {
    const failures: Array<[string, number]> = []
    const tasks = new RetryTasks({
      initialDelayMs: 1,
      maxAttempts: 3,
      isPermanent: (error) => error instanceof Permanent,
      onFailure: (key, _error, attempts) => {
        failures.push([key, attempts])
      },
    })
    let permanentCalls = 0
    let transientCalls = 0
    tasks.run('permanent', async () => {
      permanentCalls++
      throw new Permanent('not media')
    })
    tasks.run('transient', async () => {
      transientCalls++
      throw new Error('down')
    })
    await tasks.idle()
    expect(permanentCalls).toBe(1)
    expect(transientCalls).toBe(3)
    expect(failures.sort()).toEqual([
      ['permanent', 1],
      ['transient', 3],
    ])
  })

  it('runs one task per key, and a canceled task stops waiting for its next attempt', async () => {
    const tasks = new RetryTasks({ initialDelayMs: 60_000 })
    let calls = 0
    expect(
      tasks.run('k', async () => {
        calls++
        throw new Error('down')
      }),
    ).toBe(true)
    expect(tasks.run('k', async () => {})).toBe(false)
    await new Promise((r) => setImmediate(r))
    expect(tasks.has('k')).toBe(true)
    await tasks.cancel('k')
    expect(tasks.has('k')).toBe(false)
    expect(calls).toBe(1)
  })

  it('runs at most `concurrency` limited tasks at once', async () => {
    const tasks = new RetryTasks({ concurrency: 2 })
    let running = 0
    let peak = 0
    for (let i = 0; i < 6; i++) {
      tasks.run(
        `t${i}`,
        async () => {
          running++
          peak = Math.max(peak, running)
          await new Promise((r) => setTimeout(r, 5))
          running--
        },
        { limited: true },
      )
    }
    await tasks.idle()
    expect(peak).toBe(2)
  })

  it('accepts nothing after close, and close aborts what is waiting', async () => {
    const tasks = new RetryTasks({ initialDelayMs: 60_000 })
    tasks.run('k', async () => {
      throw new Error('down')
    })
    await tasks.close()
    expect(tasks.has('k')).toBe(false)
    expect(tasks.run('later', async () => {})).toBe(false)
  })
})

describe('resolvePluginOptions (the config validator Strapi runs at start)', () => {
  it('fills the defaults', () => {
    const options = resolvePluginOptions({})
    expect(options.rules.map((r) => r.mime)).toEqual(['audio/*', 'video/*'])
    expect(options.transcoder).toEqual({
      dataDir: null,
      publicUrl: '/uploads/transcodekit/',
      databaseUrl: null,
      worker: true,
      concurrency: 1,
      s3: null,
    })
    expect(options.keyPrefix).toBe('strapi:file:')
    expect(options.retry).toEqual({ initialDelayMs: 1000, maxDelayMs: 60_000, maxAttempts: 30 })
  })

  it('names the option that is wrong', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ rule: [] }, /unknown option "rule"/],
      [{ rules: [{ mime: 'audio', presets: ['wav'] }] }, /transcodekit\.rules\[0\]\.mime/],
      [{ transcoder: { databaseUrl: 'mysql://x' } }, /transcodekit\.transcoder\.databaseUrl/],
      [{ transcoder: { publicUrl: '/files' } }, /transcodekit\.transcoder\.publicUrl/],
      [{ retry: { maxAttempts: 0 } }, /transcodekit\.retry\.maxAttempts/],
      [{ concurrency: 1.5 }, /transcodekit\.concurrency/],
      [{ transcoder: { s3: { bucket: 'b' } } }, /transcodekit\.transcoder\.s3\.bucket/],
      [
        { transcoder: { s3: { bucket: 'media', prefix: 'tk' } } },
        /transcodekit\.transcoder\.s3\.prefix/,
      ],
      [{ service: { nope: true } }, /transcodekit\.service/],
    ]
    for (const [input, message] of cases) {
      expect(() => resolvePluginOptions(input), JSON.stringify(input)).toThrowError(message)
    }
  })
})
