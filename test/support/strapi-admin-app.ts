import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join, resolve } from 'node:path'

// Boots the real Strapi 5 app of examples/strapi inside the test process, and takes it down
// again without removing the test runner's own process listeners.

export const APP_DIR = resolve(import.meta.dirname, '../../examples/strapi')
export const appRequire = createRequire(join(APP_DIR, 'package.json'))
export const INSTALLED = existsSync(join(APP_DIR, 'node_modules/@strapi/strapi/package.json'))
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

/** The environment every boot needs: fresh secrets, port 0, the database, no telemetry. */
export function strapiEnv(databaseUrl: string): Record<string, string> {
  return {
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: '0',
    DATABASE_URL: databaseUrl,
    STRAPI_TELEMETRY_DISABLED: 'true',
    APP_KEYS: 'testKeyA,testKeyB',
    API_TOKEN_SALT: randomBytes(16).toString('base64'),
    ADMIN_JWT_SECRET: randomBytes(16).toString('base64'),
    TRANSFER_TOKEN_SALT: randomBytes(16).toString('base64'),
    JWT_SECRET: randomBytes(16).toString('base64'),
    ENCRYPTION_KEY: randomBytes(16).toString('base64'),
  }
}

/** The parts of a booted Strapi the tests touch. */
export interface BootedStrapi {
  server: { httpServer: { address(): { port: number } } }
  log: { level: string; warn(message: string): void }
  service(uid: string): Record<string, (...args: never[]) => Promise<unknown>>
  plugin(name: string): { service(name: string): Record<string, unknown> }
  load(): Promise<void>
  listen(): Promise<void>
  destroy(): Promise<void>
}

let compiled: Promise<{ appDir: string; distDir: string }> | null = null

/** Compiles the app's TypeScript (config/, src/) once per test file. */
function compileOnce(): Promise<{ appDir: string; distDir: string }> {
  compiled ??= (async () => {
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
  })()
  return compiled
}

type Listeners = Map<string | symbol, ReturnType<typeof process.rawListeners>>
const snapshotListeners = (): Listeners =>
  new Map(process.eventNames().map((event) => [event, [...process.rawListeners(event)]]))

/** Compiles and boots the app (environment already set) on a free port. */
export async function bootStrapi(): Promise<{
  strapi: BootedStrapi
  base: string
  shutdown(): Promise<void>
}> {
  const { createStrapi } = appRequire('@strapi/strapi')
  const context = await compileOnce()
  const before = snapshotListeners()
  const strapi = createStrapi({ ...context, autoReload: false }) as BootedStrapi
  // Warnings and errors only: no line per HTTP request.
  strapi.log.level = 'warn'
  await strapi.load()
  await strapi.listen()
  const base = `http://127.0.0.1:${strapi.server.httpServer.address().port}`
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
  return { strapi, base, shutdown }
}
