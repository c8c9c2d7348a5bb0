import { JOB_STATES, type Job, type JobState, type Page, type Repository } from '@transcodekit/core'
import type { DatabaseProbe } from '../config.ts'

/** `DATABASE_URL=memory://`: always answers; jobs are counted by reading their pages. */
export function memoryDatabaseProbe(repository: Repository): DatabaseProbe {
  return {
    ping: async () => {},
    async countJobsByState() {
      const counts = Object.fromEntries(JOB_STATES.map((state) => [state, 0])) as Record<
        JobState,
        number
      >
      for (const state of JOB_STATES) {
        let cursor: string | null = null
        do {
          const page: Page<Job> = await repository.listJobs({ state, limit: 100, cursor })
          counts[state] += page.items.length
          cursor = page.nextCursor
        } while (cursor)
      }
      return counts
    },
  }
}
