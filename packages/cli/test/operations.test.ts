import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { openDatabase } from '@transcodekit/kysely'
import { sql } from 'kysely'
import { afterAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../src/config.ts'
import { injectedServer } from './server-process.ts'

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const METRICS_TOKEN = 'metrics-token-0123456789abcdef'
const API_KEYS = 'alice-key-0123456789abcdef0123:alice'

const server = injectedServer('mp3')
const schemas: string[] = []

afterAll(async () => {
  if (schemas.length === 0) return
  const { db, close } = await openDatabase({ url: DATABASE_URL, maxConnections: 1 })
  for (const schema of schemas) {
    await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db)
  }
  await close()
})

/** The value of one sample of a Prometheus text exposition, or `undefined`. */
function sample(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!match || match[1] !== name) continue
    const found = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    )
    if (Object.entries(labels).every(([key, value]) => found[key] === value)) {
      return Number(match[3])
    }
  }
  return undefined
}

async function until<T>(read: () => Promise<T | null | undefined | false>, what: string) {
  const deadline = Date.now() + 60_000
  for (;;) {
    const value = await read()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

describe('/healthz and /readyz', () => {
  it('answer 200 when everything answers, and are not in the OpenAPI document', async () => {
    await server.start({})
    const health = await server.app.inject({ url: '/healthz' })
    expect(health.statusCode).toBe(200)
    expect(health.json()).toEqual({ status: 'ok' })
    const ready = await server.app.inject({ url: '/readyz' })
    expect(ready.statusCode).toBe(200)
    expect(ready.json()).toEqual({
      status: 'ready',
      checks: { database: 'ok', storage: 'ok', ffprobe: 'ok', ffmpeg: 'ok' },
    })
    const paths = Object.keys((await server.app.inject({ url: '/openapi.json' })).json().paths)
    expect(paths.some((path) => /healthz|readyz|metrics/.test(path))).toBe(false)
    expect(paths).toContain('/api/jobs/{id}')
  })

  it('/readyz answers 503 naming the check that failed (an ffmpeg that is not there)', async () => {
    await server.start({ FFMPEG_PATH: join(server.dir, 'no-such-ffmpeg') })
    const ready = await server.app.inject({ url: '/readyz' })
    expect(ready.statusCode).toBe(503)
    expect(ready.json()).toMatchObject({
      code: 'TRANSCODEKIT_NOT_READY',
      checks: { database: 'ok', storage: 'ok', ffprobe: 'ok', ffmpeg: 'failed' },
    })
    expect(ready.json().message).toContain('ffmpeg')
    // Liveness is the process, not its dependencies.
    expect((await server.app.inject({ url: '/healthz' })).statusCode).toBe(200)
  })

  it('/readyz answers 503 while PostgreSQL is unreachable and 200 once it is back', async () => {
    const proxy = await tcpProxy(new URL(DATABASE_URL))
    try {
      const schema = `ops_${randomBytes(4).toString('hex')}`
      schemas.push(schema, `${schema}_boss`)
      const url = new URL(DATABASE_URL)
      url.host = `127.0.0.1:${proxy.port}`
      await server.start({
        DATABASE_URL: url.toString(),
        DATABASE_SCHEMA: schema,
        QUEUE_SCHEMA: `${schema}_boss`,
        WORKER: 'false',
      })
      expect((await server.app.inject({ url: '/readyz' })).statusCode).toBe(200)

      await proxy.stop()
      const down = await until(async () => {
        const answer = await server.app.inject({ url: '/readyz' })
        return answer.statusCode === 503 ? answer : null
      }, '503 while the database is down')
      expect(down.json().checks).toMatchObject({ storage: 'ok' })
      expect(['failed', 'timeout']).toContain(down.json().checks.database)

      await proxy.resume()
      await until(
        async () => (await server.app.inject({ url: '/readyz' })).statusCode === 200,
        '200 once the database is back',
      )
    } finally {
      await proxy.stop()
    }
  })
})

describe('/metrics', () => {
  it('shows the counters one job moved: jobs by state, ended, duration, bytes, queue', async () => {
    await server.start({})
    const made = await server.upload('wav')
    expect(made.statusCode).toBe(201)
    const { asset, job } = made.json()
    await until(async () => {
      const current = (await server.app.inject({ url: `/api/jobs/${job.id}` })).json()
      return current.state === 'complete' ? current : null
    }, 'the job to complete')
    const scrape = await server.app.inject({ url: '/metrics' })
    expect(scrape.statusCode).toBe(200)
    expect(scrape.headers['content-type']).toContain('text/plain')
    const text = scrape.body
    expect(sample(text, 'transcodekit_jobs', { state: 'complete' })).toBe(1)
    expect(sample(text, 'transcodekit_jobs', { state: 'submitted' })).toBe(0)
    expect(
      sample(text, 'transcodekit_jobs_ended_total', { engine: 'ffmpeg', state: 'complete' }),
    ).toBe(1)
    expect(
      sample(text, 'transcodekit_job_duration_seconds_count', { engine: 'ffmpeg', preset: 'wav' }),
    ).toBe(1)
    expect(sample(text, 'transcodekit_uploaded_bytes_total')).toBe(asset.size)
    expect(sample(text, 'transcodekit_queue_messages', { status: 'waiting' })).toBe(0)
    expect(sample(text, 'transcodekit_webhook_deliveries_total', { outcome: 'delivered' })).toBe(0)
    expect(sample(text, 'transcodekit_ffmpeg_failures_total')).toBeUndefined()

    // What other parts report through the recorder shows up at the next scrape.
    server.services.metrics.recorder.webhookDelivery('delivered')
    const again = (await server.app.inject({ url: '/metrics' })).body
    expect(sample(again, 'transcodekit_webhook_deliveries_total', { outcome: 'delivered' })).toBe(1)
  })

  it('labels every custom preset `custom`: the series stay as many as the catalog', async () => {
    await server.start({})
    const { service } = server.services
    const custom = { ...service.presets.resolve('wav'), id: 'et-1351620000001-000123' }
    const { job } = await service.ingestAndTranscode(
      createReadStream(join(server.dir, 'tone.mp3')),
      { filename: 'tone.mp3', presets: [custom.id], customPresets: [custom] },
    )
    await until(async () => {
      const current = await service.getJob(job.id)
      return current.state === 'complete' ? current : null
    }, 'the job to complete')
    const text = (await server.app.inject({ url: '/metrics' })).body
    expect(
      sample(text, 'transcodekit_job_duration_seconds_count', {
        engine: 'ffmpeg',
        preset: 'custom',
      }),
    ).toBe(1)
    expect(text).not.toContain(custom.id)
  })

  it('counts an ffmpeg failure by its error code', async () => {
    await server.start({ FFMPEG_MAX_OUTPUT_BYTES: '1000' })
    const { job } = (await server.upload('wav')).json()
    const ended = await until(async () => {
      const current = (await server.app.inject({ url: `/api/jobs/${job.id}` })).json()
      return current.state === 'error' ? current : null
    }, 'the job to fail')
    const text = (await server.app.inject({ url: '/metrics' })).body
    expect(sample(text, 'transcodekit_ffmpeg_failures_total', { code: ended.errorCode })).toBe(1)
    expect(
      sample(text, 'transcodekit_jobs_ended_total', { engine: 'ffmpeg', state: 'error' }),
    ).toBe(1)
  })

  it('counts webhook deliveries by outcome: one per attempt of each event sent', async () => {
    const hits: string[] = []
    const receiver = createHttpServer((request, response) => {
      hits.push(String(request.headers['webhook-id']))
      request.resume()
      response.writeHead(204).end()
    })
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = receiver.address() as { port: number }
      await server.start({
        WEBHOOK_URL: `http://127.0.0.1:${port}/hook`,
        WEBHOOK_SECRET: `whsec_${randomBytes(32).toString('base64')}`,
        WEBHOOK_ALLOW_PRIVATE: 'true',
      })
      const { job } = (await server.upload('wav')).json()
      await until(async () => {
        const current = (await server.app.inject({ url: `/api/jobs/${job.id}` })).json()
        return current.state === 'complete' ? current : null
      }, 'the job to complete')
      // asset.created, job.submitted, job.progressing, job.complete: each delivered once.
      const text = await until(async () => {
        const body = (await server.app.inject({ url: '/metrics' })).body
        const delivered = sample(body, 'transcodekit_webhook_deliveries_total', {
          outcome: 'delivered',
        })
        return delivered !== undefined && delivered >= 4 && delivered === hits.length ? body : null
      }, 'the deliveries to be counted')
      expect(sample(text, 'transcodekit_webhook_deliveries_total', { outcome: 'failed' })).toBe(0)
      expect(sample(text, 'transcodekit_webhook_deliveries_total', { outcome: 'retrying' })).toBe(0)
    } finally {
      await new Promise((resolve) => receiver.close(resolve))
    }
  })

  it('with API_KEYS and no METRICS_TOKEN: not served (an owner is not an operator)', async () => {
    await server.start({ API_KEYS })
    expect((await server.app.inject({ url: '/metrics' })).statusCode).toBe(404)
  })

  it('with METRICS_TOKEN: only with that bearer token, whatever API_KEYS says', async () => {
    await server.start({ API_KEYS, METRICS_TOKEN })
    for (const authorization of [
      undefined,
      'Bearer wrong-token-0123456789',
      `Basic ${METRICS_TOKEN}`,
    ]) {
      const refused = await server.app.inject({
        url: '/metrics',
        headers: authorization ? { authorization } : {},
      })
      expect(refused.statusCode).toBe(401)
      expect(refused.json().code).toBe('TRANSCODEKIT_UNAUTHENTICATED')
      expect(refused.headers['www-authenticate']).toContain('Bearer')
    }
    // An owner's API key is not the metrics token.
    const owner = await server.app.inject({
      url: '/metrics',
      headers: { authorization: `Bearer ${API_KEYS.split(':')[0]}` },
    })
    expect(owner.statusCode).toBe(401)
    const allowed = await server.app.inject({
      url: '/metrics',
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    })
    expect(allowed.statusCode).toBe(200)
    expect(allowed.body).toContain('transcodekit_jobs')
  })

  it('refuses a METRICS_TOKEN shorter than 16 bytes at start', () => {
    expect(() => loadConfig({ DATA_DIR: server.dir, METRICS_TOKEN: 'short' })).toThrow(
      /METRICS_TOKEN/,
    )
  })
})

/**
 * A TCP relay to PostgreSQL that the test can cut (its listener closed and every connection
 * destroyed: to the app, the server is gone) and bring back on the same port.
 */
async function tcpProxy(target: URL) {
  const sockets = new Set<Socket>()
  let server: Server | null = null
  let port = 0
  const listen = async () => {
    const made = createServer((client) => {
      const upstream = connect(Number(target.port || 5432), target.hostname)
      for (const socket of [client, upstream]) {
        sockets.add(socket)
        socket.on('close', () => sockets.delete(socket))
        socket.on('error', () => socket.destroy())
      }
      client.pipe(upstream).pipe(client)
    })
    await new Promise<void>((resolve) => made.listen(port, '127.0.0.1', resolve))
    port = (made.address() as { port: number }).port
    server = made
  }
  await listen()
  return {
    get port() {
      return port
    },
    async stop() {
      const closing = server
      server = null
      for (const socket of sockets) socket.destroy()
      if (closing) await new Promise((resolve) => closing.close(resolve))
    },
    resume: listen,
  }
}
