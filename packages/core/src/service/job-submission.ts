import { createHash, randomUUID } from 'node:crypto'
import { IdempotencyConflictError, InvalidRequestError } from '../errors.ts'
import { outputKey } from '../keys.ts'
import type { Asset, Job } from '../model.ts'
import type { Queue } from '../ports/queue.ts'
import type { Preset } from '../presets/preset-schema.ts'
import type { JobWriter } from './job-writer.ts'

/** How long a job still untaken may be waiting for its first hand-over before a duplicate
 * `transcode()` call hands it over again. */
const RESEND_GRACE_MS = 60_000

export interface SubmissionParts {
  queue: Queue
  writer: JobWriter
  /** The engine jobs are created for. */
  engineName: string
  keyPrefix: string
}

/**
 * Creates jobs and hands them to the queue, once per idempotency key: the repository's unique
 * key decides, so concurrent callers with one key, in any number of processes, all get the
 * one job, and a duplicate sends no second queue message.
 */
export class JobSubmitter {
  readonly #parts: SubmissionParts
  /** Jobs created here whose queue message failed to send. */
  readonly #unsent = new Set<string>()

  constructor(parts: SubmissionParts) {
    this.#parts = parts
  }

  async submit(
    asset: Asset,
    presets: readonly Preset[],
    idempotencyKey: string | null,
    /** The name each preset (by id) was asked for by, when not its id. */
    requestedNames: ReadonlyMap<string, string> = new Map(),
    /** The ids of `presets` that are the job's own (kept with its outputs), not the catalog's. */
    custom: ReadonlySet<string> = new Set(),
  ): Promise<Job> {
    const { queue, writer, engineName, keyPrefix } = this.#parts
    if (idempotencyKey !== null && (idempotencyKey.length === 0 || idempotencyKey.length > 255)) {
      throw new InvalidRequestError(
        'INVALID_IDEMPOTENCY_KEY',
        'an idempotency key has 1 to 255 characters',
      )
    }
    const requestHash = createHash('sha256')
      // The content, not the asset id: two uploads of the same bytes under one key (a retried
      // request racing the first) are the same request.
      .update(JSON.stringify([asset.sha256, presets.map((p) => (custom.has(p.id) ? p : p.id))]))
      .digest('hex')
    const jobId = randomUUID()
    // No read-then-insert: the repository's unique key decides.
    const {
      job,
      created,
      requestHash: storedHash,
    } = await writer.create({
      id: jobId,
      owner: asset.owner,
      assetId: asset.id,
      engine: engineName,
      idempotencyKey,
      requestHash,
      createdAt: new Date(),
      outputs: presets.map((preset) => ({
        name: preset.id,
        presetId: preset.id,
        storageKey: outputKey(keyPrefix, asset.id, jobId, preset.id, preset.extension),
        contentType: preset.contentType,
        ...(requestedNames.has(preset.id)
          ? { requestedPresetId: requestedNames.get(preset.id) as string }
          : {}),
        ...(custom.has(preset.id) ? { preset } : {}),
      })),
    })
    if (created) {
      try {
        await queue.send({ jobId: job.id })
      } catch (error) {
        // A retry of this request hands it over again, without waiting for the grace.
        this.#unsent.add(job.id)
        throw error
      }
      return job
    }
    if (storedHash !== requestHash) throw new IdempotencyConflictError(idempotencyKey ?? '')
    // A duplicate (a CMS event sent twice, a retried request) of a job already handed over
    // sends nothing: a resend would cost as much as the create. Only a job whose hand-over
    // failed here, or that is still untaken after a grace (its creator may have died between
    // the row and the send, and `resume()` runs only at a start), is handed over again; the
    // queue and the worker both ignore a job that is already taken or has ended.
    if (
      job.state === 'submitted' &&
      job.attempts === 0 &&
      (this.#unsent.has(job.id) || Date.now() - job.createdAt.getTime() >= RESEND_GRACE_MS)
    ) {
      await queue.send({ jobId: job.id })
      this.#unsent.delete(job.id)
    }
    return job
  }
}
