import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openDatabase } from '@transcodekit/kysely'
import { sql } from 'kysely'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type RunningProcess, startServer, startWorker } from './server-process.ts'

/**
 * The one graceful shutdown of `serve` and `worker` (graceful-shutdown.ts), seen from outside:
 * signals sent to the real processes. A clean SIGTERM (exit 0) is in server.test.ts and
 * postgres.test.ts; here, a second signal and an uncaught error.
 */
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/** Preloaded into a process under test: a SIGWINCH there throws an uncaught exception. */
const THROW_ON_SIGWINCH = `data:text/javascript,${encodeURIComponent(
  "process.on('SIGWINCH', () => { throw new Error('boom from the test') })",
)}`

let dir: string
const running: RunningProcess[] = []
const schemas: string[] = []

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'transcodekit-shutdown-'))
})
afterEach(async () => {
  for (const child of running.splice(0)) await child.stop('SIGKILL')
})
afterAll(async () => {
  if (schemas.length > 0) {
    const { db, close } = await openDatabase({ url: DATABASE_URL, maxConnections: 1 })
    for (const schema of schemas)
      await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db)
    await close()
  }
  await rm(dir, { recursive: true, force: true })
})

function exited(process: RunningProcess): Promise<number | null> {
  const { child } = process
  if (child.exitCode !== null) return Promise.resolve(child.exitCode)
  return once(child, 'exit').then(([code]) => code as number | null)
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe('transcodekit serve', () => {
  it('exits at once, with 1, on a second signal while the first waits for an upload', async () => {
    const dataDir = join(dir, 'second-signal')
    const server = await startServer({ DATA_DIR: dataDir, DATABASE_URL: 'memory://' })
    running.push(server)
    // An upload that stalls half-way: the first SIGTERM gives it 10 s to finish.
    const { port } = new URL(server.url)
    const socket = connect(Number(port), '127.0.0.1')
    await once(socket, 'connect')
    const boundary = 'stalled'
    socket.write(
      `POST /api/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
        `Content-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: 10000000\r\n\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n` +
        `Content-Type: audio/wav\r\n\r\n${'x'.repeat(64 * 1024)}`,
    )
    const spool = join(dataDir, 'tmp', 'uploads')
    await until(
      async () => (await readdir(spool).catch(() => [])).length > 0,
      'the upload to reach the spool',
    )

    server.child.kill('SIGTERM')
    await until(async () => server.output().includes('shutting down'), 'the first signal')
    expect(server.child.exitCode).toBe(null)
    const second = Date.now()
    server.child.kill('SIGINT')
    expect(await exited(server)).toBe(1)
    // Well before the upload's 10 s of grace would have ended.
    expect(Date.now() - second).toBeLessThan(5_000)
    expect(server.output()).toContain('second SIGINT: exiting at once')
    socket.destroy()
  }, 120_000)

  it('logs an uncaught error, closes, and exits 1', async () => {
    const server = await startServer({ DATA_DIR: join(dir, 'uncaught') }, 60_000, [
      '--import',
      THROW_ON_SIGWINCH,
    ])
    running.push(server)
    server.child.kill('SIGWINCH')
    expect(await exited(server)).toBe(1)
    const output = server.output()
    expect(output).toContain('uncaught error: shutting down')
    expect(output).toContain('boom from the test')
    expect(output).not.toContain('shutdown failed')
    // The embedded database was closed with it: the next start on the folder opens it again.
    const next = await startServer({ DATA_DIR: join(dir, 'uncaught') })
    running.push(next)
    expect(await next.stop('SIGTERM')).toBe(0)
  }, 120_000)
})

describe('transcodekit worker', () => {
  it('logs an uncaught error, closes, and exits 1', async () => {
    const suffix = randomBytes(4).toString('hex')
    const env = {
      DATA_DIR: join(dir, 'worker'),
      DATABASE_URL,
      DATABASE_SCHEMA: `cli_shutdown_${suffix}`,
      QUEUE_SCHEMA: `cli_shutdown_${suffix}_boss`,
    }
    schemas.push(env.DATABASE_SCHEMA, env.QUEUE_SCHEMA)
    const worker = await startWorker(env, 60_000, ['--import', THROW_ON_SIGWINCH])
    running.push(worker)
    worker.child.kill('SIGWINCH')
    expect(await exited(worker)).toBe(1)
    const lines = worker
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line))
    expect(lines).toContainEqual(
      expect.objectContaining({
        // pino's level number, as in the server's log.
        level: 50,
        msg: 'uncaught error: shutting down',
        err: expect.objectContaining({ message: 'boom from the test' }),
      }),
    )
  }, 120_000)
})
