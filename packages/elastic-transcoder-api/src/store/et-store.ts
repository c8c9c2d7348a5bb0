import type { Owner } from '@transcodekit/core'

/** A job's or an output's status, as Elastic Transcoder spells it. */
export type EtStatus = 'Submitted' | 'Progressing' | 'Complete' | 'Canceled' | 'Error'

export const ET_STATUSES: readonly EtStatus[] = [
  'Submitted',
  'Progressing',
  'Complete',
  'Canceled',
  'Error',
]

export const ET_TERMINAL: readonly EtStatus[] = ['Complete', 'Canceled', 'Error']

/** The SNS topic ARN (or, where allowed, the HTTP URL) told of each event; `''` for none. */
export interface EtNotifications {
  Progressing: string
  Completed: string
  Warning: string
  Error: string
}

export interface EtPipelineRecord {
  /** `<13 digits>-<6 characters>`, as Elastic Transcoder makes them. */
  id: string
  owner: Owner
  name: string
  status: 'Active' | 'Paused'
  inputBucket: string
  outputBucket: string
  role: string
  awsKmsKeyArn: string | null
  notifications: EtNotifications
  createdAt: Date
}

export interface EtOutputRecord {
  /** `1`, `2`, …: the output's place in the job, as Elastic Transcoder numbers them. */
  id: string
  /** The key under `outputKeyPrefix`, as the client sent it. */
  key: string
  /** The preset id exactly as the client sent it. */
  presetId: string
  /** The canonical preset of the core catalog that runs it. */
  corePresetId: string
  segmentDuration: string | null
  status: EtStatus
  statusDetail: string | null
  durationSec: number | null
  durationMillis: number | null
  width: number | null
  height: number | null
  fileSize: number | null
}

export interface EtJobRecord {
  id: string
  owner: Owner
  pipelineId: string
  /** The core job that runs it, once created. */
  coreJobId: string | null
  /** The `Input` object as the client sent it (its `Key` and `auto` fields). */
  input: { Key: string } & Record<string, unknown>
  outputKeyPrefix: string
  outputs: EtOutputRecord[]
  playlists: unknown[]
  userMetadata: Record<string, string> | null
  status: EtStatus
  submittedAt: Date
  startedAt: Date | null
  finishedAt: Date | null
}

/** A change to a job; fields left out stay as they are. */
export type EtJobPatch = Partial<
  Pick<EtJobRecord, 'coreJobId' | 'outputs' | 'status' | 'startedAt' | 'finishedAt'>
>

/** Which page of a listing: newest first unless `ascending`, after the id `after`. */
export interface EtListRequest {
  owner: Owner
  ascending: boolean
  /** The id of the last item of the previous page. */
  after: string | null
  limit: number
}

export interface EtPage<T> {
  items: T[]
  /** The id to pass as `after` for the next page; `null` on the last page. */
  next: string | null
}

/**
 * Where the Elastic Transcoder API keeps its pipelines and the ET side of its jobs (the core
 * job keeps the media side). Every lookup but `getJobById` is scoped to an owner: another
 * owner's record is absent. Rules a store enforces itself, so they hold across processes:
 * - a job in a terminal status (`Complete`, `Canceled`, `Error`) never changes again;
 * - `updateJob` with `onlyIf` changes the job only while its status is one of those
 *   (a cancel that races a start: one of them wins);
 * - `claimDelivery` is true for exactly one caller per job.
 *
 * @example
 * const store = memoryEtStore()
 * await store.createPipeline(pipeline)
 * const { items, next } = await store.listPipelines({ owner, ascending: true, after: null, limit: 50 })
 */
export interface EtStore {
  createPipeline(pipeline: EtPipelineRecord): Promise<void>
  getPipeline(id: string, owner: Owner): Promise<EtPipelineRecord | null>
  listPipelines(request: EtListRequest): Promise<EtPage<EtPipelineRecord>>
  updatePipeline(
    id: string,
    owner: Owner,
    patch: Partial<Omit<EtPipelineRecord, 'id' | 'owner' | 'createdAt'>>,
  ): Promise<EtPipelineRecord | null>
  /** Removes a pipeline that has no unfinished job: `'in-use'` when it has one. */
  deletePipeline(id: string, owner: Owner): Promise<'deleted' | 'missing' | 'in-use'>

  createJob(job: EtJobRecord): Promise<void>
  getJob(id: string, owner: Owner): Promise<EtJobRecord | null>
  /** Any owner's job: for the service's own bookkeeping, never for a client's request. */
  getJobById(id: string): Promise<EtJobRecord | null>
  listJobs(
    request: EtListRequest & { pipelineId?: string; status?: EtStatus },
  ): Promise<EtPage<EtJobRecord>>
  /** Applies `patch` under the rules above; the job afterwards, or `null` if refused or absent. */
  updateJob(
    id: string,
    patch: EtJobPatch,
    options?: { onlyIf?: readonly EtStatus[] },
  ): Promise<EtJobRecord | null>
  /**
   * Any owner's jobs not ended yet (Submitted or Progressing), oldest first: what the API
   * brings up to date now and then, for jobs whose core job another process runs.
   */
  listUnfinishedJobs(limit: number): Promise<EtJobRecord[]>
  /** True for the one caller that may copy the job's outputs to its bucket. */
  claimDelivery(id: string): Promise<boolean>

  /** Optional: release what the store created. */
  close?(): Promise<void>
}
