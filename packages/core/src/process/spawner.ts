import { spawn } from 'node:child_process'
import type { EventEmitter } from 'node:events'
import type { Readable } from 'node:stream'
import { LaunchedProcess } from './launched-process.ts'

/**
 * A started child process, as the engine and the probe use it: the part of Node's
 * `ChildProcess` they need, so that a process spawned directly and one spawned by the
 * launcher look the same. Events: `spawn`, `error` (it could not start, or was lost),
 * `exit` (code, signal) and `close` (code, signal; after its output has been delivered).
 */
export interface SpawnedProcess extends EventEmitter {
  /** The child's pid once it runs (a real pid on this machine: `/proc/<pid>` describes it). */
  readonly pid?: number | undefined
  readonly exitCode: number | null
  readonly signalCode: NodeJS.Signals | null
  readonly stdout: Readable
  readonly stderr: Readable
  /** Sends `signal` (default SIGTERM); false when the child is not running. */
  kill(signal?: NodeJS.Signals): boolean
}

/**
 * Starts `command` with `args`: stdin ignored, stdout and stderr piped. Never throws: a child
 * that cannot start emits `error`.
 */
export type Spawner = (command: string, args: readonly string[]) => SpawnedProcess

/** Spawns from this process, with `child_process.spawn`. */
export const directSpawner: Spawner = (command, args) => {
  try {
    return spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (error) {
    // Bad arguments (a NUL byte in a path) throw synchronously: report them as an `error`.
    return LaunchedProcess.failed(error)
  }
}
