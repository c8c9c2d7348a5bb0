import { setTimeout as delay } from 'node:timers/promises'
import { isTerminal, type Job } from '../model.ts'
import type { JobEventHub } from './job-events.ts'
import { fingerprint } from './service-support.ts'

export interface WatchSources {
  events: JobEventHub
  /** The job as first seen; throws if the caller may not see it. */
  first: () => Promise<Job>
  /** Re-reads the job, for changes made by other processes. */
  read: (id: string) => Promise<Job | null>
  pollIntervalMs: number
}

/**
 * Yields a job now and whenever it changes, until it ends (the last value is terminal) or
 * `signal` aborts: changes made in this process as they happen, others by re-reading the job
 * every `pollIntervalMs`.
 */
export async function* watchJob(
  id: string,
  sources: WatchSources,
  outer?: AbortSignal,
): AsyncGenerator<Job> {
  const local = new AbortController()
  const signal = outer ? AbortSignal.any([outer, local.signal]) : local.signal
  // Listening before the first read, so that no change falls between the two; everything
  // after it sits in the `try`, so that the listener goes with `local.abort()` however the
  // watch ends (an unknown job, a consumer that stops after the first value).
  const changes = sources.events.changesOf(id, signal)
  // One read of `changes` stays pending across polls: a read per turn would leave one behind
  // each time the poll won, and those would swallow the next changes. It is rejected when
  // the watch ends, which is how a pending read ends: not an error.
  const nextChange = () => {
    const read = changes.next()
    read.catch(() => {})
    return read
  }
  try {
    let last = await sources.first()
    yield last
    let change = nextChange()
    while (!isTerminal(last.state)) {
      const tick = new AbortController()
      const woke = await Promise.race([
        change,
        delay(sources.pollIntervalMs, null, { signal: AbortSignal.any([signal, tick.signal]) }),
      ])
      // A change came first: stop this turn's timer, or it would read the job once more.
      tick.abort()
      let next: Job | null
      if (woke) {
        if (woke.done) return
        next = woke.value
        change = nextChange()
      } else {
        next = await sources.read(id)
      }
      if (!next) return
      if (
        next.updatedAt.getTime() >= last.updatedAt.getTime() &&
        fingerprint(next) !== fingerprint(last)
      ) {
        last = next
        yield last
      }
    }
  } catch (error) {
    if (signal.aborted) return
    throw error
  } finally {
    local.abort()
  }
}
