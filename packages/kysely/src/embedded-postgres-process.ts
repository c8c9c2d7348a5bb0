// The embedded database process that `startEmbeddedPostgres` forks: PGlite on its data folder,
// served on a Unix socket in that folder. It claims the folder first (two PGlite instances on
// one folder would corrupt it), tells its parent over IPC when it is ready, and
// stops when the parent says so or goes away.
import { createHash } from 'node:crypto'
import { link, readFile, realpath, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
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

/**
 * Claims the data folder for this process: `true`, or the pid of the process that has it
 * (`null` when that one is not known).
 *
 * On Linux the claim is a socket bound in the abstract namespace under a name made from the
 * folder: binding is atomic, and the kernel lets go of it when the process ends, however it
 * ends, so a crash leaves nothing to clean up. The pid file then only names the holder.
 * Elsewhere the pid file is the claim, made whole in one step (a link to a file already holding
 * the pid); one naming a process that no longer runs is replaced.
 */
async function claim(options: EmbeddedProcessOptions): Promise<true | number | null> {
  if (process.platform === 'linux') {
    const folder = await realpath(options.dataDir)
    const name = `\0transcodekit-embedded-${createHash('sha256').update(folder).digest('hex')}`
    const lock = createServer((socket) => socket.destroy())
    try {
      await new Promise<void>((resolve, reject) => {
        lock.once('error', reject)
        lock.listen(name, resolve)
      })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error
      return readHolder(options.pidFile)
    }
    lock.unref() // held until the process ends; it does not keep the process alive
    await writeFile(options.pidFile, `${process.pid}\n`, { mode: 0o600 })
    return true
  }
  const draft = `${options.pidFile}.${process.pid}`
  await writeFile(draft, `${process.pid}\n`, { mode: 0o600 })
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await link(draft, options.pidFile)
        return true
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      }
      const holder = await readHolder(options.pidFile)
      if (holder !== null && holder !== process.pid && isAlive(holder)) return holder
      await rm(options.pidFile, { force: true })
    }
    return null
  } finally {
    await rm(draft, { force: true })
  }
}

async function readHolder(pidFile: string): Promise<number | null> {
  const pid = Number.parseInt(await readFile(pidFile, 'utf8').catch(() => ''), 10)
  return Number.isInteger(pid) && pid > 0 ? pid : null
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
  const claimed = await claim(options)
  if (claimed !== true) {
    send({
      type: 'failed',
      code: 'IN_USE',
      message: `the embedded database in ${options.dataDir} is in use by ${claimed === null ? 'another process' : `process ${claimed}`}`,
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
    // With the folder claimed, any socket left here is a crashed run's.
    await rm(options.socketPath, { force: true })
    wire = await servePGlite(db, { path: options.socketPath })
  })()
  let stopping: Promise<void> | null = null
  const stop = () => {
    stopping ??= (async () => {
      // A failed start was already reported to the parent ('failed'): only wait for it to settle.
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
