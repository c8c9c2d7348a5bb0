import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, describe, expect, it } from 'vitest'
import {
  AbortedError,
  directSpawner,
  EngineError,
  ProcessFailedError,
  ProcessLauncher,
  runProcess,
  type SpawnedProcess,
} from '../src/index.ts'

const OWNER = join(import.meta.dirname, 'support', 'launcher-owner.ts')
const launcher = new ProcessLauncher()
afterAll(() => launcher.close())

interface Ended {
  stdout: string
  stderr: string
  code: number | null
  signal: NodeJS.Signals | null
}

function ended(child: SpawnedProcess): Promise<Ended> {
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({ stdout, stderr, code, signal }))
  })
}

function spawned(child: SpawnedProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('spawn', () => resolve(child.pid as number))
  })
}

/** Whether `pid` is a live process (a zombie is not). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
    return state !== 'Z' && state !== 'X'
  } catch {
    return false
  }
}

describe('ProcessLauncher', () => {
  it('runs a child in another process and streams its output, exit code and signal back', async () => {
    const child = launcher.spawn('sh', ['-c', 'echo "out $PPID"; echo err >&2; exit 3'])
    const result = await ended(child)
    expect(result.code).toBe(3)
    expect(result.signal).toBeNull()
    expect(result.stderr).toBe('err\n')
    // Its parent is the launcher, not this process.
    expect(result.stdout).toBe(`out ${launcher.pid}\n`)
    expect(launcher.pid).not.toBe(process.pid)
    expect(child.exitCode).toBe(3)
  })

  it('delivers large output whole and in order', async () => {
    const child = launcher.spawn('sh', ['-c', 'seq 1 200000'])
    const result = await ended(child)
    expect(result.code).toBe(0)
    const lines = result.stdout.trimEnd().split('\n')
    expect(lines).toHaveLength(200_000)
    expect(lines[0]).toBe('1')
    expect(lines.at(-1)).toBe('200000')
  })

  it('forwards kill signals to the child, whose pid is real', async () => {
    const child = launcher.spawn('sleep', ['300'])
    const pid = await spawned(child)
    expect(running(pid)).toBe(true)
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]).toBe('sleep')
    const result = ended(child)
    expect(child.kill('SIGTERM')).toBe(true)
    expect(await result).toMatchObject({ code: null, signal: 'SIGTERM' })
    expect(child.signalCode).toBe('SIGTERM')
    expect(child.kill('SIGKILL')).toBe(false)
  })

  it('reports a command that cannot start as an error with its errno code', async () => {
    const child = launcher.spawn('/nonexistent/ffprobe', [])
    await expect(ended(child)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('fails the running children when the launcher dies, kills them, and starts again', async () => {
    const child = launcher.spawn('sleep', ['300'])
    const pid = await spawned(child)
    const first = launcher.pid as number
    const result = ended(child)
    process.kill(first, 'SIGKILL')
    const error = await result.then(
      () => null,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(EngineError)
    expect(error).toMatchObject({ code: 'ENGINE_UNAVAILABLE' })
    expect((error as Error).message).toMatch(/launcher died/)
    await expect.poll(() => running(pid)).toBe(false)
    // The next spawn starts a new launcher.
    const again = await ended(launcher.spawn('echo', ['again']))
    expect(again).toMatchObject({ code: 0, stdout: 'again\n' })
    expect(launcher.pid).toBeDefined()
    expect(launcher.pid).not.toBe(first)
  })

  it('is small: it imports nothing of the app', async () => {
    await ended(launcher.spawn('true', []))
    const status = readFileSync(`/proc/${launcher.pid}/status`, 'utf8')
    const rssKb = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1])
    expect(rssKb).toBeGreaterThan(0)
    expect(rssKb).toBeLessThan(100 * 1024)
  })

  for (const how of ['is killed', 'exits'] as const) {
    it(`dies when the process that started it ${how}, and takes its children along`, async () => {
      const args = how === 'exits' ? [OWNER, 'exit'] : [OWNER]
      const owner = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
      const exited = new Promise((resolve) => owner.once('exit', resolve))
      const [line] = await createInterface({ input: owner.stdout })
        [Symbol.asyncIterator]()
        .next()
        .then((r) => [r.value as string])
      const pids = JSON.parse(line as string) as { launcher: number; child: number }
      if (how === 'is killed') {
        expect(running(pids.launcher)).toBe(true)
        expect(running(pids.child)).toBe(true)
        owner.kill('SIGKILL')
      }
      await exited
      await expect.poll(() => running(pids.launcher)).toBe(false)
      await expect.poll(() => running(pids.child)).toBe(false)
    })
  }
})

describe('runProcess', () => {
  for (const [name, spawner] of [
    ['through the launcher', launcher.spawn],
    ['directly', directSpawner],
  ] as const) {
    it(`collects the output of a process run ${name}`, async () => {
      await expect(
        runProcess('sh', ['-c', 'echo hello; echo note >&2'], { spawner }),
      ).resolves.toEqual({ stdout: 'hello\n', stderr: 'note\n' })
    })

    it(`rejects a non-zero exit with its code and stderr (${name})`, async () => {
      const error = await runProcess('sh', ['-c', 'echo bad >&2; exit 4'], { spawner }).catch(
        (e: unknown) => e,
      )
      expect(error).toBeInstanceOf(ProcessFailedError)
      expect(error).toMatchObject({ exitCode: 4, stderr: 'bad\n' })
    })

    it(`kills with SIGKILL a process that ignores SIGTERM past its time limit (${name})`, async () => {
      // The shell ignores SIGTERM; only SIGKILL ends it before its 300 s.
      const error = await runProcess('sh', ['-c', 'trap "" TERM; exec sleep 300'], {
        spawner,
        timeoutMs: 300,
      }).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(ProcessFailedError)
      expect((error as Error).message).toMatch(/ran longer than 300 ms/)
    })

    it(`kills a process that prints more than its output cap (${name})`, async () => {
      const error = await runProcess('yes', [], { spawner, maxOutputBytes: 64 * 1024 }).catch(
        (e: unknown) => e,
      )
      expect(error).toBeInstanceOf(ProcessFailedError)
      expect((error as Error).message).toMatch(/more than 65536 bytes/)
    })

    it(`rejects with AbortedError when its signal aborts (${name})`, async () => {
      const controller = new AbortController()
      const run = runProcess('sleep', ['300'], { spawner, signal: controller.signal })
      setImmediate(() => controller.abort())
      await expect(run).rejects.toBeInstanceOf(AbortedError)
    })
  }
})
