// The embedded database process that `startEmbeddedPostgres` forks: PGlite on its data folder,
// served on a Unix socket in that folder. It claims the folder with a pid file first (two PGlite
// instances on one folder would corrupt it), tells its parent over IPC when it is ready, and
// stops when the parent says so or goes away.
import { open, readFile, rm } from 'node:fs/promises'
import type { PGlite } from '@electric-sql/pglite'
import { openPGlite } from './pglite-open.ts'
import { type PGliteWireServer, servePGlite } from './pglite-wire-server.ts'

export interface EmbeddedProcessOptions {
  dataDir: string
  socketPath: string
  pidFile: string
  postgresSettings: Record<string, string>
  /** Create the database (initdb) and exit, without serving it. */
  initOnly: boolean
}

/** What the process tells its parent. */
export type EmbeddedProcessMessage =
  | { type: 'ready' }
  | { type: 'initialized' }
  | { type: 'failed'; code: 'IN_USE' | 'START_FAILED'; message: string }

const send = (message: EmbeddedProcessMessage) => process.send?.(message)

/** Takes the pid file; `false` if a live process holds it. A stale one is replaced. */
async function claim(pidFile: string): Promise<number | true> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const file = await open(pidFile, 'wx', 0o600)
      await file.writeFile(`${process.pid}\n`)
      await file.close()
      return true
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    const holder = Number.parseInt(await readFile(pidFile, 'utf8').catch(() => ''), 10)
    if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) return holder
    await rm(pidFile, { force: true })
  }
  throw new Error(`could not take ${pidFile}`)
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function main(options: EmbeddedProcessOptions): Promise<void> {
  const claimed = await claim(options.pidFile)
  if (claimed !== true) {
    send({
      type: 'failed',
      code: 'IN_USE',
      message: `the embedded database in ${options.dataDir} is in use by process ${claimed}`,
    })
    if (process.connected) process.disconnect()
    return
  }
  if (options.initOnly) {
    // initdb leaves hundreds of MiB of WebAssembly memory behind that the process never gives
    // back: a process that only creates the database, and exits, keeps the server's small.
    try {
      await (await openPGlite(options.dataDir, options.postgresSettings)).close()
      send({ type: 'initialized' })
    } catch (error) {
      send({ type: 'failed', code: 'START_FAILED', message: String(error) })
      process.exitCode = 1
    } finally {
      await rm(options.pidFile, { force: true })
      if (process.connected) process.disconnect()
    }
    return
  }
  let db: PGlite | null = null
  let wire: PGliteWireServer | null = null
  const starting = (async () => {
    db = await openPGlite(options.dataDir, options.postgresSettings)
    // Holding the pid file, any socket left here is a crashed run's.
    await rm(options.socketPath, { force: true })
    wire = await servePGlite(db, { path: options.socketPath })
  })()
  let stopping: Promise<void> | null = null
  const stop = () => {
    stopping ??= (async () => {
      await starting.catch(() => {})
      await wire?.close()
      await db?.close()
      await rm(options.socketPath, { force: true })
      await rm(options.pidFile, { force: true })
      if (process.connected) process.disconnect()
    })()
    return stopping
  }
  // The parent decides when to stop (it may still write during its own shutdown); a Ctrl-C in a
  // terminal reaches the whole process group, so SIGINT is left to the parent.
  process.on('SIGINT', () => {})
  process.once('SIGTERM', () => void stop())
  process.once('disconnect', () => void stop())
  process.on('message', (message) => {
    if (message === 'stop') void stop()
  })
  try {
    await starting
  } catch (error) {
    send({ type: 'failed', code: 'START_FAILED', message: String(error) })
    process.exitCode = 1
    await stop()
    return
  }
  if (!stopping) send({ type: 'ready' })
}

await main(JSON.parse(process.argv[2] ?? '{}') as EmbeddedProcessOptions)
