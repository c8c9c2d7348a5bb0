import { AbortedError, TranscodeKitError } from '../errors.ts'
import { directSpawner, type Spawner } from './spawner.ts'

export interface RunProcessOptions {
  /** Kills the process (SIGKILL) and rejects with `AbortedError`. */
  signal?: AbortSignal
  /** Kills the process (SIGKILL) past this long. @default Infinity */
  timeoutMs?: number
  /** Kills the process (SIGKILL) once stdout or stderr holds more bytes than this. @default 8 MiB */
  maxOutputBytes?: number
  /** How the process is started. @default directSpawner */
  spawner?: Spawner
}

/** Why a process run by `runProcess` failed; `stderr` is what it printed. */
export class ProcessFailedError extends Error {
  readonly exitCode: number | null
  readonly signal: NodeJS.Signals | null
  readonly stderr: string

  constructor(
    message: string,
    details: { exitCode?: number | null; signal?: NodeJS.Signals | null; stderr?: string },
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = 'ProcessFailedError'
    this.exitCode = details.exitCode ?? null
    this.signal = details.signal ?? null
    this.stderr = details.stderr ?? ''
  }
}

/**
 * Runs a process to its end and collects its output, as `execFile` does: resolves when it
 * exits with code 0; rejects with `ProcessFailedError` when it cannot start, exits otherwise,
 * runs past `timeoutMs` or prints more than `maxOutputBytes` (those are killed with SIGKILL,
 * which nothing can ignore), and with `AbortedError` when `signal` aborts.
 */
export function runProcess(
  command: string,
  args: readonly string[],
  options: RunProcessOptions = {},
): Promise<{ stdout: string; stderr: string }> {
  const { signal, timeoutMs = Number.POSITIVE_INFINITY, spawner = directSpawner } = options
  const maxBytes = options.maxOutputBytes ?? 8 * 1024 * 1024
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new AbortedError('the process was not started: aborted', { cause: signal.reason }))
      return
    }
    const child = spawner(command, args)
    const out: Buffer[] = []
    const err: Buffer[] = []
    const size = { out: 0, err: 0 }
    let stopped: Error | null = null
    let settled = false
    const stop = (why: Error) => {
      stopped ??= why
      child.kill('SIGKILL')
    }
    const onAbort = () =>
      stop(new AbortedError('the process was aborted', { cause: signal?.reason }))
    signal?.addEventListener('abort', onAbort, { once: true })
    const timer = Number.isFinite(timeoutMs)
      ? setTimeout(
          () => stop(new ProcessFailedError(`${command} ran longer than ${timeoutMs} ms`, {})),
          timeoutMs,
        )
      : undefined
    const settle = (error: Error | null) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      if (error) reject(error)
      else resolve({ stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() })
    }
    const collect = (into: Buffer[], key: 'out' | 'err') => (chunk: Buffer) => {
      size[key] += chunk.length
      if (size[key] > maxBytes) {
        stop(new ProcessFailedError(`${command} printed more than ${maxBytes} bytes`, {}))
        return
      }
      into.push(chunk)
    }
    child.stdout.on('data', collect(out, 'out'))
    child.stderr.on('data', collect(err, 'err'))
    // Started, if only to be killed at once: the abort may have come while it started.
    child.once('spawn', () => {
      if (stopped) child.kill('SIGKILL')
    })
    child.once('error', (error: Error) => {
      settle(
        stopped ??
          (error instanceof TranscodeKitError
            ? error
            : new ProcessFailedError(
                `${command} could not be run: ${error.message}`,
                {},
                {
                  cause: error,
                },
              )),
      )
    })
    // Killed by us: done once it exits, even if a process it started still holds its output open.
    child.once('exit', () => {
      if (stopped) settle(stopped)
    })
    child.once('close', (exitCode: number | null, exitSignal: NodeJS.Signals | null) => {
      const stderr = Buffer.concat(err).toString()
      if (stopped) settle(stopped)
      else if (exitCode === 0) settle(null)
      else
        settle(
          new ProcessFailedError(
            `${command} failed (${exitSignal ? `signal ${exitSignal}` : `exit code ${exitCode}`})`,
            { exitCode, signal: exitSignal, stderr },
          ),
        )
    })
  })
}
