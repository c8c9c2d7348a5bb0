import { AbortedError } from '../errors.ts'

/** Runs one item; `run` is 1 for its first run, 2 for the first rerun, and so on. */
export type ScheduledRun<T> = (
  item: T,
  context: { signal: AbortSignal; run: number },
) => Promise<void>

export interface MemorySchedulerOptions<T> {
  /** What makes two items the same: an item whose key is waiting or running is not added. */
  key(item: T): string
  /** Runs after the first for an item whose run throws (validated by the caller). */
  retryLimit: number
  /** Wait before the first rerun; doubled for each further one (validated by the caller). */
  retryDelayMs: number
  /** Told about an item dropped after its last run. */
  onDrop(error: unknown, item: T, run: number): void
  /** Why a running item is aborted by `close()`. */
  closingMessage: string
}

interface Scheduled<T> {
  item: T
  run: number
}

/**
 * The in-memory scheduling loop behind the in-process queues: items wait (now or after a
 * delay), run up to `concurrency` at a time, are run again with a doubling delay when they
 * throw, and are aborted by `close()`. Nothing survives a restart.
 */
export class MemoryScheduler<T> {
  readonly #options: MemorySchedulerOptions<T>
  #runner: ScheduledRun<T> | null = null
  #concurrency = 1
  #closed = false
  readonly #ready: Array<Scheduled<T>> = []
  /** Keys of the items waiting, waiting for a rerun, or running. */
  readonly #known = new Set<string>()
  readonly #running = new Map<Scheduled<T>, { controller: AbortController; done: Promise<void> }>()
  readonly #timers = new Set<ReturnType<typeof setTimeout>>()
  #idleWaiters: Array<() => void> = []

  constructor(options: MemorySchedulerOptions<T>) {
    this.#options = options
  }

  get closed(): boolean {
    return this.#closed
  }

  get hasRunner(): boolean {
    return this.#runner !== null
  }

  /** Adds an item unless one with its key is waiting or running; runs it after `delayMs`. */
  add(item: T, delayMs = 0): void {
    const key = this.#options.key(item)
    if (this.#known.has(key)) return
    this.#known.add(key)
    const scheduled = { item, run: 1 }
    if (delayMs > 0) {
      this.#later(scheduled, delayMs)
    } else {
      this.#ready.push(scheduled)
      this.#pump()
    }
  }

  /** Starts running items with `runner`, at most `concurrency` at a time. */
  start(runner: ScheduledRun<T>, concurrency: number): void {
    this.#runner = runner
    this.#concurrency = concurrency
    this.#pump()
  }

  depth(): { waiting: number; running: number } {
    return { waiting: this.#ready.length + this.#timers.size, running: this.#running.size }
  }

  /** Resolves once nothing is waiting, waiting for a rerun, or running. */
  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve()
    return new Promise((resolve) => this.#idleWaiters.push(resolve))
  }

  /** Drops what waits, aborts what runs and waits for it to end. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true
      for (const timer of this.#timers) clearTimeout(timer)
      this.#timers.clear()
      this.#ready.length = 0
      for (const { controller } of this.#running.values()) {
        controller.abort(new AbortedError(this.#options.closingMessage))
      }
    }
    await Promise.all([...this.#running.values()].map(({ done }) => done))
    this.#known.clear()
    this.#notifyIdle()
  }

  /** Waits on a timer (even for 0 ms: a rerun never starts inside the run that failed). */
  #later(scheduled: Scheduled<T>, delayMs: number): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer)
      if (this.#closed) return
      this.#ready.push(scheduled)
      this.#pump()
    }, delayMs)
    this.#timers.add(timer)
  }

  #pump(): void {
    while (
      this.#runner &&
      !this.#closed &&
      this.#running.size < this.#concurrency &&
      this.#ready.length > 0
    ) {
      this.#run(this.#ready.shift()!, this.#runner)
    }
    this.#notifyIdle()
  }

  #run(scheduled: Scheduled<T>, runner: ScheduledRun<T>): void {
    const controller = new AbortController()
    const { item, run } = scheduled
    const key = this.#options.key(item)
    const execute = async () => {
      try {
        await runner(item, { signal: controller.signal, run })
        this.#known.delete(key)
      } catch (error) {
        // Stopped by close(): not a failure of the item, and nothing runs any more.
        if (this.#closed) return
        if (run <= this.#options.retryLimit) {
          this.#later({ item, run: run + 1 }, this.#options.retryDelayMs * 2 ** (run - 1))
        } else {
          this.#known.delete(key)
          this.#options.onDrop(error, item, run)
        }
      } finally {
        this.#running.delete(scheduled)
        this.#pump()
      }
    }
    // In the map before the run starts: a runner that throws at once still finds it there.
    const entry = { controller, done: Promise.resolve() }
    this.#running.set(scheduled, entry)
    entry.done = execute()
  }

  #isIdle(): boolean {
    return this.#ready.length === 0 && this.#running.size === 0 && this.#timers.size === 0
  }

  #notifyIdle(): void {
    if (!this.#isIdle() || this.#idleWaiters.length === 0) return
    const waiters = this.#idleWaiters
    this.#idleWaiters = []
    for (const resolve of waiters) resolve()
  }
}
