import { setTimeout as delay } from 'node:timers/promises'
import { AbortedError, TranscodeKitError } from '../errors.ts'
import { jobPrefix } from '../keys.ts'
import { errorText } from '../logging/error-text.ts'
import { describeMedia } from '../media/sniff.ts'
import { type Asset, isTerminal, type Job, type MediaInfo } from '../model.ts'
import type { Engine, EngineJobRequest, EngineStatus } from '../ports/engine.ts'
import type { QueueHandlerContext } from '../ports/queue.ts'
import type { JobPatch, Repository } from '../ports/repository.ts'
import type { Storage } from '../ports/storage.ts'
import type { ConcurrencyLimiter } from './concurrency-limiter.ts'
import { checkJobLimits } from './job-limits.ts'
import type { JobWriter } from './job-writer.ts'
import { checkPresetsFit, probeStoredFile } from './media-probe.ts'
import { clampProgress } from './service-support.ts'
import type { ServiceSettings } from './transcoder-options.ts'

export interface RunnerParts {
  repository: Repository
  storage: Storage
  engine: Engine
  writer: JobWriter
  settings: ServiceSettings
  /** Bounds the probes of originals ingested unprobed, with the uploads'. */
  probes: ConcurrencyLimiter
}

/** Runs jobs on the engine in this process and applies what the engine reports to them. */
export class JobRunner {
  readonly #parts: RunnerParts
  /** Jobs running in this process, to abort them on cancel. */
  readonly #running = new Map<string, AbortController>()

  constructor(parts: RunnerParts) {
    this.#parts = parts
  }

  /** Stops the job if it runs in this process. */
  abort(id: string, reason: Error): void {
    this.#running.get(id)?.abort(reason)
  }

  /**
   * The queue handler: runs one job to its end. Safe to run twice for one job: a job that
   * has ended is left alone, a remote job already submitted is not submitted again, output
   * keys are fixed when the job is created, and the terminal state is written once.
   */
  async run(id: string, context: Partial<QueueHandlerContext> = {}): Promise<void> {
    const { repository, storage, engine, writer, settings } = this.#parts
    let job = await repository.getJob(id)
    if (!job || isTerminal(job.state)) return
    const controller = new AbortController()
    const signal = context.signal
      ? AbortSignal.any([context.signal, controller.signal])
      : controller.signal
    this.#running.set(id, controller)
    try {
      job = (await writer.update(id, { incrementAttempts: true })) ?? job
      if (isTerminal(job.state)) return
      const asset = await repository.getAsset(job.assetId)
      if (!asset) return
      let status: EngineStatus
      if (job.engineJobId && engine.getStatus) {
        status = await engine.getStatus(job.engineJobId, { signal })
      } else {
        const media = asset.media ?? (await this.#probeOriginal(asset, signal))
        const request = this.#engineRequest(asset, media, job)
        const presets = request.outputs.map((o) => o.preset)
        // Checked when the job was made, unless the asset had not been probed then.
        if (!asset.media) checkPresetsFit(media, presets)
        checkJobLimits(media, presets, settings.limits)
        const started = job
        status = await engine.run(request, {
          signal,
          onStatus: (update) => {
            this.applyStatus(started, update).then(
              (current) => {
                if (current?.state === 'canceled')
                  controller.abort(new AbortedError('the job was canceled'))
              },
              (error: unknown) => {
                settings.logger.warn(
                  { jobId: id, error: errorText(error) },
                  'transcodekit: could not record the progress of a job',
                )
              },
            )
          },
        })
      }
      job = (await this.applyStatus(job, status)) ?? job
      while (!isTerminal(job.state)) {
        await delay(settings.pollIntervalMs, undefined, { signal })
        const current = await repository.getJob(id)
        if (!current || isTerminal(current.state)) return
        if (!current.engineJobId || !engine.getStatus) {
          throw new Error(
            `engine ${engine.name} returned a non-terminal status and cannot be polled`,
          )
        }
        job =
          (await this.applyStatus(
            current,
            await engine.getStatus(current.engineJobId, { signal }),
          )) ?? current
      }
    } catch (error) {
      const current = await repository.getJob(id)
      if (!current || isTerminal(current.state)) return
      // Stopped by the queue (shutdown, expiry): leave the job as it is to be delivered again.
      if (context.signal?.aborted) throw error
      if (controller.signal.aborted) return
      if (error instanceof TranscodeKitError) {
        await writer.update(id, {
          state: 'error',
          errorCode: error.code,
          errorMessage: error.message,
          outputs: current.outputs.map((o) => ({ name: o.name, state: 'error' as const })),
        })
        await storage
          .deletePrefix(jobPrefix(settings.keyPrefix, current.assetId, id))
          .catch((cleanup: unknown) => {
            settings.logger.error(
              { jobId: id, assetId: current.assetId, error: errorText(cleanup) },
              'transcodekit: could not remove the outputs of a refused job',
            )
          })
        return
      }
      throw error
    } finally {
      this.#running.delete(id)
    }
  }

  /** Records what the engine reports about a job: its state, progress, and each output. */
  async applyStatus(job: Job, status: EngineStatus): Promise<Job | null> {
    const { storage, engine, writer, settings } = this.#parts
    const patch: JobPatch = { state: status.state }
    if (
      status.engineJobId &&
      status.engineJobId !== job.engineJobId &&
      job.engine === engine.name
    ) {
      patch.engineJobId = status.engineJobId
    }
    if (status.progress !== undefined) patch.progress = clampProgress(status.progress)
    if (status.state === 'complete') patch.progress = 100
    if (status.state === 'error') {
      patch.errorCode = status.error?.code ?? 'ENGINE_FAILED'
      patch.errorMessage = status.error?.message ?? 'the engine failed the job'
    }
    const byKey = new Map(job.outputs.map((o) => [o.storageKey, o.name]))
    const outputs: NonNullable<JobPatch['outputs']> = []
    for (const output of status.outputs ?? []) {
      const name = byKey.get(output.key)
      if (!name) continue
      let size = output.size
      if (output.state === 'complete' && (size === undefined || size === null)) {
        size = (await storage.head(output.key))?.size ?? null
      }
      outputs.push({
        name,
        state: output.state,
        size,
        durationSec: output.durationSec,
        ...(output.error && { errorCode: output.error.code, errorMessage: output.error.message }),
      })
    }
    if (isTerminal(status.state)) {
      for (const output of job.outputs) {
        if (!outputs.some((o) => o.name === output.name))
          outputs.push({ name: output.name, state: status.state })
      }
    }
    if (outputs.length > 0) patch.outputs = outputs
    const updated = await writer.update(job.id, patch)
    // The job was canceled while the engine finished: what it wrote must not stay behind.
    if (updated?.state === 'canceled' && status.state === 'complete') {
      await storage.deletePrefix(jobPrefix(settings.keyPrefix, job.assetId, job.id))
    }
    return updated
  }

  /**
   * Probes the original of an asset ingested with `probe: 'deferred'` and records what it
   * learned. Recorded only while the asset's media is still null: a job delivered again, or
   * a second job of the same asset, keeps the first probe's answer.
   */
  async #probeOriginal(asset: Asset, signal: AbortSignal): Promise<MediaInfo> {
    const { repository, storage, settings, probes } = this.#parts
    const media = await probeStoredFile(asset.storageKey, storage, { settings, probes }, signal)
    const { contentType } = describeMedia(media)
    const recorded = await repository.setAssetMedia(asset.id, { media, contentType })
    return recorded?.media ?? media
  }

  #engineRequest(asset: Asset, media: MediaInfo, job: Job): EngineJobRequest {
    const { storage, settings } = this.#parts
    return {
      jobId: job.id,
      input: {
        key: asset.storageKey,
        media,
        maxFramePixels: settings.limits.maxFramePixels,
        maxDurationSec: settings.limits.maxDurationSec,
      },
      maxOutputBytes: settings.limits.maxOutputBytes,
      storage,
      outputs: job.outputs.map((output) => ({
        name: output.name,
        key: output.storageKey,
        preset: output.preset ?? settings.presets.resolve(output.presetId),
      })),
    }
  }
}
