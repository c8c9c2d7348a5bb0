import { type ChildProcess, fork as forkProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ConfigurationError } from '@transcodekit/core'
import type { EmbeddedProcessMessage, EmbeddedProcessOptions } from './embedded-postgres-process.ts'
import { checkPostgresSettings } from './postgres-settings.ts'

export interface StartEmbeddedPostgresOptions {
  /** The folder of the database (PGlite's data folder); made if missing. */
  dataDir: string
  /** PostgreSQL settings (`-c name=value` at start), e.g. `{ shared_buffers: '16MB' }`. */
  postgresSettings?: Record<string, string>
  /**
   * Node flags of the database process. The defaults keep it small: V8 compiles PGlite's
   * WebAssembly with its baseline compiler only, and keeps a small young generation.
   */
  execArgv?: string[]
  /** Most milliseconds to wait for the database to open. @default 60000 */
  startTimeoutMs?: number
}

export interface EmbeddedPostgres {
  /** A `postgres://` URL for `pg`, pg-boss or `openDatabase({ url })`: the Unix socket. */
  url: string
  /** The database process. */
  pid: number
  /** Stops the database process (it closes PGlite cleanly first). Idempotent. */
  close(): Promise<void>
}

// The sources (`.ts`, in the workspace) fork the source, the build (`.js`, from npm) the build.
const PROCESS_ENTRY = fileURLToPath(
  new URL(
    import.meta.url.endsWith('.ts')
      ? './embedded-postgres-process.ts'
      : './embedded-postgres-process.js',
    import.meta.url,
  ),
)
const DEFAULT_EXEC_ARGV = ['--max-semi-space-size=1', '--liftoff-only']
// The socket name `pg` looks for in a socket folder (`host=<folder>`, port 5432).
const SOCKET_NAME = '.s.PGSQL.5432'
// sun_path holds 108 bytes on Linux, 104 on macOS, with the terminating NUL.
const MAX_SOCKET_PATH = 103

/**
 * Runs PGlite (PostgreSQL in WebAssembly) in a process of its own that serves the PostgreSQL
 * protocol on a Unix socket in `dataDir`, for embedded setups that want a database without
 * installing one but not its memory in their own process (PGlite reserves at least 128 MiB of
 * WebAssembly memory), or that want several processes (an API, workers) on one database.
 *
 * On a new folder, a first short-lived process creates the database (initdb), so that the memory
 * initdb leaves behind goes with it. The process claims `dataDir` while it runs (see
 * `embedded-postgres-process.ts`), so a second start on the same folder fails with a
 * `ConfigurationError` instead of opening it twice. It stops when `close()` is called, when it
 * gets SIGTERM, or when this process exits, even by SIGKILL (the IPC channel closes); a Ctrl-C
 * in a terminal is left to this process.
 *
 * @example
 * const embedded = await startEmbeddedPostgres({ dataDir: './data/db' })
 * const { db, close } = await openDatabase({ url: embedded.url })
 * // … at shutdown
 * await close()
 * await embedded.close()
 */
export async function startEmbeddedPostgres(
  options: StartEmbeddedPostgresOptions,
): Promise<EmbeddedPostgres> {
  if (typeof options.dataDir !== 'string' || options.dataDir === '') {
    throw new ConfigurationError('startEmbeddedPostgres needs a non-empty "dataDir"')
  }
  const settings = options.postgresSettings ?? {}
  checkPostgresSettings(settings)
  const dataDir = resolve(options.dataDir)
  const socketPath = join(dataDir, SOCKET_NAME)
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw new ConfigurationError(
      `the embedded database's socket path would be longer than ${MAX_SOCKET_PATH} bytes ` +
        `(${socketPath}): use a shorter data folder`,
    )
  }
  await mkdir(dataDir, { recursive: true })
  const processOptions: EmbeddedProcessOptions = {
    dataDir,
    socketPath,
    pidFile: join(dataDir, 'transcodekit-embedded.pid'),
    postgresSettings: settings,
    initOnly: false,
  }
  const fork = (initOnly: boolean) =>
    forkDatabaseProcess(
      { ...processOptions, initOnly },
      options.execArgv ?? DEFAULT_EXEC_ARGV,
      options.startTimeoutMs ?? 60_000,
    )
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    const init = await fork(true)
    if (init.exitCode === null && init.signalCode === null) await once(init, 'exit')
  }
  const child = await fork(false)
  // The parent's event loop need not wait for the database process; `close()` ends it.
  child.unref()
  child.channel?.unref()
  const exited = child.exitCode !== null ? Promise.resolve() : once(child, 'exit').then(() => {})
  let closing: Promise<void> | null = null
  return {
    url: embeddedPostgresUrl(dataDir),
    pid: child.pid!,
    close() {
      closing ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return
        if (child.connected) child.send('stop')
        else child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
        await exited
        clearTimeout(timer)
      })()
      return closing
    },
  }
}

/**
 * The URL of the embedded database that a `startEmbeddedPostgres` of another process serves from
 * `dataDir`, for processes that share it (workers next to the API process).
 */
export function embeddedPostgresUrl(dataDir: string): string {
  return `postgres://postgres@localhost/postgres?host=${encodeURIComponent(resolve(dataDir))}`
}

/** Forks the database process and waits for its first word: ready, initialized or failed. */
async function forkDatabaseProcess(
  processOptions: EmbeddedProcessOptions,
  execArgv: string[],
  timeoutMs: number,
): Promise<ChildProcess> {
  const child = forkProcess(PROCESS_ENTRY, [JSON.stringify(processOptions)], {
    execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  try {
    await whenReady(child, timeoutMs)
  } catch (error) {
    child.kill('SIGKILL')
    throw error
  }
  return child
}

function whenReady(child: ChildProcess, timeoutMs: number): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(
      () => done(new Error(`the embedded database did not open within ${timeoutMs} ms`)),
      timeoutMs,
    )
    const onMessage = (message: EmbeddedProcessMessage) => {
      if (message.type === 'ready' || message.type === 'initialized') done(null)
      else if (message.code === 'IN_USE') done(new ConfigurationError(message.message))
      else done(new Error(`the embedded database could not start: ${message.message}`))
    }
    const onExit = (code: number | null, signal: string | null) =>
      done(new Error(`the embedded database process exited (${signal ?? `code ${code}`})`))
    const done = (error: Error | null) => {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
      if (error) reject(error)
      else resolvePromise()
    }
    child.on('message', onMessage)
    child.on('exit', onExit)
  })
}
