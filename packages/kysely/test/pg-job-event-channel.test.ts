import type { JobChangeNotice, JobEventChannel, Logger } from '@transcodekit/core'
import { afterEach, describe, expect, it } from 'vitest'
import { pgJobEventChannel } from '../src/index.ts'
import { DATABASE_URL, randomSchema, serverQuery, waitFor } from './support/test-databases.ts'

function recordingLogger() {
  const entries: Array<{ level: string; fields: unknown; message?: string }> = []
  const at =
    (level: string) =>
    (fields: unknown, message?: string): void => {
      entries.push({ level, fields, message })
    }
  const logger = { info: at('info'), warn: at('warn'), error: at('error') } as Logger
  return { logger, entries }
}

describe('pgJobEventChannel on PostgreSQL', () => {
  const opened: JobEventChannel[] = []
  const open = (channel: string, logger?: Logger) => {
    const made = pgJobEventChannel({
      connectionString: DATABASE_URL,
      channel,
      logger,
      reconnectMinMs: 20,
      reconnectMaxMs: 200,
    })
    opened.push(made)
    return made
  }
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((channel) => channel.close()))
  })

  it('delivers a notice published by one connection to the listeners of another', async () => {
    const name = randomSchema('tk_ch')
    const sender = open(name)
    const receiver = open(name)
    await Promise.all([sender.ready?.(), receiver.ready?.()])
    const received: JobChangeNotice[] = []
    receiver.subscribe((notice) => received.push(notice))
    const notice = { jobId: 'job-1', state: 'progressing', progress: 42.5, origin: 'p1' } as const
    await sender.publish(notice)
    await waitFor(
      async () => received.length,
      (n) => n > 0,
      { timeoutMs: 5000, what: 'the notice' },
    )
    expect(received).toEqual([notice])
  })

  it('ignores notices of another channel and malformed payloads, with a warning', async () => {
    const name = randomSchema('tk_ch')
    const { logger, entries } = recordingLogger()
    const receiver = open(name, logger)
    const other = open(randomSchema('tk_ch'))
    await Promise.all([receiver.ready?.(), other.ready?.()])
    const received: JobChangeNotice[] = []
    receiver.subscribe((notice) => received.push(notice))
    await other.publish({ jobId: 'elsewhere', state: 'complete', progress: 100, origin: 'x' })
    await serverQuery('SELECT pg_notify($1, $2)', [name, '{"not":"a notice"}'])
    await serverQuery('SELECT pg_notify($1, $2)', [name, '["job", "exploded", 1, "x"]'])
    await serverQuery('SELECT pg_notify($1, $2)', [name, '["job-2", "complete", 100, "x"]'])
    await waitFor(
      async () => received.length,
      (n) => n > 0,
      { timeoutMs: 5000, what: 'the valid notice' },
    )
    // NOTIFYs are delivered in order: the two bad ones came (and were dropped) first.
    expect(received.map((n) => n.jobId)).toEqual(['job-2'])
    expect(entries.filter((e) => e.message?.includes('malformed'))).toHaveLength(2)
  })

  it('reconnects after its connection is killed, logging it, and delivers again', async () => {
    const name = randomSchema('tk_ch')
    const { logger, entries } = recordingLogger()
    const receiver = open(name, logger)
    const sender = open(name)
    await Promise.all([receiver.ready?.(), sender.ready?.()])
    const killed = await serverQuery(
      'SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE query = $1',
      [`LISTEN "${name}"`],
    )
    // Both channels listen (the sender too): both lose their connection.
    expect(killed).toEqual([{ done: true }, { done: true }])
    const received: JobChangeNotice[] = []
    receiver.subscribe((notice) => received.push(notice))
    // Publish until one arrives: the ones sent before the listener is back are lost (the
    // watchers' poll covers that gap), the next ones are delivered.
    await waitFor(
      async () => {
        await sender.publish({ jobId: 'after', state: 'complete', progress: 100, origin: 's' })
        return received.length
      },
      (n) => n > 0,
      { timeoutMs: 10_000, what: 'a notice after the reconnect' },
    )
    expect(entries.some((e) => e.level === 'warn' && e.message?.includes('reconnecting'))).toBe(
      true,
    )
    expect(entries.some((e) => e.level === 'info' && e.message?.includes('back'))).toBe(true)
  })

  it('refuses a channel name that is not a plain identifier', () => {
    expect(() =>
      pgJobEventChannel({ connectionString: DATABASE_URL, channel: 'jobs"; DROP TABLE x; --' }),
    ).toThrow(/option "channel"/)
  })
})
