import type { Owner, Preset } from '@transcodekit/core'

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

/** A custom preset made by CreatePreset. */
export interface EtPresetRecord {
  /** `<13 digits>-<6 characters>`, as Elastic Transcoder makes them. */
  id: string
  owner: Owner
  name: string
  /** The ET fields as the API answers them: `Description`, `Container`, `Audio`, `Video`. */
  settings: Record<string, unknown>
  /** The core preset (checked against `PresetSchema`) its outputs are made with. */
  preset: Preset
  createdAt: Date
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
 * - `claimDelivery` is true for exactly one caller per job at a time: a claim lapses after
 *   `leaseMs` (by the store's clock), so a process that died while copying does not leave
 *   the job `Progressing` forever.
 *
 * @example
 * const store = memoryEtStore()
 * await store.createPipeline(pipeline)
 * const { items, next } = await store.listPipelines({ owner, ascending: true, after: null, limit: 50 })
 */
export interface EtStore {
  /**
   * Adds a pipeline, unless its owner has `maxPerOwner` already (`'limit'`): decided by the
   * store, so that concurrent requests cannot pass the cap. @default maxPerOwner Infinity
   */
  createPipeline(
    pipeline: EtPipelineRecord,
    options?: { maxPerOwner?: number },
  ): Promise<'created' | 'limit'>
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
   * Any owner's jobs not ended yet (Submitted or Progressing), oldest first, after the id
   * `after` if given: what the API brings up to date now and then, for jobs whose core job
   * another process runs.
   */
  listUnfinishedJobs(limit: number, after?: string): Promise<EtJobRecord[]>
  /**
   * True for the one caller that may copy the job's outputs to its bucket: the job was never
   * claimed, or its last claim is at least `leaseMs` old (its holder is taken for dead).
   */
  claimDelivery(id: string, leaseMs: number): Promise<boolean>

  /**
   * Adds a custom preset, unless its owner has `maxPerOwner` already (`'limit'`), decided by
   * the store. @default maxPerOwner Infinity
   */
  createPreset(
    preset: EtPresetRecord,
    options?: { maxPerOwner?: number },
  ): Promise<'created' | 'limit'>
  getPreset(id: string, owner: Owner): Promise<EtPresetRecord | null>
  /** All of one owner's custom presets, by id (bounded by the per-owner cap). */
  listPresets(owner: Owner): Promise<EtPresetRecord[]>
  /** Removes one of the owner's custom presets: false when it is not theirs or absent. */
  deletePreset(id: string, owner: Owner): Promise<boolean>

  /** Optional: release what the store created. */
  close?(): Promise<void>
}
