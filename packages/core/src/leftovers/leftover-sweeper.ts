import { createHash } from 'node:crypto'
import { readFileSync, readlinkSync } from 'node:fs'
import { lstat, readdir, readFile, rm } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join, resolve } from 'node:path'
import { ConfigurationError } from '../errors.ts'
import { consoleLogger } from '../logging/console-logger.ts'
import { errorText } from '../logging/error-text.ts'
import type { Logger } from '../ports/logger.ts'

/*
 * Temp files (upload spools, ffmpeg work folders, local storage's in-flight writes) carry the
 * tag of the process that made them in their names: `p<space>.<pid>.<start>`.
 *
 * - `space` names where a pid means something: on Linux, the kernel's boot id and the pid
 *   namespace (two containers on one host have two spaces); elsewhere, the host name.
 * - `start` is the process's start time (clock ticks after boot, from `/proc/<pid>/stat`), so a
 *   pid the kernel gave again to a newer process does not keep a dead one's files alive.
 *
 * A sweep removes what a process of its own space left when that process is gone, at once,
 * whatever the files' age: the kernel says who is alive, even after a `kill -9`. What comes
 * from another space (another machine sharing the folder over the network, another container)
 * cannot be checked that way, and is removed only once nothing in it has changed for
 * `staleMs` (a day by default, far longer than any write or job leaves its files untouched).
 *
 * Why not a lock per process: Node has no `flock`, and a lock file with a heartbeat needs a
 * timer in every process and still falls back on age. Why not the pid alone: pids repeat,
 * across restarts and across pid namespaces.
 */

/** The tag in a name, between dashes (or at its start). */
const TAG = /(?:^|-)p([0-9a-f]{8})\.(\d+)\.(\d+)-/

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'

/** Names this project's older versions used, untagged: work folders and upload spools. */
const UNTAGGED = new RegExp(`^(?:job-[A-Za-z0-9]{6}|${UUID}(?:\\.upload)?)$`)

const DAY_MS = 24 * 60 * 60 * 1000

interface Identity {
  space: string
  pid: number
  /** Start time in clock ticks after boot; 0 where it cannot be read. */
  start: number
  /** Whether `/proc` tells start times of other processes. */
  proc: boolean
}

let self: Identity | null = null

function identity(): Identity {
  if (self) return self
  const start = startTime(process.pid)
  let namespace = ''
  let boot = ''
  if (start !== null) {
    try {
      boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
      namespace = readlinkSync('/proc/self/ns/pid')
    } catch {}
  }
  const proc = start !== null && boot !== '' && namespace !== ''
  const where = proc ? `linux:${boot}:${namespace}` : `host:${hostname()}`
  self = {
    space: createHash('sha256').update(where).digest('hex').slice(0, 8),
    pid: process.pid,
    start: proc ? (start ?? 0) : 0,
    proc,
  }
  return self
}

/** Field 22 of `/proc/<pid>/stat`, or null when there is no such process (or no `/proc`). */
function startTime(pid: number): number | null {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return null
  }
  // The command name (field 2) is in parentheses and may hold spaces and parentheses.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  const value = Number(fields[19])
  return Number.isSafeInteger(value) ? value : null
}

async function startTimeAsync(pid: number): Promise<number | 'gone' | 'unknown'> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8')
    const value = Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[19])
    return Number.isSafeInteger(value) ? value : 'unknown'
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return 'unknown'
    // `/proc` mounted with `hidepid` hides other users' processes: ask the kernel too.
    return pidExists(pid) ? 'unknown' : 'gone'
  }
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}

/**
 * This process's tag, for the names of its temp files and folders: a sweep by any process of
 * the same machine removes them once this process is gone.
 *
 * @example
 * const spool = join(tmpDir, `${processTag()}-${randomUUID()}.upload`)
 * const work = await mkdtemp(join(tmpDir, `job-${processTag()}-`))
 */
export function processTag(): string {
  const { space, pid, start } = identity()
  return `p${space}.${pid}.${start}`
}

export interface LeftoverSweepOptions {
  /**
   * How long nothing in an entry must have changed before it is removed, when its owner
   * cannot be checked: an entry of another machine or pid namespace, or an untagged one.
   * @default 86_400_000 (24 hours)
   */
  staleMs?: number
  /**
   * Untagged names a sweep may remove (by age). Only the folder's owner knows what else it
   * holds: nothing outside this pattern or without a tag is ever touched.
   * @default upload spools (`<uuid>.upload`), work folders (`job-XXXXXX`) and `<uuid>`
   */
  untagged?: RegExp
  /** Where an entry that could not be read or removed is reported. @default consoleLogger() */
  logger?: Logger
}

interface ResolvedSweepOptions {
  staleMs: number
  untagged: RegExp
  logger: Logger
}

function resolveOptions(options: LeftoverSweepOptions): ResolvedSweepOptions {
  const resolved = {
    staleMs: options.staleMs ?? DAY_MS,
    untagged: options.untagged ?? UNTAGGED,
    logger: options.logger ?? consoleLogger(),
  }
  if (!Number.isFinite(resolved.staleMs) || resolved.staleMs < 0) {
    throw new ConfigurationError('sweepLeftovers: option "staleMs" must be 0 or more')
  }
  if (!(resolved.untagged instanceof RegExp)) {
    throw new ConfigurationError('sweepLeftovers: option "untagged" must be a RegExp')
  }
  return resolved
}

/**
 * Removes the entries of `folder` that belong to no live process: tagged by a process of
 * this machine (and pid namespace) that is gone, or untouched for `staleMs` when their owner
 * cannot be checked. Resolves with the names removed. Rejects only for bad options: an entry
 * it fails to read or remove is logged and left for the next sweep.
 */
export async function sweepLeftovers(
  folder: string,
  options: LeftoverSweepOptions = {},
): Promise<string[]> {
  const { staleMs, untagged, logger } = resolveOptions(options)
  const removed: string[] = []
  let names: string[]
  try {
    names = await readdir(folder)
  } catch {
    return removed
  }
  const me = identity()
  for (const name of names) {
    try {
      const tag = TAG.exec(name)
      let remove: boolean
      if (tag) {
        const owner = { space: tag[1]!, pid: Number(tag[2]), start: Number(tag[3]) }
        const verdict = owner.space === me.space ? await ownerAlive(owner, me) : 'unknown'
        remove =
          verdict === 'gone' ||
          (verdict === 'unknown' && (await untouchedFor(join(folder, name), staleMs)))
      } else {
        remove = untagged.test(name) && (await untouchedFor(join(folder, name), staleMs))
      }
      if (remove) {
        await rm(join(folder, name), { recursive: true, force: true })
        removed.push(name)
      }
    } catch (error) {
      // Gone meanwhile (its owner finished it): nothing to say. Anything else stays for the
      // next sweep, and is said.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        logger.warn(
          { folder, entry: name, error: errorText(error) },
          'transcodekit: could not sweep a leftover entry; the next sweep tries again',
        )
      }
    }
  }
  return removed
}

async function ownerAlive(
  owner: { pid: number; start: number },
  me: Identity,
): Promise<'alive' | 'gone' | 'unknown'> {
  if (owner.pid === me.pid && owner.start === me.start) return 'alive'
  if (me.proc) {
    const start = await startTimeAsync(owner.pid)
    if (start === 'unknown') return 'unknown'
    return start === owner.start ? 'alive' : 'gone'
  }
  return pidExists(owner.pid) ? 'alive' : 'gone'
}

/** Whether nothing in `path` (the entry, or anything under it) changed in the last `ms`. */
async function untouchedFor(path: string, ms: number): Promise<boolean> {
  const cutoff = Date.now() - ms
  const stats = await lstat(path)
  if (stats.mtimeMs >= cutoff) return false
  if (!stats.isDirectory()) return true
  for (const entry of await readdir(path, { recursive: true })) {
    const inner = await lstat(join(path, entry)).catch(() => null)
    if (inner && inner.mtimeMs >= cutoff) return false
  }
  return true
}

export interface LeftoverWatchOptions extends LeftoverSweepOptions {
  /** How often the folder is swept again. @default 600_000 (10 minutes) */
  intervalMs?: number
}

const watched = new Map<string, Promise<string[]>>()

/**
 * Sweeps `folder` now, and again every `intervalMs` while the process runs (the timer does
 * not keep the process alive; a sweep never overlaps the previous one). Each folder is
 * watched once per process, with the options of its first call; every call resolves with the
 * result of that first sweep.
 */
export function watchLeftovers(
  folder: string,
  options: LeftoverWatchOptions = {},
): Promise<string[]> {
  const path = resolve(folder)
  const known = watched.get(path)
  if (known) return known
  resolveOptions(options)
  const intervalMs = options.intervalMs ?? 10 * 60 * 1000
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
    throw new ConfigurationError('watchLeftovers: option "intervalMs" must be positive')
  }
  let running: Promise<unknown> = sweepLeftovers(path, options)
  watched.set(path, running as Promise<string[]>)
  setInterval(() => {
    running = running.then(() => sweepLeftovers(path, options))
  }, intervalMs).unref()
  return running as Promise<string[]>
}
