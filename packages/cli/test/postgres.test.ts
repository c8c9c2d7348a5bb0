import { randomBytes } from 'node:crypto'
import { openAsBlob } from 'node:fs'
import { access, chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeTone } from '@transcodekit/core/testing'
import { openDatabase } from '@transcodekit/kysely'
import { sql } from 'kysely'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { followJob, type RunningProcess, startServer, startWorker } from './server-process.ts'

/**
 * The example on the PostgreSQL server (DATABASE_URL): an API-only server in front of a
 * `pnpm worker` process, and restarts that keep every asset and job. Each test has schemas of
 * its own (DATABASE_SCHEMA, QUEUE_SCHEMA), dropped afterwards. Then the same split on the
 * embedded database, which the server runs in a process of its own that workers attach to.
 */
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/**
 * The first line of a fake ffmpeg: it answers `-version` as ffmpeg does, since the engine runs
 * `<ffmpeg> -version` at start (to log which binaries run), and only then does its own thing.
 */
const ANSWERS_VERSION = 'if [ "$1" = -version ]; then echo "ffmpeg version 7.1-fake"; exit 0; fi\n'

let dir: string
let mp3: string
const running: RunningProcess[] = []
const schemas: string[] = []

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'transcodekit-example-pg-'))
  mp3 = await makeTone(join(dir, 'tone.mp3'), { seconds: 2, format: 'mp3' })
})
afterEach(async () => {
  for (const child of running.splice(0)) await child.stop('SIGKILL')
})
afterAll(async () => {
  const { db, close } = await openDatabase({ url: DATABASE_URL, maxConnections: 1 })
  for (const schema of schemas)
    await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db)
  await close()
  await rm(dir, { recursive: true, force: true })
})

/** Environment for one test: its own data folder and schemas on the shared server. */
function isolated(name: string): Record<string, string> {
  const suffix = randomBytes(4).toString('hex')
  const tables = `example_${name}_${suffix}`
  const queue = `example_${name}_${suffix}_boss`
  schemas.push(tables, queue)
  return {
    DATA_DIR: join(dir, name),
    DATABASE_URL,
    DATABASE_SCHEMA: tables,
    QUEUE_SCHEMA: queue,
  }
}

async function upload(baseUrl: string, presets: string[]) {
  const form = new FormData()
  for (const preset of presets) form.append('presets', preset)
  form.append('file', await openAsBlob(mp3, { type: 'audio/mpeg' }), 'tone.mp3')
  const created = await fetch(`${baseUrl}/api/uploads`, { method: 'POST', body: form })
  expect(created.status).toBe(201)
  return (await created.json()) as { asset: { id: string }; job: { id: string; state: string } }
}

async function expectDownloadable(
  baseUrl: string,
  outputs: Array<{ presetId: string; state: string; size: number | null; url: string | null }>,
  types: Record<string, string>,
) {
  expect(outputs.map((o) => o.presetId).sort()).toEqual(Object.keys(types).sort())
  for (const output of outputs) {
    expect(output.state).toBe('complete')
    const response = await fetch(`${baseUrl}${output.url}`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe(types[output.presetId])
    const bytes = await response.arrayBuffer()
    expect(bytes.byteLength).toBeGreaterThan(1000)
    expect(bytes.byteLength).toBe(output.size)
  }
}

const started = async (promise: Promise<RunningProcess & { url?: string }>) => {
  const child = await promise
  running.push(child)
  return child
}

describe('the example server on PostgreSQL', () => {
  it('with WORKER=false, hands uploads to a separate `pnpm worker` process that runs them', async () => {
    const env = isolated('scale')
    // The API process gets an "ffmpeg" that only records being called: it must never be.
    const spy = join(dir, 'ffmpeg-spy.sh')
    const called = join(dir, 'ffmpeg-called')
    // (`-version` answers: the engine asks every binary its version at start, and logs it.)
    await writeFile(spy, `#!/bin/sh\n${ANSWERS_VERSION}echo "$@" >> '${called}'\nexit 1\n`)
    await chmod(spy, 0o755)
    const server = (await started(
      startServer({ ...env, WORKER: 'false', FFMPEG_PATH: spy }),
    )) as RunningProcess & { url: string }

    const { asset, job } = await upload(server.url, ['wav', 'flac'])
    expect(job.state).toBe('submitted')
    // No worker yet: the job waits in the queue.
    const waiting = await (await fetch(`${server.url}/api/jobs/${job.id}`)).json()
    expect(waiting.state).toBe('submitted')

    const worker = await started(startWorker({ ...env, FFMPEG_PATH: '' }))
    // Followed through the server, which sees the worker's progress in the database.
    const done = await followJob(server.url, job.id)
    expect(done.state, done.errorMessage ?? '').toBe('complete')
    await expectDownloadable(server.url, done.outputs, {
      wav: 'audio/wav',
      flac: 'audio/flac',
    })
    const assets = await (await fetch(`${server.url}/api/assets`)).json()
    expect(assets.items.map((a: { id: string }) => a.id)).toEqual([asset.id])
    await expect(access(called)).rejects.toThrow(/ENOENT/)
    // The worker ran it.
    expect(worker.output()).toMatch(
      new RegExp(`"jobId":"${job.id}","state":"complete","msg":"job ended"`),
    )

    expect(await worker.stop('SIGTERM'), worker.output().slice(-2000)).toBe(0)
    expect(worker.output()).toContain('shutting down')
    expect(await server.stop('SIGTERM'), server.output().slice(-2000)).toBe(0)
  }, 180_000)

  it('a worker stopped by SIGTERM mid-job leaves the job to the next worker, and its ffmpeg stopped', async () => {
    const env = isolated('handoff')
    // The first worker's "ffmpeg" writes its pid, then hangs: a transcode still running.
    const hung = join(dir, 'ffmpeg-hangs.sh')
    const pidFile = join(dir, 'hung-ffmpeg.pid')
    await writeFile(hung, `#!/bin/sh\n${ANSWERS_VERSION}echo $$ > '${pidFile}'\nexec sleep 120\n`)
    await chmod(hung, 0o755)
    const server = (await started(startServer({ ...env, WORKER: 'false' }))) as RunningProcess & {
      url: string
    }
    const first = await started(startWorker({ ...env, FFMPEG_PATH: hung }))
    const { job } = await upload(server.url, ['wav'])

    const deadline = Date.now() + 30_000
    let pid = 0
    while (pid === 0 && Date.now() < deadline) {
      pid = Number(await readFile(pidFile, 'utf8').catch(() => '0')) || 0
      if (pid === 0) await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(pid, 'the first worker started ffmpeg').toBeGreaterThan(0)
    expect(await first.stop('SIGTERM'), first.output().slice(-2000)).toBe(0)
    // Its ffmpeg did not outlive it, and the job was left unfinished, not failed.
    // (Gone, or at most a zombie waiting for whoever reaps orphans in this container.)
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null)
    expect(stat === null || / Z /.test(stat), `ffmpeg ${pid} still running: ${stat}`).toBe(true)
    const left = await (await fetch(`${server.url}/api/jobs/${job.id}`)).json()
    expect(['submitted', 'progressing']).toContain(left.state)

    const second = await started(startWorker({ ...env, FFMPEG_PATH: '' }))
    const done = await followJob(server.url, job.id, 90_000)
    expect(done.state, done.errorMessage ?? '').toBe('complete')
    await expectDownloadable(server.url, done.outputs, { wav: 'audio/wav' })
    expect(second.output()).toContain(`"jobId":"${job.id}","state":"complete"`)
    expect(await second.stop('SIGTERM')).toBe(0)
    expect(await server.stop('SIGTERM')).toBe(0)
  }, 180_000)

  it('keeps every asset and job across restarts; completed outputs stay downloadable', async () => {
    const env = isolated('restart')
    // 1. A server with its worker: the first upload completes.
    let server = (await started(startServer(env))) as RunningProcess & { url: string }
    const first = await upload(server.url, ['wav'])
    const firstDone = await followJob(server.url, first.job.id)
    expect(firstDone.state, firstDone.errorMessage ?? '').toBe('complete')
    expect(await server.stop('SIGTERM')).toBe(0)

    // 2. An API-only server: the second upload is queued, then the server stops.
    server = (await started(startServer({ ...env, WORKER: 'false' }))) as RunningProcess & {
      url: string
    }
    const second = await upload(server.url, ['flac'])
    expect(await server.stop('SIGTERM')).toBe(0)

    // 3. The next start has both assets and jobs; the queued job runs, the done one is intact.
    server = (await started(startServer(env))) as RunningProcess & { url: string }
    const assets = await (await fetch(`${server.url}/api/assets`)).json()
    expect(assets.items.map((a: { id: string }) => a.id)).toEqual([second.asset.id, first.asset.id])
    const firstAfter = await (await fetch(`${server.url}/api/jobs/${first.job.id}`)).json()
    expect(firstAfter.state).toBe('complete')
    // The same outputs; their signed URLs may carry a later expiry.
    const unsigned = (outputs: Array<Record<string, unknown>>) =>
      outputs.map(({ url: _url, downloadUrl: _downloadUrl, ...output }) => output)
    expect(unsigned(firstAfter.outputs)).toEqual(unsigned(firstDone.outputs))
    await expectDownloadable(server.url, firstAfter.outputs, { wav: 'audio/wav' })
    // A link handed out before the restarts still works: the secret is kept in DATA_DIR.
    const before = await fetch(`${server.url}${firstDone.outputs[0].url}`)
    expect(before.status).toBe(200)
    await before.arrayBuffer()
    const secondDone = await followJob(server.url, second.job.id)
    expect(secondDone.state, secondDone.errorMessage ?? '').toBe('complete')
    await expectDownloadable(server.url, secondDone.outputs, { flac: 'audio/flac' })
    const jobs = await (await fetch(`${server.url}/api/jobs`)).json()
    expect(jobs.items.map((j: { id: string }) => j.id).sort()).toEqual(
      [first.job.id, second.job.id].sort(),
    )
    expect(await server.stop('SIGTERM'), server.output().slice(-2000)).toBe(0)
  }, 240_000)
})

describe('the example server on its embedded database', () => {
  it('a worker attaches to the embedded database of the server on its DATA_DIR; a second server is refused', async () => {
    const env = { DATA_DIR: join(dir, 'embedded') }
    // No server on the folder yet: nothing to attach to.
    const alone = await startWorker(env, 20_000).catch((error: Error) => error)
    expect(alone).toBeInstanceOf(Error)
    expect((alone as Error).message).toContain('exited with 1')
    expect((alone as Error).message).toContain('no embedded database is running in')
    expect((alone as Error).message).toContain('start the server on this DATA_DIR first')

    const server = (await started(startServer({ ...env, WORKER: 'false' }))) as RunningProcess & {
      url: string
    }
    const { job } = await upload(server.url, ['flac'])
    const worker = await started(startWorker({ ...env, FFMPEG_PATH: '' }))
    const done = await followJob(server.url, job.id)
    expect(done.state, done.errorMessage ?? '').toBe('complete')
    await expectDownloadable(server.url, done.outputs, { flac: 'audio/flac' })
    expect(worker.output()).toContain(`"jobId":"${job.id}","state":"complete"`)

    // Two PGlite instances on one folder would corrupt it: the second server stops at start.
    const second = await startServer(env, 20_000).catch((error: Error) => error)
    expect(second).toBeInstanceOf(Error)
    expect((second as Error).message).toMatch(/in use by process \d+/)

    expect(await worker.stop('SIGTERM'), worker.output().slice(-2000)).toBe(0)
    expect(await server.stop('SIGTERM'), server.output().slice(-2000)).toBe(0)
    // The database process stopped with the server and gave the folder back.
    await expect(access(join(dir, 'embedded', 'db', 'transcodekit-embedded.pid'))).rejects.toThrow(
      /ENOENT/,
    )
  }, 120_000)
})
