/**
 * Gathers the items added while a flush runs (or within the same turn of the event loop) into
 * one call of `flush`, so that a burst of sends costs one statement per batch instead of one
 * each, and a lone send waits for nothing (it is flushed at the end of its turn). Each `add`
 * gets its own result, or its own error: `flush` returns one outcome per item, in order.
 */
export class SendBatcher<T, R> {
  readonly #flush: (items: T[]) => Promise<Array<R | Error>>
  readonly #maxBatch: number
  #waiting: Array<{ item: T; resolve: (result: R) => void; reject: (error: unknown) => void }> = []
  #flushing = false
  #scheduled = false

  /** `maxBatch`: the most items one flush gets; more wait for the next. */
  constructor(flush: (items: T[]) => Promise<Array<R | Error>>, maxBatch: number) {
    this.#flush = flush
    this.#maxBatch = maxBatch
  }

  add(item: T): Promise<R> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ item, resolve, reject })
      this.#schedule()
    })
  }

  #schedule(): void {
    if (this.#flushing || this.#scheduled) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      void this.#run()
    })
  }

  async #run(): Promise<void> {
    if (this.#flushing || this.#waiting.length === 0) return
    this.#flushing = true
    const batch = this.#waiting.splice(0, this.#maxBatch)
    try {
      const outcomes = await this.#flush(batch.map((entry) => entry.item))
      batch.forEach((entry, i) => {
        const outcome = outcomes[i]
        if (outcome instanceof Error) entry.reject(outcome)
        else entry.resolve(outcome as R)
      })
    } catch (error) {
      for (const entry of batch) entry.reject(error)
    } finally {
      this.#flushing = false
      // What came in meanwhile is the next batch.
      if (this.#waiting.length > 0) this.#schedule()
    }
  }
}
