import type { Asset, Job, JobState, MediaInfo, Output, Owner, Page, PageRequest } from '../model.ts'
import type { NewWebhookDelivery, WebhookDelivery, WebhookDeliveryStore } from './webhooks.ts'

/** A job as first written: `submitted`, progress 0, no attempts yet. */
export interface NewJob {
  id: string
  /** The owner of the asset. */
  owner: Owner
  assetId: string
  engine: string
  /** Unique per owner. */
  idempotencyKey: string | null
  /** Fingerprint of what was asked for, to tell a retried request from a conflicting one. */
  requestHash: string
  outputs: Array<
    Pick<
      Output,
      'name' | 'presetId' | 'storageKey' | 'contentType' | 'requestedPresetId' | 'preset'
    >
  >
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

/** What a worker's probe learned of an original ingested unprobed. */
export interface ProbedMedia {
  media: MediaInfo
  contentType: string
}

/**
 * The webhook deliveries that announce a change (a job's, an asset's), recorded in the
 * change's own transaction (a transactional outbox): the change and its deliveries commit or
 * roll back together, so a process that dies after the commit leaves deliveries for the
 * sweep, never a silent change.
 */
export interface Outbox<Subject> {
  /** The deliveries announcing `subject` as written (after the change); called inside the write. */
  deliveriesFor(subject: Subject): NewWebhookDelivery[]
  /** Once the write committed: the deliveries it recorded (not those already there). */
  recorded(deliveries: WebhookDelivery[]): void
}

export interface WriteOptions<Subject> {
  /**
   * Deliveries to record in the webhook store with the change. Honoured by a repository that
   * offers `webhookStore()`, into that store; the service passes it only then.
   */
  outbox?: Outbox<Subject>
}

export type JobWriteOptions = WriteOptions<Job>
export type AssetWriteOptions = WriteOptions<Asset>

export interface ListAssetsRequest extends PageRequest {
  /** Only this owner's assets. @default every owner's */
  owner?: Owner
}

export interface ListJobsRequest extends PageRequest {
  /** Only this owner's jobs. @default every owner's */
  owner?: Owner
  assetId?: string
  state?: JobState
}

/**
 * Assets, jobs and outputs. The rules a repository enforces itself (so that they hold
 * across any number of processes):
 * - `createJob` with an idempotency key that exists for the same owner returns the existing
 *   job (`created: false`): one key per owner, one job, enforced by a unique constraint on
 *   (owner, key); another owner's key is another job;
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
  /** With an `outbox`, records its deliveries for the asset with it. */
  createAsset(asset: Asset, options?: AssetWriteOptions): Promise<void>
  getAsset(id: string): Promise<Asset | null>
  listAssets(request?: ListAssetsRequest): Promise<Page<Asset>>
  /**
   * Records what the probe learned of an asset ingested unprobed (`media: null`), and the
   * content type it tells; only while its media is still null, so that a job delivered twice
   * keeps the first answer. Returns the asset as it is afterwards, or `null` if it does not
   * exist.
   */
  setAssetMedia(id: string, probed: ProbedMedia): Promise<Asset | null>
  /**
   * Deletes the asset with its jobs and outputs; `false` when it did not exist. With an
   * `outbox`, records its deliveries for the asset as it was, when it was deleted here.
   */
  deleteAsset(id: string, options?: AssetWriteOptions): Promise<boolean>

  /** With an `outbox`, records its deliveries for the job when it is created (not for an existing one). */
  createJob(
    job: NewJob,
    options?: JobWriteOptions,
  ): Promise<{ job: Job; created: boolean; requestHash: string }>
  getJob(id: string): Promise<Job | null>
  /** The job of `owner` under `key`; another owner's job under the same key is not it. */
  getJobByIdempotencyKey(key: string, owner: Owner): Promise<Job | null>
  getJobByEngineJobId(engine: string, engineJobId: string): Promise<Job | null>
  listJobs(request?: ListJobsRequest): Promise<Page<Job>>

  /**
   * Applies `patch` under the rules above, atomically. Returns the job as it is afterwards
   * (unchanged if the rules refused the patch), or `null` if it does not exist.
   */
  updateJob(id: string, patch: JobPatch, options?: JobWriteOptions): Promise<Job | null>

  /**
   * Optional: where webhook deliveries are recorded, in the same database, so that they
   * survive what the jobs survive. Probed once by the service; the same store every call.
   * A repository that offers it records a write's `outbox` in it, in the write's transaction.
   */
  webhookStore?(): WebhookDeliveryStore

  /** Optional: release what the repository created. */
  close?(): Promise<void>
}
