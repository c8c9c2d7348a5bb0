import type { JobState } from '../model.ts'

/**
 * What one process tells the others when it changes a job: small enough for a PostgreSQL
 * `NOTIFY` payload. A receiver that needs the whole job reads it from the repository.
 */
export interface JobChangeNotice {
  jobId: string
  state: JobState
  progress: number
  /** Which process sent it, so that a process can skip its own notices. */
  origin: string
}

/**
 * Carries job changes between the processes that share a repository (an API process and
 * separate workers), so that `service.subscribe`, `service.watch` and the event streams see
 * the progress and the end of jobs run elsewhere without waiting for a poll. Delivery is
 * best effort: a notice lost while a connection is down is made up by the watchers' poll.
 *
 * @example
 * const channel = pgJobEventChannel({ connectionString: process.env.DATABASE_URL })
 * const service = createTranscoder({ storage, engine, repository, jobEvents: channel })
 * // … at shutdown, after service.close()
 * await channel.close()
 */
export interface JobEventChannel {
  /** Sends a notice to every subscriber, in this process and the others. */
  publish(notice: JobChangeNotice): Promise<void>
  /** Calls `listener` with every notice published after this call; returns the unsubscribe. */
  subscribe(listener: (notice: JobChangeNotice) => void): () => void
  /** Resolves once notices published from now on reach this process's subscribers. */
  ready?(): Promise<void>
  /** Stops listening and releases what the channel opened. */
  close(): Promise<void>
}
