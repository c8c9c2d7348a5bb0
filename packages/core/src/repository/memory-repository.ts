import { InvalidStateError, NotFoundError } from '../errors.ts'
import { type Asset, isTerminal, type Job, type Owner, type Page } from '../model.ts'
import type {
  AssetWriteOptions,
  JobPatch,
  JobWriteOptions,
  ListAssetsRequest,
  ListJobsRequest,
  NewJob,
  ProbedMedia,
  Repository,
  WriteOptions,
} from '../ports/repository.ts'
import { paginate } from './memory-pagination.ts'
import { MemoryWebhookStore } from './memory-webhook-store.ts'

interface StoredJob {
  job: Job
  requestHash: string
}

/**
 * Assets and jobs in this process's memory: for the defaults, examples and tests. Every
 * method runs to completion without yielding between its read and its write, which is what
 * makes `createJob` and `updateJob` atomic here. What goes in and comes out is copied, so no
 * caller holds a reference to the stored state.
 */
export class MemoryRepository implements Repository {
  readonly #assets = new Map<string, Asset>()
  readonly #jobs = new Map<string, StoredJob>()
  /** Job ids by `idempotencyScope(owner, key)`. */
  readonly #byIdempotencyKey = new Map<string, string>()
  readonly #webhooks = new MemoryWebhookStore()

  webhookStore(): MemoryWebhookStore {
    return this.#webhooks
  }

  async createAsset(asset: Asset, options: AssetWriteOptions = {}): Promise<void> {
    if (this.#assets.has(asset.id)) throw new InvalidStateError(`asset ${asset.id} already exists`)
    this.#recordOutbox(asset, options)
    this.#assets.set(asset.id, structuredClone(asset))
  }

  async getAsset(id: string): Promise<Asset | null> {
    const asset = this.#assets.get(id)
    return asset ? structuredClone(asset) : null
  }

  async setAssetMedia(id: string, probed: ProbedMedia): Promise<Asset | null> {
    const asset = this.#assets.get(id)
    if (!asset) return null
    if (asset.media === null) {
      asset.media = structuredClone(probed.media)
      asset.contentType = probed.contentType
    }
    return structuredClone(asset)
  }

  async listAssets(request: ListAssetsRequest = {}): Promise<Page<Asset>> {
    const assets = [...this.#assets.values()].filter(
      (asset) => request.owner === undefined || asset.owner === request.owner,
    )
    return paginate(assets, request)
  }

  async deleteAsset(id: string, options: AssetWriteOptions = {}): Promise<boolean> {
    const asset = this.#assets.get(id)
    if (!asset) return false
    this.#recordOutbox(asset, options)
    this.#assets.delete(id)
    for (const [jobId, { job }] of this.#jobs) {
      if (job.assetId !== id) continue
      this.#jobs.delete(jobId)
      if (job.idempotencyKey !== null) {
        this.#byIdempotencyKey.delete(idempotencyScope(job.owner, job.idempotencyKey))
      }
    }
    return true
  }

  async createJob(
    input: NewJob,
    options: JobWriteOptions = {},
  ): Promise<{ job: Job; created: boolean; requestHash: string }> {
    if (input.idempotencyKey !== null) {
      const existingId = this.#byIdempotencyKey.get(
        idempotencyScope(input.owner, input.idempotencyKey),
      )
      const existing = existingId === undefined ? undefined : this.#jobs.get(existingId)
      if (existing) {
        return {
          job: structuredClone(existing.job),
          created: false,
          requestHash: existing.requestHash,
        }
      }
    }
    // A job belongs to its asset's owner: another owner's asset is, to it, no asset at all.
    if (this.#assets.get(input.assetId)?.owner !== input.owner) {
      throw new NotFoundError('asset', input.assetId)
    }
    if (this.#jobs.has(input.id)) throw new InvalidStateError(`job ${input.id} already exists`)
    const createdAt = new Date(input.createdAt)
    const job: Job = {
      id: input.id,
      owner: input.owner,
      assetId: input.assetId,
      engine: input.engine,
      engineJobId: null,
      state: 'submitted',
      progress: 0,
      errorCode: null,
      errorMessage: null,
      idempotencyKey: input.idempotencyKey,
      attempts: 0,
      outputs: input.outputs.map((output) => ({
        jobId: input.id,
        name: output.name,
        presetId: output.presetId,
        ...(output.requestedPresetId ? { requestedPresetId: output.requestedPresetId } : {}),
        ...(output.preset ? { preset: structuredClone(output.preset) } : {}),
        storageKey: output.storageKey,
        contentType: output.contentType,
        state: 'submitted',
        size: null,
        durationSec: null,
        errorCode: null,
        errorMessage: null,
      })),
      createdAt,
      updatedAt: new Date(createdAt),
      finishedAt: null,
    }
    const written = this.#recordOutbox(job, options)
    this.#jobs.set(job.id, { job, requestHash: input.requestHash })
    if (job.idempotencyKey !== null) {
      this.#byIdempotencyKey.set(idempotencyScope(job.owner, job.idempotencyKey), job.id)
    }
    return { job: written, created: true, requestHash: input.requestHash }
  }

  async getJob(id: string): Promise<Job | null> {
    const stored = this.#jobs.get(id)
    return stored ? structuredClone(stored.job) : null
  }

  async getJobByIdempotencyKey(key: string, owner: Owner): Promise<Job | null> {
    const id = this.#byIdempotencyKey.get(idempotencyScope(owner, key))
    return id === undefined ? null : this.getJob(id)
  }

  async getJobByEngineJobId(engine: string, engineJobId: string): Promise<Job | null> {
    for (const { job } of this.#jobs.values()) {
      if (job.engine === engine && job.engineJobId === engineJobId) return structuredClone(job)
    }
    return null
  }

  async listJobs(request: ListJobsRequest = {}): Promise<Page<Job>> {
    const jobs: Job[] = []
    for (const { job } of this.#jobs.values()) {
      if (request.owner !== undefined && job.owner !== request.owner) continue
      if (request.assetId !== undefined && job.assetId !== request.assetId) continue
      if (request.state !== undefined && job.state !== request.state) continue
      jobs.push(job)
    }
    return paginate(jobs, request)
  }

  async updateJob(id: string, patch: JobPatch, options: JobWriteOptions = {}): Promise<Job | null> {
    const stored = this.#jobs.get(id)
    if (!stored) return null
    const current = stored.job
    if (isTerminal(current.state)) return this.#recordOutbox(current, options)

    // Work on a copy and swap it in at the end, so a bad patch cannot leave half a change.
    const next = structuredClone(current)
    if (patch.state !== undefined) next.state = patch.state
    if (patch.progress !== undefined && Number.isFinite(patch.progress)) {
      next.progress = Math.max(current.progress, Math.min(100, Math.max(0, patch.progress)))
    }
    if (patch.engineJobId !== undefined) next.engineJobId = patch.engineJobId
    if (patch.errorCode !== undefined) next.errorCode = patch.errorCode
    if (patch.errorMessage !== undefined) next.errorMessage = patch.errorMessage
    if (patch.incrementAttempts) next.attempts += 1
    for (const change of patch.outputs ?? []) {
      const output = next.outputs.find((o) => o.name === change.name)
      if (!output) continue
      if (change.state !== undefined && !isTerminal(output.state)) output.state = change.state
      if (change.size !== undefined) output.size = change.size
      if (change.durationSec !== undefined) output.durationSec = change.durationSec
      if (change.errorCode !== undefined) output.errorCode = change.errorCode
      if (change.errorMessage !== undefined) output.errorMessage = change.errorMessage
    }
    const now = new Date()
    next.updatedAt = now.getTime() < current.updatedAt.getTime() ? new Date(current.updatedAt) : now
    if (isTerminal(next.state)) next.finishedAt = new Date(next.updatedAt)
    const written = this.#recordOutbox(next, options)
    stored.job = next
    return written
  }

  /**
   * Records the outbox's deliveries for `subject` as written, in the same synchronous step as
   * the write (a throwing outbox leaves everything as it was); returns a copy of the subject.
   */
  #recordOutbox<Subject>(subject: Subject, { outbox }: WriteOptions<Subject>): Subject {
    const copy = structuredClone(subject)
    if (!outbox) return copy
    const recorded = outbox
      .deliveriesFor(structuredClone(subject))
      .map((delivery) => this.#webhooks.insert(delivery))
      .filter(({ created }) => created)
      .map(({ delivery }) => delivery)
    outbox.recorded(recorded)
    return copy
  }
}

/** Makes an in-memory `Repository`. */
export function memoryRepository(): MemoryRepository {
  return new MemoryRepository()
}

/** One map key per (owner, key) pair, unambiguous whatever characters either holds. */
function idempotencyScope(owner: Owner, key: string): string {
  return JSON.stringify([owner, key])
}
