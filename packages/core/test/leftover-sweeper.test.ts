import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { processTag, sweepLeftovers, watchLeftovers } from '../src/index.ts'

const OWNER = join(import.meta.dirname, 'support', 'leftover-owner.ts')
const LINUX_PROC = existsSync('/proc/self/stat')
// A pid namespace of its own, as a container has (needs root or user namespaces).
const UNSHARE = ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child']
const canUnshare =
  LINUX_PROC &&
  spawnSync(UNSHARE[0]!, [...UNSHARE.slice(1), process.execPath, '-e', ''], { timeout: 10_000 })
    .status === 0

let folder: string
const children: ChildProcess[] = []

beforeEach(async () => {
  folder = await mkdtemp(join(tmpdir(), 'transcodekit-leftovers-'))
})
afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL')
  await rm(folder, { recursive: true, force: true })
})

/** Starts a process that leaves a work folder and a spool in `folder`, and waits for them. */
async function startOwner(prefix: string[] = []): Promise<{ child: ChildProcess; tag: string }> {
  const [command, ...args] = [...prefix, process.execPath, OWNER, folder] as [string, ...string[]]
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(child)
  const lines = createInterface({ input: child.stdout! })
  for await (const line of lines) return { child, tag: (JSON.parse(line) as { tag: string }).tag }
  throw new Error('the owner process printed nothing')
}

async function kill9(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
}

async function age(path: string, ms: number): Promise<void> {
  const then = new Date(Date.now() - ms)
  for (const entry of await readdir(path, { recursive: true }).catch(() => [])) {
    await utimes(join(path, entry), then, then)
  }
  await utimes(path, then, then)
}

describe('leftover sweeper', () => {
  it("keeps a live process's files through another process's sweep, removes them once it is killed -9", async () => {
    const a = await startOwner()
    const b = await startOwner()
    const left = (await readdir(folder)).sort()
    expect(left).toHaveLength(4)
    expect(left.every((name) => name.includes(a.tag) || name.includes(b.tag))).toBe(true)

    // This process sweeps: both owners live, nothing goes, however old the files are.
    await age(folder, 7 * 24 * 60 * 60 * 1000)
    expect(await sweepLeftovers(folder)).toEqual([])
    expect((await readdir(folder)).sort()).toEqual(left)

    await kill9(a.child)
    const removed = await sweepLeftovers(folder)
    expect(removed.sort()).toEqual(left.filter((name) => name.includes(a.tag)))
    // B's files are untouched, its spool and its partial output still whole.
    expect((await readdir(folder)).sort()).toEqual(left.filter((name) => name.includes(b.tag)))
    const work = (await readdir(folder)).find((name) => name.startsWith('job-'))!
    expect(await readdir(join(folder, work))).toEqual(['partial.wav'])

    await kill9(b.child)
    expect(await sweepLeftovers(folder)).toHaveLength(2)
    expect(await readdir(folder)).toEqual([])
  })

  it.runIf(LINUX_PROC)('does not take a reused pid for the dead process that had it', async () => {
    // This process's pid with another start time: a process that had this pid before.
    const [space, pid, start] = processTag().slice(1).split('.')
    const stale = `job-p${space}.${pid}.${Number(start) - 1}-AbC123`
    const mine = `job-${processTag()}-XyZ789`
    await mkdir(join(folder, stale))
    await mkdir(join(folder, mine))
    expect(await sweepLeftovers(folder)).toEqual([stale])
    expect(await readdir(folder)).toEqual([mine])
  })

  it.runIf(canUnshare)(
    'never takes a process of another pid namespace (a container) for dead; once gone, its files wait for staleMs',
    async () => {
      const other = await startOwner(UNSHARE)
      // Inside its namespace it is pid 1: here, that pid names another process, or none.
      expect(other.tag).toMatch(/^p[0-9a-f]{8}\.1\.\d+$/)
      expect(other.tag.split('.')[0]).not.toBe(processTag().split('.')[0])
      expect(await sweepLeftovers(folder, { staleMs: 60_000 })).toEqual([])
      expect(await readdir(folder)).toHaveLength(2)

      await kill9(other.child)
      expect(await sweepLeftovers(folder, { staleMs: 60_000 })).toEqual([])
      await age(folder, 120_000)
      expect(await sweepLeftovers(folder, { staleMs: 60_000 })).toHaveLength(2)
      expect(await readdir(folder)).toEqual([])
    },
  )

  it('removes what it cannot check (another machine, untagged) only once untouched for staleMs', async () => {
    const [space] = processTag().slice(1).split('.')
    const otherSpace = space === '00000000' ? '11111111' : '00000000'
    const foreign = `job-p${otherSpace}.1.1-AbC123`
    const foreignSpool = `p${otherSpace}.1.1-${randomUUID()}.upload`
    const legacyWork = 'job-Qw3rTy'
    const legacySpool = `${randomUUID()}.upload`
    const unknown = 'notes.txt'
    await mkdir(join(folder, foreign, 'out-0'), { recursive: true })
    await writeFile(join(folder, foreign, 'out-0', 'a.wav'), 'x')
    await writeFile(join(folder, foreignSpool), 'x')
    await mkdir(join(folder, legacyWork))
    await writeFile(join(folder, legacySpool), 'x')
    await writeFile(join(folder, unknown), 'x')

    // Fresh: all kept.
    expect(await sweepLeftovers(folder, { staleMs: 60_000 })).toEqual([])

    // Old, but a file deep inside the work folder was just written: the folder stays.
    await age(folder, 120_000)
    await writeFile(join(folder, foreign, 'out-0', 'a.wav'), 'more')
    expect((await sweepLeftovers(folder, { staleMs: 60_000 })).sort()).toEqual(
      [foreignSpool, legacySpool, legacyWork].sort(),
    )
    expect((await readdir(folder)).sort()).toEqual([foreign, unknown].sort())

    await age(join(folder, foreign), 120_000)
    expect(await sweepLeftovers(folder, { staleMs: 60_000 })).toEqual([foreign])
    // A name it does not know is never its to remove.
    expect(await readdir(folder)).toEqual([unknown])
  })

  it('watches a folder once per process: one sweep at start, shared by every caller', async () => {
    const a = await startOwner()
    await kill9(a.child)
    const first = watchLeftovers(folder)
    expect(watchLeftovers(join(folder, '.'))).toBe(first)
    expect(await first).toHaveLength(2)
    expect(await readdir(folder)).toEqual([])
  })

  it('sweeps a watched folder again every intervalMs', async () => {
    expect(await watchLeftovers(folder, { intervalMs: 100 })).toEqual([])
    const a = await startOwner()
    await kill9(a.child)
    expect(await readdir(folder)).toHaveLength(2)
    // No call: the periodic sweep finds the dead process's files.
    for (let i = 0; i < 100 && (await readdir(folder)).length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(await readdir(folder)).toEqual([])
  })

  it('refuses bad options by name', async () => {
    await expect(sweepLeftovers(folder, { staleMs: -1 })).rejects.toThrow(/staleMs/)
    expect(() => watchLeftovers(join(folder, 'x'), { intervalMs: 0 })).toThrow(/intervalMs/)
  })
})

// A real failure to remove: a read-only file system (a tmpfs remounted read-only; needs root).
const mountProbe = mkdtempSync(join(tmpdir(), 'transcodekit-mount-probe-'))
const canMount =
  process.platform === 'linux' &&
  spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mountProbe], { timeout: 10_000 })
    .status === 0 &&
  spawnSync('umount', [mountProbe]).status === 0
rmSync(mountProbe, { recursive: true, force: true })

describe.skipIf(!canMount)('leftover sweeper on a read-only file system', () => {
  it('logs an entry it cannot remove, with its folder and name, and keeps sweeping', async () => {
    const disk = join(folder, 'disk')
    await mkdir(disk)
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', disk]).status).toBe(0)
    try {
      await mkdir(join(disk, 'job-AbC123'))
      await writeFile(join(disk, 'job-AbC123', 'part.wav'), 'x')
      await age(join(disk, 'job-AbC123'), 2 * 24 * 3600 * 1000)
      expect(spawnSync('mount', ['-o', 'remount,ro', disk]).status).toBe(0)
      const lines: unknown[][] = []
      const log = (...args: unknown[]) => lines.push(args)
      const removed = await sweepLeftovers(disk, { logger: { info: log, warn: log, error: log } })
      expect(removed).toEqual([])
      expect(lines).toHaveLength(1)
      expect(lines[0]![0]).toMatchObject({ folder: disk, entry: 'job-AbC123' })
      expect(String((lines[0]![0] as { error: string }).error)).toMatch(/read-only/i)
    } finally {
      spawnSync('umount', [disk])
    }
  })
})
