import { type ChildProcess, fork, type SpawnOptions, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { EngineError } from '../errors.ts'
import { consoleLogger } from '../logging/console-logger.ts'
import { isExecutable } from '../media/executable.ts'
import type { Logger } from '../ports/logger.ts'
import { LaunchedProcess } from './launched-process.ts'
import type { LauncherEvent, LauncherRequest } from './launcher-protocol.ts'
import { directSpawner, type SpawnedProcess, type Spawner } from './spawner.ts'

export interface ProcessLauncherOptions {
  /**
   * Node flags of the launcher process: it holds a few buffers of child output at most.
   * @default ['--max-old-space-size=32', '--max-semi-space-size=1']
   */
  execArgv?: string[]
  /** Where the launcher's death is told (its children fail with `ENGINE_UNAVAILABLE`). @default consoleLogger() */
  logger?: Logger
}

// The sources (`.ts`, in the workspace) fork the source, the build (`.js`, from npm) the build.
const LAUNCHER_ENTRY = fileURLToPath(
  new URL(
    import.meta.url.endsWith('.ts') ? './launcher-process.ts' : './launcher-process.js',
    import.meta.url,
  ),
)
const DEFAULT_EXEC_ARGV = ['--max-old-space-size=32', '--max-semi-space-size=1']

/**
 * Spawns processes through a small launcher process of its own rather than from this one.
 * Linux's fork(2) copies the page tables of the process that spawns, so each spawn from a
 * large server blocks its main thread for milliseconds (~7 ms at 400 MB); the launcher is a
 * bare Node script of ~40 MB that imports nothing of the app. It is started on the first
 * `spawn` and again after it dies; while no child runs it does not keep this process alive.
 *
 * Children behave as spawned directly: output streamed back, `kill` forwarded, exit code and
 * signal reported, real pids (for `/proc`). Children started with `setpriv --pdeathsig` die
 * with the launcher, and the launcher kills its children and exits when this process goes
 * away (its IPC channel closes, even on SIGKILL). If the launcher dies, the children it ran
 * are killed (SIGKILL) and fail with an `EngineError` `ENGINE_UNAVAILABLE`; nothing waits
 * forever. The next `spawn` starts a new launcher.
 */
export class ProcessLauncher {
  readonly #execArgv: string[]
  readonly #logger: Logger
  #launcher: ChildProcess | null = null
  readonly #children = new Map<number, LaunchedProcess>()
  #nextId = 1
  #closed = false

  constructor(options: ProcessLauncherOptions = {}) {
    this.#execArgv = options.execArgv ?? DEFAULT_EXEC_ARGV
    this.#logger = options.logger ?? consoleLogger()
  }

  /** The launcher's pid while it runs (for tests and diagnostics). */
  get pid(): number | undefined {
    return this.#launcher?.pid
  }

  /** A `Spawner` that spawns through this launcher. */
  readonly spawn: Spawner = (command, args): SpawnedProcess => {
    if (this.#closed) {
      return LaunchedProcess.failed(
        new EngineError('ENGINE_UNAVAILABLE', 'the process launcher is closed'),
      )
    }
    let launcher: ChildProcess
    try {
      launcher = this.#start()
    } catch (error) {
      return LaunchedProcess.failed(
        new EngineError('ENGINE_UNAVAILABLE', 'the process launcher could not be started', {
          cause: error,
        }),
      )
    }
    const id = this.#nextId++
    const child = new LaunchedProcess((signal) =>
      this.#send(launcher, { type: 'kill', id, signal }),
    )
    this.#children.set(id, child)
    if (this.#children.size === 1) ref(launcher, true)
    this.#send(launcher, { type: 'spawn', id, command, args: [...args] })
    return child
  }

  /** Stops the launcher; it kills the children still running. Later spawns fail. */
  close(): void {
    this.#closed = true
    this.#launcher?.kill('SIGTERM')
  }

  /**
   * This process exits: its children go now, not a moment later when the launcher sees the
   * channel close (someone may look for them as soon as this process is gone).
   */
  readonly #onExit = () => {
    for (const child of this.#children.values()) {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) continue
      try {
        process.kill(child.pid, 'SIGKILL')
      } catch {
        // Already gone.
      }
    }
    this.#launcher?.kill('SIGKILL')
  }

  #start(): ChildProcess {
    if (this.#launcher) return this.#launcher
    const typescript = (process.features as { typescript?: unknown }).typescript
    const stripTypes =
      LAUNCHER_ENTRY.endsWith('.ts') && !typescript ? ['--experimental-strip-types'] : []
    const node = [...this.#execArgv, ...stripTypes, LAUNCHER_ENTRY]
    const options = {
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    } satisfies SpawnOptions
    // With setpriv, the kernel sends the launcher SIGTERM the moment this process dies (even
    // by SIGKILL), and it kills its children; without it, it does so when it sees its channel
    // close, a moment later.
    const setpriv = setprivPath()
    const launcher = setpriv
      ? spawn(setpriv, ['--pdeathsig', 'TERM', '--', process.execPath, ...node], options)
      : fork(LAUNCHER_ENTRY, [], { ...options, execArgv: node.slice(0, -1) })
    this.#launcher = launcher
    launcher.on('message', (event: LauncherEvent) => this.#onEvent(event))
    process.on('exit', this.#onExit)
    let lost = false
    const onLost = (why: string, error?: unknown) => {
      if (lost) return
      lost = true
      process.off('exit', this.#onExit)
      if (this.#launcher === launcher) this.#launcher = null
      const children = [...this.#children.values()]
      this.#children.clear()
      if (!this.#closed || children.length > 0) {
        this.#logger.error(
          { pid: launcher.pid, why, children: children.length },
          'process launcher: it died; the processes it ran fail, the next one starts it again',
        )
      }
      for (const child of children) {
        // Orphaned now, unless `setpriv --pdeathsig` took them along: they would run on unwatched.
        if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
          try {
            process.kill(child.pid, 'SIGKILL')
          } catch {
            // Already gone.
          }
        }
        child.failed(
          new EngineError(
            'ENGINE_UNAVAILABLE',
            `the process launcher died (${why}) while the process ran`,
            error === undefined ? undefined : { cause: error },
          ),
        )
      }
    }
    launcher.once('error', (error) => onLost(error.message, error))
    launcher.once('exit', (code, signal) =>
      onLost(signal ? `signal ${signal}` : `exit code ${code}`),
    )
    ref(launcher, false)
    return launcher
  }

  #send(launcher: ChildProcess, request: LauncherRequest): void {
    if (!launcher.connected) return
    launcher.send(request, (error) => {
      // The launcher is gone: its `exit` fails the children.
      if (error) this.#logger.warn({ error: error.message }, 'process launcher: a message was lost')
    })
  }

  #onEvent(event: LauncherEvent): void {
    const child = this.#children.get(event.id)
    if (!child) return
    switch (event.type) {
      case 'spawn':
        child.spawned(event.pid)
        break
      case 'data':
        child.data(event.fd, event.chunk)
        break
      case 'exit':
        child.exited(event.code, event.signal)
        break
      case 'error':
        child.reportError(
          Object.assign(new Error(event.message), {
            code: event.code,
            errno: event.errno,
            syscall: event.syscall,
          }),
        )
        break
      case 'close':
        this.#children.delete(event.id)
        if (this.#children.size === 0 && this.#launcher) ref(this.#launcher, false)
        child.closed(event.code, event.signal)
        break
    }
  }
}

let setpriv: string | null | undefined

/** util-linux's `setpriv` on Linux, or null. */
function setprivPath(): string | null {
  setpriv ??=
    process.platform === 'linux'
      ? (['/usr/bin/setpriv', '/bin/setpriv'].find((path) => isExecutable(path)) ?? null)
      : null
  return setpriv
}

/** While no child runs, the launcher does not keep this process alive. */
function ref(launcher: ChildProcess, on: boolean): void {
  const channel = launcher.channel as { ref(): void; unref(): void } | null | undefined
  if (on) {
    launcher.ref()
    channel?.ref()
  } else {
    launcher.unref()
    channel?.unref()
  }
}

let shared: ProcessLauncher | null = null

/**
 * The spawner ffprobe and ffmpeg use unless given one: this process's shared launcher, or
 * `child_process.spawn` itself when `TRANSCODEKIT_SPAWN=direct`.
 */
export function defaultSpawner(): Spawner {
  if (process.env.TRANSCODEKIT_SPAWN === 'direct') return directSpawner
  shared ??= new ProcessLauncher()
  return shared.spawn
}
