import { randomBytes } from 'node:crypto'
import { openAsBlob } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  makeTone,
  openEventStream,
  type SseEvent,
  type SseStream,
} from '@transcodekit/core/testing'
import { openDatabase } from '@transcodekit/kysely'
import { sql } from 'kysely'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  type RunningProcess,
  type RunningServer,
  startServer,
  startWorker,
} from './server-process.ts'

/**
 * An API process (WORKER=false) and a `transcodekit worker` process on the PostgreSQL server:
 * the API's event stream shows what the worker does, through LISTEN/NOTIFY, within a second.
 */
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

let dir: string
let mp3: string
const running: RunningProcess[] = []
const streams: SseStream[] = []
const schemas: string[] = []

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'transcodekit-live-'))
  // Long enough for ffmpeg to report progress several times.
  mp3 = await makeTone(join(dir, 'tone.mp3'), { seconds: 90, format: 'mp3' })
})
afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close()
  for (const child of running.splice(0)) await child.stop('SIGKILL')
})
afterAll(async () => {
  const { db, close } = await openDatabase({ url: DATABASE_URL, maxConnections: 1 })
  for (const schema of schemas)
    await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db)
  await close()
  await rm(dir, { recursive: true, force: true })
})

function isolated(): Record<string, string> {
  const name = `live_${randomBytes(4).toString('hex')}`
  schemas.push(name, `${name}_boss`)
  return {
    DATA_DIR: join(dir, name),
    DATABASE_URL,
    DATABASE_SCHEMA: name,
    QUEUE_SCHEMA: `${name}_boss`,
  }
}

interface Received {
  event: SseEvent
  job: { id: string; state: string; progress: number; updatedAt: string }
  /** Milliseconds from the change (the row's `updatedAt`) to its arrival here. */
  lagMs: number
}

async function receive(stream: SseStream): Promise<Received | null> {
  const event = await stream.next()
  if (!event) return null
  const job = JSON.parse(event.data)
  return { event, job, lagMs: Date.now() - Date.parse(job.updatedAt) }
}

describe('live job events across processes', () => {
  it("the API's event stream shows a separate worker's progress and end within a second, and resumes with Last-Event-ID", async () => {
    const env = isolated()
    // The streams' own re-read is a minute away: only the notices can make the second.
    const server = (await startServer({
      ...env,
      WORKER: 'false',
      EVENTS_POLL_MS: '60000',
    })) as RunningServer
    running.push(server)
    const worker = await startWorker(env)
    running.push(worker)

    const form = new FormData()
    form.append('presets', 'flac')
    form.append('presets', 'm4a')
    form.append('file', await openAsBlob(mp3, { type: 'audio/mpeg' }), 'tone.mp3')
    const created = await fetch(`${server.url}/api/uploads`, { method: 'POST', body: form })
    expect(created.status).toBe(201)
    const { job } = (await created.json()) as { job: { id: string } }
    const url = `${server.url}/api/jobs/${job.id}/events`

    const first = await openEventStream(url)
    streams.push(first)
    const received: Received[] = []
    // The first event is the job as it is; the next ones are the worker's changes.
    const snapshot = await receive(first)
    expect(snapshot).not.toBeNull()
    let resumedAt = -1
    let stream = first
    for (;;) {
      const next = await receive(stream)
      if (!next) break
      received.push(next)
      // Once the job progresses, drop the connection and come back as EventSource would.
      if (resumedAt === -1 && next.job.state === 'progressing' && next.job.progress > 0) {
        stream.close()
        stream = await openEventStream(url, { 'last-event-id': next.event.id! })
        streams.push(stream)
        expect(stream.response.statusCode).toBe(200)
        resumedAt = received.length
      }
    }
    const states = received.map((r) => r.job.state)
    expect(states.at(-1), JSON.stringify(received.map((r) => r.job))).toBe('complete')
    expect(received.some((r) => r.job.state === 'progressing' && r.job.progress < 100)).toBe(true)
    expect(resumedAt).toBeGreaterThan(0)
    // Nothing was sent twice: every event id is a new snapshot, also across the reconnect.
    const ids = [snapshot!.event.id, ...received.map((r) => r.event.id)]
    expect(new Set(ids).size).toBe(ids.length)
    // Progress never goes back, and the end arrived after the reconnect.
    const progress = received.map((r) => r.job.progress)
    expect(progress).toEqual([...progress].sort((a, b) => a - b))
    expect(received.length).toBeGreaterThan(resumedAt)
    // Each change arrived within a second of its write.
    const lags = received.map((r) => r.lagMs)
    expect(Math.max(...lags), `lags: ${lags.join(', ')}`).toBeLessThan(1000)

    // The API process ran nothing: the worker logged the job's end.
    expect(worker.output()).toMatch(new RegExp(`"jobId":"${job.id}","state":"complete"`))
  }, 180_000)

  it('on the embedded database (no NOTIFY between connections), the stream re-reads its job every 500 ms: progress and end still within a second', async () => {
    const env = { DATA_DIR: join(dir, `embedded_${randomBytes(4).toString('hex')}`) }
    const server = (await startServer({ ...env, WORKER: 'false' })) as RunningServer
    running.push(server)
    const worker = await startWorker(env)
    running.push(worker)
    const form = new FormData()
    form.append('presets', 'flac')
    form.append('file', await openAsBlob(mp3, { type: 'audio/mpeg' }), 'tone.mp3')
    const created = await fetch(`${server.url}/api/uploads`, { method: 'POST', body: form })
    expect(created.status).toBe(201)
    const { job } = (await created.json()) as { job: { id: string } }
    const stream = await openEventStream(`${server.url}/api/jobs/${job.id}/events`)
    streams.push(stream)
    await receive(stream)
    const received: Received[] = []
    for (let next = await receive(stream); next; next = await receive(stream)) received.push(next)
    expect(received.at(-1)?.job.state).toBe('complete')
    expect(received.some((r) => r.job.state === 'progressing' && r.job.progress < 100)).toBe(true)
    const lags = received.map((r) => r.lagMs)
    expect(Math.max(...lags), `lags: ${lags.join(', ')}`).toBeLessThan(1000)
  }, 180_000)
})
