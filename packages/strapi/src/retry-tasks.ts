import { consoleLogger, errorText, type Logger } from '@transcodekit/core'

export interface RetryPolicy {
  /** Delay before the second attempt; doubles with each failure. @default 1000 */
  initialDelayMs?: number
  /** Longest delay between two attempts. @default 60_000 */
  maxDelayMs?: number
  /** Attempts before giving up. @default 30 */
  maxAttempts?: number
}

export interface RetryTasksOptions extends RetryPolicy {
  /** Tasks of the `limited` lane running at once. @default 2 */
  concurrency?: number
  /** An error that retrying cannot fix (bad input): the task stops at once. */
  isPermanent?: (error: unknown) => boolean
  /** Called after each failed attempt that will be retried. */
  onRetry?: (key: string, error: unknown, attempt: number, delayMs: number) => void
  /** Called once when a task stops failing: a permanent error, or the last attempt. */
  onFailure?: (key: string, error: unknown, attempts: number) => void | Promise<void>
  /** Where a failure of `onFailure` itself is logged. @default core's consoleLogger() */
  logger?: Logger
}

export type Task = (signal: AbortSignal) => Promise<void>

interface Entry {
  controller: AbortController
  done: Promise<void>
}

/**
 * Background tasks, one per key, each retried with exponential backoff until it succeeds,
 * fails permanently or runs out of attempts. Lifecycle hooks push work here and return at
 * once, so the database write they run inside never waits for (or fails with) transcoding.
 */
export class RetryTasks {
  readonly #options: Required<Omit<RetryTasksOptions, 'onRetry' | 'onFailure'>> &
    Pick<RetryTasksOptions, 'onRetry' | 'onFailure'>
  readonly #tasks = new Map<string, Entry>()
  readonly #waiting: Array<() => void> = []
  #active = 0
  #closed = false

  constructor(options: RetryTasksOptions = {}) {
    this.#options = {
      initialDelayMs: options.initialDelayMs ?? 1000,
      maxDelayMs: options.maxDelayMs ?? 60_000,
      maxAttempts: options.maxAttempts ?? 30,
      concurrency: options.concurrency ?? 2,
      isPermanent: options.isPermanent ?? (() => false),
      onRetry: options.onRetry,
      onFailure: options.onFailure,
      logger: options.logger ?? consoleLogger(),
    }
  }

  /** Whether a task with this key is pending or running. */
  has(key: string): boolean {
    return this.#tasks.has(key)
  }

  /**
   * Starts `task` under `key` unless a task with that key is already there. `limited` tasks
   * (the heavy ones: reading and ingesting an original) share `concurrency` slots.
   */
  run(key: string, task: Task, options: { limited?: boolean } = {}): boolean {
    if (this.#closed || this.#tasks.has(key)) return false
    const controller = new AbortController()
    const entry: Entry = { controller, done: Promise.resolve() }
    this.#tasks.set(key, entry)
    entry.done = this.#loop(key, task, controller.signal, options.limited ?? false).finally(() => {
      if (this.#tasks.get(key) === entry) this.#tasks.delete(key)
    })
    return true
  }

  /** Stops the task under `key` (its signal aborts) and resolves once it has returned. */
  async cancel(key: string): Promise<void> {
    const entry = this.#tasks.get(key)
    if (!entry) return
    entry.controller.abort(new Error(`task ${key} was canceled`))
    await entry.done
  }

  /** Resolves once no task is pending or running. */
  async idle(): Promise<void> {
    while (this.#tasks.size > 0) {
      await Promise.all([...this.#tasks.values()].map((entry) => entry.done))
    }
  }

  /** Aborts every task and resolves once they have all returned. */
  async close(): Promise<void> {
    this.#closed = true
    for (const entry of this.#tasks.values()) entry.controller.abort(new Error('shutting down'))
    await this.idle()
  }

  async #loop(key: string, task: Task, signal: AbortSignal, limited: boolean): Promise<void> {
    const { initialDelayMs, maxDelayMs, maxAttempts, isPermanent } = this.#options
    for (let attempt = 1; ; attempt++) {
      try {
        if (limited) await this.#acquire(signal)
        try {
          await task(signal)
        } finally {
          if (limited) this.#release()
        }
        return
      } catch (error) {
        if (signal.aborted) return
        if (isPermanent(error) || attempt >= maxAttempts) {
          try {
            await this.#options.onFailure?.(key, error, attempt)
          } catch (failure) {
            this.#options.logger.error(
              { key, error: errorText(error), failure: errorText(failure) },
              'transcodekit: a task failed, and so did recording its failure',
            )
          }
          return
        }
        // Full jitter: processes that failed together do not retry together.
        const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** (attempt - 1))
        const delayMs = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2)
        this.#options.onRetry?.(key, error, attempt, delayMs)
        if (!(await sleep(delayMs, signal))) return
      }
    }
  }

  async #acquire(signal: AbortSignal): Promise<void> {
    if (this.#active < this.#options.concurrency) {
      this.#active++
      return
    }
    await new Promise<void>((resolve, reject) => {
      const wake = () => {
        signal.removeEventListener('abort', onAbort)
        this.#active++
        resolve()
      }
      const onAbort = () => {
        const index = this.#waiting.indexOf(wake)
        if (index >= 0) this.#waiting.splice(index, 1)
        reject(signal.reason)
      }
      this.#waiting.push(wake)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  #release(): void {
    this.#active--
    this.#waiting.shift()?.()
  }
}

/** Resolves `true` after `ms`, or `false` as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false)
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve(true)
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      resolve(false)
    }
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
