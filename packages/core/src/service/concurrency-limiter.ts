/**
 * Runs at most `limit` tasks at once; the others wait their turn, first come first served.
 * A dozen lines rather than `p-limit`: the service needs only this, plus giving up the wait
 * when the caller's signal aborts, and it keeps the lockfile untouched.
 */
export class ConcurrencyLimiter {
  readonly #limit: number
  #active = 0
  readonly #waiting: Array<() => void> = []

  constructor(limit: number) {
    this.#limit = limit
  }

  async run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.#active >= this.#limit) await this.#turn(signal)
    else this.#active++
    try {
      return await task()
    } finally {
      const next = this.#waiting.shift()
      // The slot passes straight to the next waiter, so `#active` stays counted.
      if (next) next()
      else this.#active--
    }
  }

  #turn(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted()
    return new Promise<void>((resolve, reject) => {
      const take = () => {
        signal?.removeEventListener('abort', abort)
        resolve()
      }
      const abort = () => {
        const at = this.#waiting.indexOf(take)
        if (at !== -1) this.#waiting.splice(at, 1)
        reject(signal?.reason)
      }
      this.#waiting.push(take)
      signal?.addEventListener('abort', abort, { once: true })
    })
  }
}
