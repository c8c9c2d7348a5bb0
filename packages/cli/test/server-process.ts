import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { makeTone } from '@transcodekit/core/testing'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import { afterAll, afterEach, beforeAll } from 'vitest'
import {
  ConfigError,
  createServices,
  loadConfig,
  type ServerConfig,
  type Services,
} from '../src/config.ts'
import { buildServer } from '../src/server-app.ts'

/** The `transcodekit` bin, from the sources. */
export const BIN = fileURLToPath(new URL('../src/bin.ts', import.meta.url))

/** `pnpm start` and `pnpm worker` are the example's scripts, over `serve` and `worker`. */
const EXAMPLE_DIR = fileURLToPath(new URL('../../../examples/server/', import.meta.url))

/**
 * How a package.json script `[NAME=value …] node <flags> src/<entry>.ts` of the example server
 * runs: its environment assignments (relative paths made absolute against its folder, where
 * pnpm runs it) and its Node flags.
 */
export function scriptCommand(name: string): { env: Record<string, string>; flags: string[] } {
  const { scripts } = JSON.parse(readFileSync(resolve(EXAMPLE_DIR, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>
  }
  const words = scripts[name]!.split(/\s+/)
  const node = words.indexOf('node')
  const env = Object.fromEntries(
    words.slice(0, node).map((word) => {
      const [key, value] = word.split(/=(.*)/s) as [string, string]
      return [key, value.includes('/') ? resolve(EXAMPLE_DIR, value) : value]
    }),
  )
  return { env, flags: words.slice(node + 1, -1) }
}

export interface RunningProcess {
  child: ChildProcess
  /** Everything the process logged. */
  output(): string
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

export interface RunningServer extends RunningProcess {
  url: string
}

/**
 * Starts `transcodekit serve` with the Node flags and environment of `pnpm start` (the same
 * code: the example's entry only sets its data folder), on a free port, and waits until it
 * listens.
 */
export async function startServer(
  env: Record<string, string>,
  timeoutMs = 60_000,
  /** More Node flags, after the script's. */
  nodeFlags: string[] = [],
): Promise<RunningServer> {
  const command = scriptCommand('start')
  const { running, match } = await startProcess(
    [...command.flags, ...nodeFlags, BIN, 'serve'],
    { ...command.env, ...env },
    /transcodekit: (http:\/\/127\.0\.0\.1:\d+)\//,
    timeoutMs,
  )
  return { ...running, url: match[1]! }
}

/**
 * Starts the example's own entry (`examples/server/src/main.ts`, `pnpm start`) with its script's
 * flags: the thin wrapper over `serve`.
 */
export async function startExampleServer(env: Record<string, string>): Promise<RunningServer> {
  const command = scriptCommand('start')
  const { running, match } = await startProcess(
    [...command.flags, resolve(EXAMPLE_DIR, 'src/main.ts')],
    { ...command.env, ...env },
    /transcodekit: (http:\/\/127\.0\.0\.1:\d+)\//,
    60_000,
  )
  return { ...running, url: match[1]! }
}

/** Runs the example's own worker entry (`pnpm worker`) to its exit: its code and output. */
export async function runExampleWorker(
  env: Record<string, string>,
): Promise<{ code: number | null; output: string }> {
  const command = scriptCommand('worker')
  const child = spawn(process.execPath, [...command.flags, resolve(EXAMPLE_DIR, 'src/worker.ts')], {
    env: { ...process.env, ...command.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (data: Buffer) => {
    output += data.toString()
  })
  child.stderr.on('data', (data: Buffer) => {
    output += data.toString()
  })
  const [code] = (await once(child, 'close')) as [number | null]
  return { code, output }
}

/** Starts `transcodekit worker` as `pnpm worker` would and waits until it consumes jobs. */
export async function startWorker(
  env: Record<string, string>,
  timeoutMs = 60_000,
  /** More Node flags, after the script's. */
  nodeFlags: string[] = [],
): Promise<RunningProcess> {
  const command = scriptCommand('worker')
  const { running } = await startProcess(
    [...command.flags, ...nodeFlags, BIN, 'worker'],
    { ...command.env, ...env },
    /transcodekit worker: consuming jobs/,
    timeoutMs,
  )
  return running
}

async function startProcess(
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
  timeoutMs: number,
): Promise<{ running: RunningProcess; match: RegExpExecArray }> {
  const script = `transcodekit ${args.at(-1)}`
  const child = spawn(process.execPath, args, {
    // DATABASE_URL cleared: each test gets its own embedded database (PGlite) in its DATA_DIR,
    // never rows of a shared server, unless it names one.
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      DATABASE_URL: '',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  )
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${script} did not start:\n${output}`)),
      timeoutMs,
    )
    const onData = (data: Buffer) => {
      output += data.toString()
      const found = ready.exec(output)
      if (found) {
        clearTimeout(timer)
        resolve(found)
      }
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${script} exited with ${code}:\n${output}`))
    })
  })
  return {
    match,
    running: {
      child,
      output: () => output,
      async stop(signal = 'SIGTERM') {
        if (child.exitCode !== null) return child.exitCode
        child.kill(signal)
        return exited
      },
    },
  }
}

export interface JobView {
  id: string
  state: string
  errorMessage?: string | null
  outputs: Array<{ presetId: string; state: string; size: number | null; url: string | null }>
}

/**
 * Follows a job through the server's event stream (which ends when the job does, or on the
 * server's own time limit) until it ends or `timeoutMs` passes; answers its last view.
 */
export async function followJob(
  baseUrl: string,
  jobId: string,
  timeoutMs = 60_000,
): Promise<JobView> {
  const deadline = Date.now() + timeoutMs
  let current: JobView | null = null
  while (Date.now() < deadline) {
    const text = await (
      await fetch(`${baseUrl}/api/jobs/${jobId}/events`, {
        signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())),
      })
    ).text()
    const blocks = text.split('\n\n').filter((block) => block.includes('data: '))
    if (blocks.length > 0) current = JSON.parse(blocks.at(-1)!.split('data: ')[1]!) as JobView
    if (current && ['complete', 'error', 'canceled'].includes(current.state)) return current
  }
  if (!current) throw new Error(`no event for job ${jobId} within ${timeoutMs} ms`)
  return current
}

/** The problems `loadConfig` names for this environment (none: `[]`). */
export function configProblems(env: Record<string, string>): string[] {
  try {
    loadConfig(env)
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  return []
}

interface InjectedServer {
  app: FastifyInstance
  services: Services
  config: ServerConfig
}

/**
 * The `serve` app built in this process, for `app.inject` (no port, no child process). Registers
 * the hooks of the enclosing `describe` (or file): a folder holding a one-second tone
 * (`tone.<format>`) before all tests, the app and its services closed after each, the folder
 * removed after all.
 */
export function injectedServer(format: 'mp3' | 'wav') {
  let dir = ''
  let tone = Buffer.alloc(0)
  let current: InjectedServer | null = null
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'transcodekit-injected-'))
    tone = await readFile(await makeTone(join(dir, `tone.${format}`), { seconds: 1, format }))
  })
  afterEach(async () => {
    const closing = current
    current = null
    await closing?.app.close()
    await closing?.services.close()
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })
  const started = (): InjectedServer => {
    if (!current) throw new Error('injectedServer: start() first')
    return current
  }
  return {
    /** The folder of the tone and of each server's data folder. */
    get dir() {
      return dir
    },
    get app() {
      return started().app
    },
    get services() {
      return started().services
    },
    /**
     * Builds the app over an in-memory database and a data folder of its own, `env` on top;
     * silent unless `logger` says otherwise.
     */
    async start(
      env: Record<string, string> = {},
      logger: FastifyServerOptions['logger'] = false,
    ): Promise<InjectedServer> {
      const config = loadConfig({
        DATA_DIR: join(dir, `data-${randomBytes(4).toString('hex')}`),
        DATABASE_URL: 'memory://',
        ...env,
      })
      const services = await createServices(config)
      try {
        const app = await buildServer(config, services, { logger })
        await app.ready()
        current = { app, services, config }
        return current
      } catch (error) {
        await services.close()
        throw error
      }
    },
    /** POSTs the tone to `/api/uploads` as a form, asking for `presets`. */
    upload(presets: string, headers: Record<string, string> = {}) {
      const boundary = '----transcodekitinjected'
      const type = format === 'mp3' ? 'audio/mpeg' : 'audio/wav'
      const payload = Buffer.concat([
        Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="presets"\r\n\r\n${presets}\r\n` +
            `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="tone.${format}"\r\n` +
            `Content-Type: ${type}\r\n\r\n`,
        ),
        tone,
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ])
      return started().app.inject({
        method: 'POST',
        url: '/api/uploads',
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, ...headers },
        payload,
      })
    },
  }
}
