import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { makeTone } from '@transcodekit/core/testing'
import type { FastifyInstance } from 'fastify'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createServices, loadConfig, type Services } from '../src/config.ts'
import { buildServer } from '../src/server-app.ts'

interface LogLine {
  level: number
  msg: string
  req?: { url: string }
  res?: { statusCode: number }
}

const DEBUG = 20
const INFO = 30

describe('request log lines of the server', () => {
  let dir: string
  let wav: Buffer
  let app: FastifyInstance | null = null
  let services: Services | null = null

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'transcodekit-request-logging-'))
    wav = await readFile(await makeTone(join(dir, 'tone.wav'), { seconds: 1, format: 'wav' }))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })
  afterEach(async () => {
    await app?.close()
    await services?.close()
    app = null
    services = null
  })

  /** A server logging at `level` into the returned array, with one job made. */
  async function start(level: 'info' | 'debug') {
    const lines: LogLine[] = []
    const stream = new Writable({
      write(chunk, _encoding, done) {
        for (const text of String(chunk).split('\n')) if (text) lines.push(JSON.parse(text))
        done()
      },
    })
    const config = loadConfig({
      DATA_DIR: join(dir, `data-${level}`),
      DATABASE_URL: 'memory://',
      WORKER: 'false',
    })
    services = await createServices(config)
    app = await buildServer(config, services, { logger: { level, stream } })
    const boundary = '----transcodekitlogging'
    const made = await app.inject({
      method: 'POST',
      url: '/api/uploads',
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      payload: Buffer.concat([
        Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="presets"\r\n\r\nmp3\r\n` +
            `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="tone.wav"\r\n` +
            'Content-Type: audio/wav\r\n\r\n',
        ),
        wav,
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ]),
    })
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
      expect((await app!.inject({ url })).statusCode, url).toBe(200)
    }
    expect((await app!.inject({ url: '/config.json' })).statusCode).toBe(200)
    // Only the page's config request shows at info: the reads left no line.
    expect(lines.map((line) => [line.msg, line.req?.url ?? line.res?.statusCode])).toEqual([
      ['incoming request', '/config.json'],
      ['request completed', 200],
    ])
    // A refused read is still told at info, by the plugin's error handler.
    lines.length = 0
    const missing = '/api/jobs/00000000-0000-4000-8000-000000000000'
    expect((await app!.inject({ url: missing })).statusCode).toBe(404)
    expect(lines).toEqual([
      expect.objectContaining({ level: INFO, code: 'TRANSCODEKIT_NOT_FOUND' }),
    ])
  })

  it('shows the polled reads at debug level', async () => {
    const { lines, jobId } = await start('debug')
    lines.length = 0
    const url = `/api/jobs/${jobId}`
    expect((await app!.inject({ url })).statusCode).toBe(200)
    const logged = requestLines(lines, url)
    expect(logged.map((line) => [line.level, line.msg])).toEqual([
      [DEBUG, 'incoming request'],
      [DEBUG, 'request completed'],
    ])
    expect(logged[1]!.res?.statusCode).toBe(200)
  })
})
