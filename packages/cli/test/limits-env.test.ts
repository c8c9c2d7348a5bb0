import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { openAsBlob } from 'node:fs'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { bundledBinaries, resolveJobLimits } from '@transcodekit/core'
import { makeTone } from '@transcodekit/core/testing'
import { openDatabase } from '@transcodekit/kysely'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../src/config.ts'
import {
  BIN,
  configProblems,
  followJob,
  type RunningProcess,
  type RunningServer,
  startServer,
  startWorker,
} from './server-process.ts'

describe('loadConfig: job limits, ffmpeg guards, upload idle timeout, log level', () => {
  it('leaves every limit to the library when nothing is set', () => {
    const config = loadConfig({})
    // Nothing set is nothing passed: core's and the engine's own defaults apply.
    expect(config.jobLimits).toEqual({})
    expect(config.ffmpegGuards).toEqual({})
    expect(config.uploadIdleTimeoutMs).toBeUndefined()
    expect(config.logLevel).toBe('info')
  })

  it('reads each variable in its unit, 0 lifting a limit', () => {
    const config = loadConfig({
      MAX_DURATION_SEC: '600',
      MAX_FRAME_PIXELS: '2073600',
      MAX_FRAME_RATE: '0',
      MAX_OUTPUT_BYTES: '1073741824',
      FFMPEG_TIMEOUT_SEC: '3600',
      FFMPEG_STALL_TIMEOUT_SEC: '30',
      FFMPEG_MAX_CPU_SEC: '900',
      FFMPEG_MAX_MEMORY_BYTES: '0',
      FFMPEG_MAX_OUTPUT_BYTES: '2147483648',
      UPLOAD_IDLE_TIMEOUT_MS: '0',
      LOG_LEVEL: 'warn',
    })
    expect(config.jobLimits).toEqual({
      maxDurationSec: 600,
      maxFramePixels: 2_073_600,
      maxFrameRate: Number.POSITIVE_INFINITY,
      maxOutputBytes: 1024 ** 3,
    })
    expect(config.ffmpegGuards).toEqual({
      timeoutMs: 3_600_000,
      stallTimeoutMs: 30_000,
      maxCpuSec: 900,
      maxMemoryBytes: Number.POSITIVE_INFINITY,
      maxOutputBytes: 2 * 1024 ** 3,
    })
    // 0 is the Fastify plugin's own "off".
    expect(config.uploadIdleTimeoutMs).toBe(0)
    expect(config.logLevel).toBe('warn')
    // What core accepts: the limits resolve, the unset ones to core's defaults.
    expect(resolveJobLimits({ maxDurationSec: 600 })).toMatchObject({
      maxDurationSec: 600,
      maxFrameRate: resolveJobLimits().maxFrameRate,
    })
    expect(loadConfig({ UPLOAD_IDLE_TIMEOUT_MS: '5000' }).uploadIdleTimeoutMs).toBe(5000)
  })

  it('refuses bad values, naming each variable', () => {
    const bad = {
      MAX_DURATION_SEC: '1h',
      MAX_FRAME_PIXELS: '-1',
      MAX_FRAME_RATE: '29.97',
      MAX_OUTPUT_BYTES: '4GB',
      FFMPEG_TIMEOUT_SEC: '0',
      FFMPEG_STALL_TIMEOUT_SEC: 'never',
      FFMPEG_MAX_CPU_SEC: '1e3',
      FFMPEG_MAX_MEMORY_BYTES: '99999999999999999999',
      FFMPEG_MAX_OUTPUT_BYTES: 'lots',
      UPLOAD_IDLE_TIMEOUT_MS: '-5',
      LOG_LEVEL: 'loud',
    }
    const found = configProblems(bad)
    for (const [name, value] of Object.entries(bad)) {
      const problem = found.find((text) => text.startsWith(`${name} `))
      expect(problem, name).toBeDefined()
      expect(problem).toContain(JSON.stringify(value))
    }
    expect(found).toHaveLength(Object.keys(bad).length)
    // The timeout has no "off": it must be a positive number of seconds.
    expect(found.find((text) => text.startsWith('FFMPEG_TIMEOUT_SEC'))).toContain('from 1 to')
    expect(found.find((text) => text.startsWith('LOG_LEVEL'))).toContain('info')
    // Spaces around a value are ignored, and an empty variable is an unset one.
    expect(configProblems({ MAX_DURATION_SEC: ' 12 ' })).toEqual([])
    expect(configProblems({ MAX_DURATION_SEC: '' })).toEqual([])
  })
})

describe('the documentation of the limits', () => {
  const variables = [
    'UPLOAD_IDLE_TIMEOUT_MS',
    'MAX_DURATION_SEC',
    'MAX_FRAME_PIXELS',
    'MAX_FRAME_RATE',
    'MAX_OUTPUT_BYTES',
    'FFMPEG_TIMEOUT_SEC',
    'FFMPEG_STALL_TIMEOUT_SEC',
    'FFMPEG_MAX_CPU_SEC',
    'FFMPEG_MAX_MEMORY_BYTES',
    'FFMPEG_MAX_OUTPUT_BYTES',
  ]

  it('`serve --help` and both READMEs name every variable, with the job limit defaults of core', async () => {
    const { stdout: help } = await promisify(execFile)(process.execPath, [BIN, 'serve', '--help'])
    const readmes = await Promise.all(
      ['../README.md', '../../../examples/server/README.md'].map((path) =>
        readFile(new URL(path, import.meta.url), 'utf8'),
      ),
    )
    const defaults = resolveJobLimits()
    const jobLimits: Record<string, number> = {
      MAX_DURATION_SEC: defaults.maxDurationSec,
      MAX_FRAME_PIXELS: defaults.maxFramePixels,
      MAX_FRAME_RATE: defaults.maxFrameRate,
      MAX_OUTPUT_BYTES: defaults.maxOutputBytes,
    }
    for (const name of variables) {
      const helpLine = help.split('\n').find((line) => line.trim().startsWith(`${name} `))
      expect(helpLine, name).toBeDefined()
      const rows = readmes.map((readme) =>
        readme.split('\n').find((line) => line.startsWith(`| \`${name}\``)),
      )
      expect(rows.every(Boolean), name).toBe(true)
      if (name in jobLimits) {
        const value = String(jobLimits[name])
        expect(helpLine).toContain(value)
        for (const row of rows) expect(row).toContain(`\`${value}\``)
      }
    }
  })
})

/** The files in `folder` and its subfolders (local storage keeps empty `.meta` and `.tmp`). */
async function filesIn(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true }).catch(() => [])
  return entries.filter((entry) => entry.isFile()).map((entry) => entry.name)
}

/** The server's log lines that are JSON (pino), parsed. */
function jsonLines(output: string): Array<Record<string, unknown>> {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
}

describe('transcodekit serve with limits from the environment', () => {
  let dataDir: string
  let server: RunningServer | null = null

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'transcodekit-limits-env-'))
  })
  afterAll(async () => {
    await server?.stop('SIGKILL')
    await rm(dataDir, { recursive: true, force: true })
  })

  it('refuses a start with a bad limit, naming the variable', async () => {
    const failure = await startServer(
      { DATA_DIR: join(dataDir, 'bad'), DATABASE_URL: 'memory://', FFMPEG_MAX_CPU_SEC: 'a lot' },
      20_000,
    ).catch((error: Error) => error)
    expect(failure).toBeInstanceOf(Error)
    expect((failure as Error).message).toContain('exited with 1')
    expect((failure as Error).message).toContain('FFMPEG_MAX_CPU_SEC must be an integer')
  })

  it('refuses an upload past MAX_DURATION_SEC with 422, leaves nothing, and logs the binaries and a failed job as JSON', async () => {
    const data = join(dataDir, 'data')
    const long = await makeTone(join(dataDir, 'long.mp3'), { seconds: 3, format: 'mp3' })
    const short = await makeTone(join(dataDir, 'short.mp3'), { seconds: 1, format: 'mp3' })
    server = await startServer({
      DATA_DIR: data,
      DATABASE_URL: 'memory://',
      MAX_DURATION_SEC: '2',
      // A 1 s WAV is 176 KB: ffmpeg is stopped at 64 KB.
      FFMPEG_MAX_OUTPUT_BYTES: '65536',
    })
    const upload = async (path: string) => {
      const form = new FormData()
      form.append('presets', 'wav')
      form.append('file', await openAsBlob(path, { type: 'audio/mpeg' }), 'tone.mp3')
      return fetch(`${server!.url}/api/uploads`, { method: 'POST', body: form })
    }

    const refused = await upload(long)
    expect(refused.status).toBe(422)
    const body = (await refused.json()) as { code: string; message: string }
    expect(body.code).toBe('TRANSCODEKIT_MEDIA_TOO_LONG')
    expect(body.message).toContain('limit of 2 s')
    // Nothing kept: no asset, no stored file, no spool.
    expect((await (await fetch(`${server.url}/api/assets`)).json()).items).toEqual([])
    expect(await filesIn(join(data, 'files'))).toEqual([])
    expect(await filesIn(join(data, 'tmp', 'uploads'))).toEqual([])

    // Under the duration limit, the job runs, and the output guard from the environment stops it.
    const accepted = await upload(short)
    expect(accepted.status).toBe(201)
    const { job } = (await accepted.json()) as { job: { id: string } }
    const ended = await followJob(server.url, job.id, 60_000)
    expect(ended.state).toBe('error')
    expect(ended.errorMessage ?? '').toMatch(/65536/)

    const lines = jsonLines(server.output())
    // Every line the process wrote is JSON: core logs through the server's pino logger.
    expect(
      server
        .output()
        .split('\n')
        .filter((line) => line.trim() !== '' && !line.startsWith('{')),
    ).toEqual([])
    const binaries = lines.find((line) => line.msg === 'ffmpeg engine: binaries')
    expect(binaries, server.output()).toBeDefined()
    expect(binaries).toMatchObject({
      level: 30,
      ffmpeg: { path: expect.any(String), version: expect.any(String) },
      ffprobe: { path: expect.any(String), version: expect.any(String) },
    })
    // The job's state is written before its failure is logged, and pino writes asynchronously:
    // the API may show the end before the line reaches the process's output.
    const failedLine = () =>
      jsonLines(server!.output()).find((line) => line.msg === 'transcode job failed')
    await expect.poll(failedLine, { timeout: 10_000 }).toBeDefined()
    expect(failedLine()).toMatchObject({ level: 40, jobId: job.id, code: 'OUTPUT_TOO_LARGE' })

    expect(await server.stop('SIGTERM')).toBe(0)
    server = null
  }, 120_000)

  it('cuts an upload body that stalls past UPLOAD_IDLE_TIMEOUT_MS, keeping nothing', async () => {
    const data = join(dataDir, 'idle')
    // 1 s instead of the plugin's 30 s: the connection must be cut well before 30 s.
    server = await startServer({
      DATA_DIR: data,
      DATABASE_URL: 'memory://',
      UPLOAD_IDLE_TIMEOUT_MS: '1000',
    })
    const { port } = new URL(server.url)
    const socket = connect(Number(port), '127.0.0.1')
    await once(socket, 'connect')
    const boundary = 'x-stall'
    const head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\nContent-Type: audio/mpeg\r\n\r\n`
    socket.write(
      `POST /api/uploads?presets=wav HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
        `Content-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: 1000000\r\n\r\n` +
        head,
    )
    // Some of the file, then nothing more.
    socket.write(
      await readFile(await makeTone(join(dataDir, 'stall.mp3'), { seconds: 1, format: 'mp3' })),
    )
    socket.resume()
    const closed = once(socket, 'close')
    const cut = await Promise.race([
      closed.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 20_000)),
    ])
    socket.destroy()
    expect(cut, 'the stalled upload was cut before the default 30 s').toBe(true)
    // The spool is removed once the upload is cut.
    const deadline = Date.now() + 10_000
    while ((await filesIn(join(data, 'tmp', 'uploads'))).length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect(await filesIn(join(data, 'tmp', 'uploads'))).toEqual([])
    expect(await filesIn(join(data, 'files'))).toEqual([])
    expect((await (await fetch(`${server.url}/api/assets`)).json()).items).toEqual([])
    expect(await server.stop('SIGTERM')).toBe(0)
    server = null
  }, 90_000)
})

describe('transcodekit worker', () => {
  const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
  const suffix = randomBytes(4).toString('hex')
  const schemas = [`limits_env_${suffix}`, `limits_env_${suffix}_boss`]
  let dataDir: string
  let worker: RunningProcess | null = null

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'transcodekit-limits-worker-'))
  })
  afterAll(async () => {
    await worker?.stop('SIGKILL')
    const { db, close } = await openDatabase({ url, maxConnections: 1 })
    for (const schema of schemas) {
      await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db)
    }
    await close()
    await rm(dataDir, { recursive: true, force: true })
  })

  it('logs the binaries and the warning about the bundled 2018 build as JSON lines', async () => {
    const bundled = bundledBinaries()
    expect(bundled.ffmpeg).not.toBeNull()
    expect(bundled.ffprobe).not.toBeNull()
    worker = await startWorker({
      DATA_DIR: dataDir,
      DATABASE_URL: url,
      DATABASE_SCHEMA: schemas[0]!,
      QUEUE_SCHEMA: schemas[1]!,
      FFMPEG_PATH: bundled.ffmpeg!,
      FFPROBE_PATH: bundled.ffprobe!,
    })
    // The engine announces its binaries once it has asked them their versions.
    const deadline = Date.now() + 20_000
    while (!worker.output().includes('is an old build (2018)') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const lines = jsonLines(worker.output())
    expect(lines.find((line) => line.msg === 'ffmpeg engine: binaries')).toMatchObject({
      level: 30,
      ffmpeg: { path: bundled.ffmpeg, source: 'option' },
      ffprobe: { path: bundled.ffprobe },
    })
    const warnings = lines.filter((line) => line.level === 40 && String(line.msg).includes('2018'))
    // (Only ffmpeg's: core tells an old build given by path from its "Copyright (c) 2000-2018",
    // and the bundled ffprobe 4.0.3 says "2007-2018".)
    expect(warnings.map((line) => line.path)).toContain(bundled.ffmpeg)
    expect(
      worker
        .output()
        .split('\n')
        .filter((line) => line.trim() && !line.startsWith('{')),
    ).toEqual([])
    expect(await worker.stop('SIGTERM')).toBe(0)
    worker = null
  }, 90_000)
})
