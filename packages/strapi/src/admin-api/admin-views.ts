import {
  InvalidRequestError,
  JOB_STATES,
  type Job,
  type JobState,
  NotFoundError,
} from '@transcodekit/core'
import { CMS_OWNER, type RecordedOutput, type TranscodeRecord } from '../lifecycle-adapter.ts'
import type { TranscodekitStrapiService } from '../strapi-plugin.ts'

/** A job as the admin panel shows it. */
export interface AdminJob {
  id: string
  /** The media entry the job transcodes, or `null` when it cannot be traced to one. */
  fileId: string | null
  state: JobState
  progress: number
  attempts: number
  error: { code: string; message: string } | null
  outputs: RecordedOutput[]
  createdAt: string
  updatedAt: string
  finishedAt: string | null
}

/** A media entry and its transcoding, for the per-file view. */
export interface AdminFile {
  file: { id: number; name: string; mime: string; url: string | null }
  /** What is recorded on the entry (a submission that failed before any job has no job). */
  record: TranscodeRecord | null
  job: AdminJob | null
}

/** Only the CMS's own jobs: a service shared with another app never shows that app's jobs. */
export const ADMIN_SCOPE = { owner: CMS_OWNER }

/** Retries of retries are followed back this far to find a job's media entry. */
const MAX_RETRY_HOPS = 20
const ID = /^[A-Za-z0-9_-]{1,100}$/
const FILE_ID = /^[1-9]\d{0,14}$/
const MAX_CURSOR = 512

export function jobIdParam(value: unknown): string {
  if (typeof value !== 'string' || !ID.test(value))
    throw new InvalidRequestError('INVALID_REQUEST', 'the job id is malformed')
  return value
}

export function fileIdParam(value: unknown): number {
  if (typeof value !== 'string' || !FILE_ID.test(value))
    throw new InvalidRequestError('INVALID_REQUEST', 'the file id must be a positive integer')
  return Number(value)
}

/** `?state=&cursor=&limit=` of the job listing, checked and bounded. */
export function listQuery(query: Record<string, unknown>): {
  state?: JobState
  cursor: string | null
  limit: number
} {
  const { state, cursor, limit } = query
  if (state !== undefined && !JOB_STATES.includes(state as JobState))
    throw new InvalidRequestError(
      'INVALID_REQUEST',
      `state must be one of ${JOB_STATES.join(', ')}`,
    )
  if (cursor !== undefined && (typeof cursor !== 'string' || cursor.length > MAX_CURSOR))
    throw new InvalidRequestError(
      'INVALID_REQUEST',
      `cursor must be at most ${MAX_CURSOR} characters`,
    )
  const size = limit === undefined ? 20 : Number(limit)
  if (!Number.isInteger(size) || size < 1 || size > 100)
    throw new InvalidRequestError('INVALID_REQUEST', 'limit must be an integer from 1 to 100')
  return {
    ...(state ? { state: state as JobState } : {}),
    cursor: typeof cursor === 'string' && cursor ? cursor : null,
    limit: size,
  }
}

/**
 * The media entry a job belongs to: its idempotency key names it (`<keyPrefix><fileId>`), and
 * a retry's key (`retry:<jobId>`) names the job it retried.
 */
export async function fileOf(plugin: TranscodekitStrapiService, job: Job): Promise<string | null> {
  let key = job.idempotencyKey
  for (let hop = 0; key && hop < MAX_RETRY_HOPS; hop++) {
    if (key.startsWith(plugin.keyPrefix)) return key.slice(plugin.keyPrefix.length).split(':')[0]!
    if (!key.startsWith('retry:')) return null
    const previous = await plugin.service
      .getJob(key.slice('retry:'.length), ADMIN_SCOPE)
      .catch((error: unknown) => {
        if (error instanceof NotFoundError) return null
        throw error
      })
    key = previous?.idempotencyKey ?? null
  }
  return null
}

export async function adminJob(plugin: TranscodekitStrapiService, job: Job): Promise<AdminJob> {
  const described = await plugin.adapter.describe(job)
  return {
    id: job.id,
    fileId: await fileOf(plugin, job),
    state: job.state,
    progress: job.progress,
    attempts: job.attempts,
    error: described.error,
    outputs: described.outputs,
    createdAt: job.createdAt.toISOString(),
    updatedAt: job.updatedAt.toISOString(),
    finishedAt: job.finishedAt?.toISOString() ?? null,
  }
}
