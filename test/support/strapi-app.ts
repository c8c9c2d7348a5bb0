import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join, resolve } from 'node:path'
import { probe } from '../../packages/core/src/testing/index.ts'

// The real Strapi 5 app of examples/strapi (installed from the packed tarballs by
// examples/strapi/install.sh), booted inside the test process, and taken down again without
// removing the test runner's own process listeners.

export const APP_DIR = resolve(import.meta.dirname, '../../examples/strapi')
export const STRAPI_INSTALLED = existsSync(
  join(APP_DIR, 'node_modules/@strapi/strapi/package.json'),
)
export const appRequire = createRequire(join(APP_DIR, 'package.json'))
/** Where `strapi build` (install.sh) puts the admin panel Strapi serves. */
export const ADMIN_BUILD = join(APP_DIR, 'dist/build/index.html')

/** The PostgreSQL server (no database name): tests make and drop their own databases there. */
export const PG_URL =
  process.env.STRAPI_TEST_PG_URL ??
  serverOf(process.env.DATABASE_URL) ??
  'postgres://postgres@127.0.0.1:5432'

function serverOf(url: string | undefined): string | null {
  if (!url) return null
  const parsed = new URL(url)
  parsed.pathname = ''
  parsed.search = ''
  return parsed.toString().replace(/\/$/, '')
}

/** Runs one SQL statement on the server's `postgres` database (CREATE/DROP DATABASE). */
export async function adminSql(sql: string): Promise<void> {
  const { Client } = appRequire('pg') as typeof import('pg')
  const client = new Client({ connectionString: `${PG_URL}/postgres` })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

export interface RecordedOutput {
  preset: string
  url: string | null
  mime: string
  state: string
  size: number | null
  durationSec: number | null
}

export interface TranscodeRecord {
  jobId: string | null
  assetId: string | null
  state: string
  error: { code: string; message: string } | null
  outputs: RecordedOutput[]
  sourceSha256?: string | null
  replacesAssetId?: string | null
}

export interface FileEntry {
  id: number
  name: string
  caption: string | null
  hash: string
  mime: string
  url: string
  provider_metadata: { transcodekit?: TranscodeRecord } | null
}

export interface JobView {
  id: string
  assetId: string
  idempotencyKey: string | null
  state: string
  attempts: number
}

/** The parts of a booted Strapi every boot touches. */
export interface StrapiCore {
  server: { httpServer: { address(): { port: number } } }
  log: { level: string; warn(message: string): void }
  load(): Promise<void>
  listen(): Promise<void>
  destroy(): Promise<void>
}

/** The parts of the booted Strapi instance StrapiTestApp's tests touch. */
export interface StrapiApp extends StrapiCore {
  db: {
    /** Strapi's Knex: `connection(table)` starts a query (the subset the tests use). */
    connection: (table: string) => {
      where(
        column: string,
        value: unknown,
      ): {
        count(column: string): { first(): Promise<Record<string, number | string>> }
      }
    }
  }
  service(uid: string): { create(params: unknown): Promise<{ accessKey: string }> }
  plugin(name: string): { service(name: string): PluginService }
}

export interface PluginService {
  idle(): Promise<void>
  service: {
    repository: import('@transcodekit/core').Repository
    listJobs(request?: { limit?: number; cursor?: string | null }): Promise<{
      items: JobView[]
      nextCursor: string | null
    }>
  }
}

let compiled: Promise<{ appDir: string; distDir: string }> | null = null

/**
 * Compiles the app's TypeScript (config/, src/) into its dist/ once per test file. Test files
 * run in parallel workers and all compile into the same dist/: a lock directory makes them take
 * turns, so none loads a file another is rewriting.
 */
function compileOnce(): Promise<{ appDir: string; distDir: string }> {
  compiled ??= withCompileLock(async () => {
    const { compileStrapi } = appRequire('@strapi/strapi')
    // compileStrapi exits the process when TypeScript fails: make that a test failure.
    const exit = process.exit
    process.exit = ((code?: number) => {
      throw new Error(`compiling examples/strapi failed (exit ${code})`)
    }) as typeof process.exit
    try {
      return await compileStrapi({ appDir: APP_DIR })
    } finally {
      process.exit = exit
    }
  })
  return compiled
}

const COMPILE_LOCK = join(APP_DIR, '.compile.lock')

async function withCompileLock<T>(work: () => Promise<T>): Promise<T> {
  const giveUpAt = Date.now() + 300_000
  for (;;) {
    try {
      await mkdir(COMPILE_LOCK)
      break
    } catch (error) {
      if ((error as { code?: string }).code !== 'EEXIST') throw error
      // A lock older than any compile is left by a killed run.
      const { mtimeMs } = await stat(COMPILE_LOCK).catch(() => ({ mtimeMs: Date.now() }))
      if (Date.now() - mtimeMs > 300_000) await rm(COMPILE_LOCK, { recursive: true, force: true })
      if (Date.now() > giveUpAt) throw new Error(`${COMPILE_LOCK} is held by another test run`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }
  try {
    return await work()
  } finally {
    await rm(COMPILE_LOCK, { recursive: true, force: true })
  }
}

/**
 * The environment every boot needs: fresh secrets, port 0, no telemetry. The database is each
 * test's own (DATABASE_CLIENT/DATABASE_URL).
 */
export function strapiEnv(): Record<string, string> {
  return {
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: '0',
    STRAPI_TELEMETRY_DISABLED: 'true',
    APP_KEYS: 'testKeyA,testKeyB',
    API_TOKEN_SALT: randomBytes(16).toString('base64'),
    ADMIN_JWT_SECRET: randomBytes(16).toString('base64'),
    TRANSFER_TOKEN_SALT: randomBytes(16).toString('base64'),
    JWT_SECRET: randomBytes(16).toString('base64'),
    ENCRYPTION_KEY: randomBytes(16).toString('base64'),
  }
}

/** A booted Strapi on a free port, and what stops it. */
export interface BootedStrapi<S extends StrapiCore> {
  strapi: S
  base: string
  /** How long the boot took (compile included the first time), in ms. */
  bootMs: number
  shutdown(): Promise<void>
}

/**
 * Compiles the app (once per test file) and boots it, environment already set, on a free port.
 * Strapi logs warnings and errors only; each warning is also pushed to `warnings`.
 */
export async function bootStrapi<S extends StrapiCore>(
  options: { warnings?: string[] } = {},
): Promise<BootedStrapi<S>> {
  const started = Date.now()
  const { createStrapi } = appRequire('@strapi/strapi')
  const context = await compileOnce()
  const before = snapshotListeners()
  const strapi = createStrapi({ ...context, autoReload: false }) as S
  // Warnings and errors only: no line per HTTP request.
  strapi.log.level = 'warn'
  await strapi.load()
  await strapi.listen()
  const base = `http://127.0.0.1:${strapi.server.httpServer.address().port}`
  const bootMs = Date.now() - started
  const { warnings } = options
  if (warnings) {
    const warn = strapi.log.warn.bind(strapi.log)
    strapi.log.warn = (message: string) => {
      warnings.push(message)
      warn(message)
    }
  }
  async function shutdown(): Promise<void> {
    // Strapi's destroy() ends with process.removeAllListeners(), which would also remove the
    // test runner's own (its IPC channel): remove only what Strapi added.
    const removeAll = process.removeAllListeners
    process.removeAllListeners = (() => process) as typeof process.removeAllListeners
    try {
      await strapi.destroy()
    } finally {
      process.removeAllListeners = removeAll
    }
    for (const [event, listeners] of snapshotListeners()) {
      const previous = before.get(event) ?? []
      for (const listener of listeners) {
        if (!previous.includes(listener))
          process.removeListener(event, listener as (...args: unknown[]) => void)
      }
    }
  }
  return { strapi, base, bootMs, shutdown }
}

/**
 * A running Strapi app with a full-access API token, and the REST calls the tests make.
 * `restart()` stops it (as `strapi.destroy()` does on SIGTERM) and boots it again on the same
 * database and files.
 */
export class StrapiTestApp {
  strapi!: StrapiApp
  base = ''
  token = ''
  /** How long each boot took (compile included the first time), in ms. */
  readonly bootMs: number[] = []
  readonly warnings: string[] = []
  #shutdown: () => Promise<void> = async () => {}

  constructor(readonly work: string) {}

  async start(): Promise<void> {
    await this.#boot()
    const created = await this.strapi
      .service('admin::api-token')
      .create({ name: 'transcodekit-test', type: 'full-access', lifespan: null })
    this.token = created.accessKey
  }

  async restart(): Promise<void> {
    await this.stop()
    await this.#boot()
  }

  get plugin(): PluginService {
    return this.strapi.plugin('transcodekit').service('transcoder')
  }

  async #boot(): Promise<void> {
    const booted = await bootStrapi<StrapiApp>({ warnings: this.warnings })
    this.strapi = booted.strapi
    this.base = booted.base
    this.bootMs.push(booted.bootMs)
    this.#shutdown = booted.shutdown
  }

  stop(): Promise<void> {
    return this.#shutdown()
  }

  /** Uploads a file; with `replace`, replaces the file of that entry (`POST /api/upload?id=`). */
  async upload(
    path: string,
    name: string,
    type: string,
    replace?: number,
  ): Promise<{ status: number; file: FileEntry }> {
    const form = new FormData()
    form.append('files', new Blob([await readFile(path)], { type }), name)
    const query = replace === undefined ? '' : `?id=${replace}`
    const response = await fetch(`${this.base}/api/upload${query}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.token}` },
      body: form,
    })
    const body = (await response.json()) as FileEntry[] | FileEntry
    return { status: response.status, file: Array.isArray(body) ? body[0]! : body }
  }

  /** Changes an entry's name and caption only (`POST /api/upload?id=` with `fileInfo`). */
  async editInfo(id: number, info: { name?: string; caption?: string }): Promise<number> {
    const form = new FormData()
    form.append('fileInfo', JSON.stringify(info))
    const response = await fetch(`${this.base}/api/upload?id=${id}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.token}` },
      body: form,
    })
    await response.arrayBuffer()
    return response.status
  }

  async entry(id: number): Promise<{ status: number; file: FileEntry }> {
    const response = await fetch(`${this.base}/api/upload/files/${id}`, {
      headers: { authorization: `Bearer ${this.token}` },
    })
    return { status: response.status, file: (await response.json()) as FileEntry }
  }

  /** Polls the REST API until the entry's job (or one other than `notJob`) has ended. */
  async finished(id: number, options: { notJob?: string; timeoutMs?: number } = {}) {
    const deadline = Date.now() + (options.timeoutMs ?? 60_000)
    for (;;) {
      const record = (await this.entry(id)).file.provider_metadata?.transcodekit
      if (
        record &&
        record.jobId !== options.notJob &&
        ['complete', 'error', 'canceled'].includes(record.state) &&
        !record.replacesAssetId
      )
        return record
      if (Date.now() > deadline)
        throw new Error(`file ${id}: transcoding did not end (${JSON.stringify(record)})`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  /** Downloads an output through Strapi and returns ffprobe's view of it. */
  async fetchOutput(output: RecordedOutput) {
    const response = await fetch(new URL(output.url!, this.base))
    if (response.status !== 200) throw new Error(`${output.url}: ${response.status}`)
    const bytes = Buffer.from(await response.arrayBuffer())
    const path = join(this.work, `download-${randomBytes(4).toString('hex')}`)
    await writeFile(path, bytes)
    return { size: bytes.length, probed: await probe(path) }
  }

  async status(url: string): Promise<number> {
    const response = await fetch(new URL(url, this.base))
    await response.arrayBuffer()
    return response.status
  }

  /** Every job made for a media entry (under its key or a key of one of its versions). */
  async jobsFor(id: number): Promise<JobView[]> {
    const jobs: JobView[] = []
    let cursor: string | null = null
    do {
      const page = await this.plugin.service.listJobs({ limit: 100, cursor })
      jobs.push(...page.items)
      cursor = page.nextCursor
    } while (cursor)
    return jobs.filter(
      (job) =>
        job.idempotencyKey === `strapi:file:${id}` ||
        job.idempotencyKey?.startsWith(`strapi:file:${id}:`),
    )
  }
}

type Listeners = Map<string | symbol, ReturnType<typeof process.rawListeners>>

function snapshotListeners(): Listeners {
  return new Map(process.eventNames().map((event) => [event, [...process.rawListeners(event)]]))
}
