import { JOB_STATES, type JobState } from '@transcodekit/core'
import { type Kysely, sql } from 'kysely'
import type { TranscodekitDatabase } from './database-tables.ts'
import { resolveSchema } from './kysely-migrations.ts'

/**
 * How many jobs are in each state, for metrics: one `GROUP BY` served by the jobs' state
 * index. Every state is present, 0 when no job is in it.
 */
export async function countJobsByState(
  db: Kysely<any>,
  options: { schema?: string } = {},
): Promise<Record<JobState, number>> {
  const rows = await (db as Kysely<TranscodekitDatabase>)
    .withSchema(resolveSchema(options.schema))
    .selectFrom('jobs')
    .select(['state', sql<string>`count(*)`.as('count')])
    .groupBy('state')
    .execute()
  const counts = Object.fromEntries(JOB_STATES.map((state) => [state, 0])) as Record<
    JobState,
    number
  >
  for (const row of rows) counts[row.state as JobState] = Number(row.count)
  return counts
}

/** Runs `SELECT 1`: whether the database answers, for a readiness check. */
export async function pingDatabase(db: Kysely<any>): Promise<void> {
  await sql`select 1`.execute(db)
}
