import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { injectedServer } from './server-process.ts'

interface LogLine {
  level: number
  msg: string
  req?: { url: string }
  res?: { statusCode: number }
}

const DEBUG = 20
const INFO = 30

describe('request log lines of the server', () => {
  const server = injectedServer('wav')

  /** A server logging at `level` into the returned array, with one job made. */
  async function start(level: 'info' | 'debug') {
    const lines: LogLine[] = []
    const stream = new Writable({
      write(chunk, _encoding, done) {
        for (const text of String(chunk).split('\n')) if (text) lines.push(JSON.parse(text))
        done()
      },
    })
    await server.start({ WORKER: 'false' }, { level, stream })
    const made = await server.upload('mp3')
    expect(made.statusCode).toBe(201)
    const { job } = made.json() as { job: { id: string } }
    return { lines, jobId: job.id }
  }

  /** The request lines (incoming, completed) logged for `url`. */
  function requestLines(lines: LogLine[], url: string): LogLine[] {
    const ids = new Set(
      lines
        .filter((line) => line.msg === 'incoming request' && line.req?.url === url)
        .map((line) => (line as { reqId?: string }).reqId),
    )
    return lines.filter(
      (line) =>
        (line.msg === 'incoming request' || line.msg === 'request completed') &&
        ids.has((line as { reqId?: string }).reqId),
    )
  }

  it('logs the polled reads at debug, and every other request at info', async () => {
    const { lines, jobId } = await start('info')
    // The upload was logged as Fastify logs requests.
    expect(requestLines(lines, '/api/uploads').map((line) => line.level)).toEqual([INFO, INFO])
    lines.length = 0
    for (const url of [`/api/jobs/${jobId}`, '/api/jobs', '/api/assets', '/api/presets']) {
      expect((await server.app.inject({ url })).statusCode, url).toBe(200)
    }
    expect((await server.app.inject({ url: '/config.json' })).statusCode).toBe(200)
    // Only the page's config request shows at info: the reads left no line.
    expect(lines.map((line) => [line.msg, line.req?.url ?? line.res?.statusCode])).toEqual([
      ['incoming request', '/config.json'],
      ['request completed', 200],
    ])
    // A refused read is still told at info, by the plugin's error handler.
    lines.length = 0
    const missing = '/api/jobs/00000000-0000-4000-8000-000000000000'
    expect((await server.app.inject({ url: missing })).statusCode).toBe(404)
    expect(lines).toEqual([
      expect.objectContaining({ level: INFO, code: 'TRANSCODEKIT_NOT_FOUND' }),
    ])
  })

  it('shows the polled reads at debug level', async () => {
    const { lines, jobId } = await start('debug')
    lines.length = 0
    const url = `/api/jobs/${jobId}`
    expect((await server.app.inject({ url })).statusCode).toBe(200)
    const logged = requestLines(lines, url)
    expect(logged.map((line) => [line.level, line.msg])).toEqual([
      [DEBUG, 'incoming request'],
      [DEBUG, 'request completed'],
    ])
    expect(logged[1]!.res?.statusCode).toBe(200)
  })
})
