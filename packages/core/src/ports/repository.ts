import type { Asset, Job, JobState, Output, Page, PageRequest } from '../model.ts'

/** A job as first written: `submitted`, progress 0, no attempts yet. */
export interface NewJob {
  id: string
  assetId: string
  engine: string
  idempotencyKey: string | null
  /** Fingerprint of what was asked for, to tell a retried request from a conflicting one. */
  requestHash: string
  outputs: Array<Pick<Output, 'name' | 'presetId' | 'storageKey' | 'contentType'>>
  createdAt: Date
}

/** A change to a job. Fields left out are left as they are. */
export interface JobPatch {
  state?: JobState
  progress?: number
  engineJobId?: string | null
  errorCode?: string | null
  errorMessage?: string | null
  /** Adds 1 to `attempts`. */
  incrementAttempts?: boolean
  outputs?: Array<{
    name: string
    state?: JobState
    size?: number | null
    durationSec?: number | null
    errorCode?: string | null
    errorMessage?: string | null
  }>
}

export interface ListJobsRequest extends PageRequest {
  assetId?: string
  state?: JobState
}

/**
 * Assets, jobs and outputs. The rules a repository enforces itself (so that they hold
 * across any number of processes):
 * - `createJob` with an idempotency key that exists returns the existing job
 *   (`created: false`): one key, one job, enforced by a unique constraint;
 * - `updateJob` never changes a job in a terminal state, never lowers `progress`, and never
 *   moves an output out of a terminal state; it sets `finishedAt` when the job becomes
 *   terminal;
 * - listings are newest first with a stable order (`createdAt`, then `id`).
 *
 * @example
 * const repository = memoryRepository()
 * const { job, created } = await repository.createJob(newJob)
 * await repository.updateJob(job.id, { state: 'progressing', progress: 10 })
 */
export interface Repository {
  createAsset(asset: Asset): Promise<void>
  getAsset(id: string): Promise<Asset | null>
  listAssets(request?: PageRequest): Promise<Page<Asset>>
  /** Deletes the asset with its jobs and outputs; `false` when it did not exist. */
  deleteAsset(id: string): Promise<boolean>

  createJob(job: NewJob): Promise<{ job: Job; created: boolean; requestHash: string }>
  getJob(id: string): Promise<Job | null>
  getJobByIdempotencyKey(key: string): Promise<Job | null>
  getJobByEngineJobId(engine: string, engineJobId: string): Promise<Job | null>
  listJobs(request?: ListJobsRequest): Promise<Page<Job>>

  /**
   * Applies `patch` under the rules above, atomically. Returns the job as it is afterwards
   * (unchanged if the rules refused the patch), or `null` if it does not exist.
   */
  updateJob(id: string, patch: JobPatch): Promise<Job | null>

  /** Optional: release what the repository created. */
  close?(): Promise<void>
}
