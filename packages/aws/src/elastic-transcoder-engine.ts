import assert from 'node:assert'
import {
  CancelJobCommand,
  CreateJobCommand,
  type ElasticTranscoderClient,
  type Job as EtJob,
  type JobOutput as EtJobOutput,
  type Pipeline,
  paginateListJobsByPipeline,
  paginateListPipelines,
  ReadJobCommand,
} from '@aws-sdk/client-elastic-transcoder'
import {
  AbortedError,
  ConfigurationError,
  type Engine,
  EngineError,
  type EngineJobRequest,
  type EngineOutputStatus,
  type EngineRunOptions,
  type EngineStatus,
  InvalidStateError,
  isTerminal,
  type JobErrorCode,
  type JobState,
  NotFoundError,
  type Preset,
} from '@transcodekit/core'
import { notificationBody, serviceError, submissionError } from './aws-errors.ts'
import { S3Storage } from './s3-storage.ts'

export interface ElasticTranscoderEngineOptions {
  /** The client to use; it belongs to the caller and is never destroyed by the engine. */
  client: ElasticTranscoderClient
  /** Name of the pipeline, found through every page of `ListPipelines` (once, on first use). */
  pipelineName?: string
  /** Id of the pipeline; skips the lookup. */
  pipelineId?: string
  /**
   * What the storage puts before every key in the bucket: the `prefix` of the `S3Storage`
   * (checked against it on every job). @default ''
   */
  objectKeyPrefix?: string
  /**
   * Elastic Transcoder has no idempotency token: before creating a job, this many pages of
   * the pipeline's newest jobs are searched for one already made for the same job id (a
   * submission retried after a crash), which is then returned instead. `0` turns it off.
   * @default 1
   */
  lookbackPages?: number
}

const STATES: Record<string, JobState> = {
  submitted: 'submitted',
  progressing: 'progressing',
  warning: 'progressing',
  complete: 'complete',
  completed: 'complete',
  canceled: 'canceled',
  cancelled: 'canceled',
  error: 'error',
}

/** Elastic Transcoder states, in any of its spellings (`Complete`, `COMPLETED`, …). */
export function elasticTranscoderState(status: unknown): JobState | null {
  return typeof status === 'string' ? (STATES[status.toLowerCase()] ?? null) : null
}

/**
 * Elastic Transcoder's error codes (the number that starts `StatusDetail`): 3xxx are about
 * the output location, 4xxx about the input, the rest about the encode.
 */
function errorCode(
  detail: string | undefined | null,
  fallback: JobErrorCode = 'ENCODE_FAILED',
): JobErrorCode {
  const number = detail ? /^(\d{4})\b/.exec(detail)?.[1] : undefined
  if (!number) return fallback
  if (number.startsWith('3')) return 'STORAGE_FAILED'
  if (number.startsWith('4')) return 'DECODE_FAILED'
  return 'ENCODE_FAILED'
}

/** The key of an output under the job's `OutputKeyPrefix`: HLS outputs are named without `.m3u8`. */
function etOutputKey(name: string, preset: Preset): string {
  return preset.container === 'hls' ? name : `${name}.${preset.extension}`
}

function storageOutputKey(etKey: string): string {
  return etKey.includes('.') ? etKey : `${etKey}.m3u8`
}

/**
 * AWS Elastic Transcoder as an `Engine` (the engine of the original design; the service
 * ended on 2025-11-13, but any API-compatible endpoint works).
 */
export class ElasticTranscoderEngine implements Engine {
  readonly name = 'elastic-transcoder'
  readonly #client: ElasticTranscoderClient
  readonly #pipelineName: string | null
  readonly #objectKeyPrefix: string
  readonly #lookbackPages: number
  #pipeline: Promise<{
    id: string
    inputBucket: string | null
    outputBucket: string | null
  }> | null = null

  constructor(options: ElasticTranscoderEngineOptions) {
    assert(options.client, 'elasticTranscoderEngine: the `client` option is required')
    const hasName = typeof options.pipelineName === 'string' && options.pipelineName !== ''
    const hasId = typeof options.pipelineId === 'string' && options.pipelineId !== ''
    if (hasName === hasId) {
      throw new ConfigurationError(
        'elasticTranscoderEngine: give exactly one of `pipelineName` or `pipelineId`',
      )
    }
    this.#client = options.client
    this.#pipelineName = hasName ? (options.pipelineName as string) : null
    this.#objectKeyPrefix = options.objectKeyPrefix ?? ''
    this.#lookbackPages = options.lookbackPages ?? 1
    if (hasId) {
      this.#pipeline = Promise.resolve({
        id: options.pipelineId as string,
        inputBucket: null,
        outputBucket: null,
      })
    }
  }

  /** The pipeline id: looked up by name on first use, then cached (a failed lookup is retried). */
  async pipelineId(options: { signal?: AbortSignal } = {}): Promise<string> {
    return (await this.#resolvePipeline(options.signal)).id
  }

  #resolvePipeline(signal?: AbortSignal) {
    if (!this.#pipeline) {
      const lookup = this.#findPipeline(this.#pipelineName as string, signal)
      this.#pipeline = lookup
      lookup.catch(() => {
        if (this.#pipeline === lookup) this.#pipeline = null
      })
    }
    return this.#pipeline
  }

  async #findPipeline(name: string, signal?: AbortSignal) {
    const matches: Pipeline[] = []
    for await (const page of paginateListPipelines(
      { client: this.#client },
      {},
      { abortSignal: signal },
    )) {
      for (const pipeline of page.Pipelines ?? []) {
        if (pipeline.Name === name) matches.push(pipeline)
      }
    }
    if (matches.length === 0) {
      throw new ConfigurationError(
        `no Elastic Transcoder pipeline is named ${JSON.stringify(name)}`,
      )
    }
    if (matches.length > 1) {
      throw new ConfigurationError(
        `${matches.length} Elastic Transcoder pipelines are named ${JSON.stringify(name)} (${matches
          .map((p) => p.Id)
          .join(', ')}): use \`pipelineId\``,
      )
    }
    const [pipeline] = matches as [Pipeline]
    return {
      id: pipeline.Id as string,
      inputBucket: pipeline.InputBucket ?? null,
      outputBucket: pipeline.ContentConfig?.Bucket ?? pipeline.OutputBucket ?? null,
    }
  }

  unsupportedReason(preset: Preset): string | null {
    return preset.elasticTranscoderPresetId
      ? null
      : `preset ${preset.id} has no Elastic Transcoder preset id`
  }

  async run(request: EngineJobRequest, options: EngineRunOptions): Promise<EngineStatus> {
    if (options.signal.aborted) {
      throw new AbortedError('the job was canceled before it was submitted', {
        cause: options.signal.reason,
      })
    }
    const pipeline = await this.#resolvePipeline(options.signal)
    const objectPrefix = this.#objectKeyPrefix
    if (request.storage instanceof S3Storage) {
      if (request.storage.prefix !== objectPrefix) {
        // Statuses are read back later, maybe by another process that never saw the storage.
        throw new ConfigurationError(
          `the storage prefixes its keys with ${JSON.stringify(request.storage.prefix)}: give the engine the same \`objectKeyPrefix\``,
        )
      }
      const bucket = request.storage.bucket
      if (pipeline.inputBucket && pipeline.inputBucket !== bucket) {
        throw new ConfigurationError(
          `the pipeline reads from bucket ${pipeline.inputBucket}, the storage is bucket ${bucket}`,
        )
      }
      if (pipeline.outputBucket && pipeline.outputBucket !== bucket) {
        throw new ConfigurationError(
          `the pipeline writes to bucket ${pipeline.outputBucket}, the storage is bucket ${bucket}`,
        )
      }
    }
    if (request.outputs.length === 0)
      throw new EngineError('ENGINE_REJECTED', 'a job needs at least one output')
    // Every output of a job lives under the job's own prefix `<prefix>/<assetId>/<jobId>/`:
    // that prefix becomes the OutputKeyPrefix, so no two jobs can write the same key.
    const jobPrefix = request.outputs[0]!.key.slice(0, request.outputs[0]!.key.lastIndexOf('/') + 1)
    const outputs = request.outputs.map((output) => {
      const reason = this.unsupportedReason(output.preset)
      if (reason) throw new EngineError('ENGINE_REJECTED', reason)
      const key = `${output.name}.${output.preset.extension}`
      if (output.key !== `${jobPrefix}${key}`) {
        throw new EngineError(
          'ENGINE_REJECTED',
          `output ${output.key} is not named <job prefix>/<name>.<ext>`,
        )
      }
      return {
        Key: etOutputKey(output.name, output.preset),
        PresetId: output.preset.elasticTranscoderPresetId,
        SegmentDuration: output.preset.hls ? String(output.preset.hls.segmentSec) : undefined,
      }
    })
    let job: EtJob | undefined
    try {
      const existing = await this.#submitted(pipeline.id, request.jobId, options.signal)
      if (existing) return this.#status(existing)
      const response = await this.#client.send(
        new CreateJobCommand({
          PipelineId: pipeline.id,
          Input: { Key: objectPrefix + request.input.key, Container: 'auto' },
          OutputKeyPrefix: objectPrefix + jobPrefix,
          Outputs: outputs,
          UserMetadata: { transcodekitJobId: request.jobId },
        }),
        { abortSignal: options.signal },
      )
      job = response.Job
    } catch (error) {
      throw submissionError('Elastic Transcoder', error)
    }
    if (!job?.Id)
      throw new EngineError('ENGINE_UNAVAILABLE', 'Elastic Transcoder returned no job id')
    return this.#status(job)
  }

  /** A job of the pipeline already created for our job id, among the newest ones. */
  async #submitted(pipelineId: string, jobId: string, signal?: AbortSignal): Promise<EtJob | null> {
    if (this.#lookbackPages <= 0) return null
    let pages = 0
    for await (const page of paginateListJobsByPipeline(
      { client: this.#client },
      { PipelineId: pipelineId, Ascending: 'false' },
      { abortSignal: signal },
    )) {
      const found = (page.Jobs ?? []).find((job) => job.UserMetadata?.transcodekitJobId === jobId)
      if (found) return found
      if (++pages >= this.#lookbackPages) break
    }
    return null
  }

  async getStatus(
    engineJobId: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<EngineStatus> {
    try {
      const response = await this.#client.send(new ReadJobCommand({ Id: engineJobId }), {
        abortSignal: options.signal,
      })
      if (!response.Job) throw new EngineError('ENGINE_UNAVAILABLE', 'ReadJob returned no job')
      return this.#status(response.Job)
    } catch (error) {
      if (serviceError(error).name === 'ResourceNotFoundException') {
        throw new NotFoundError('Elastic Transcoder job', engineJobId, { cause: error })
      }
      throw error
    }
  }

  async cancel(engineJobId: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    try {
      await this.#client.send(new CancelJobCommand({ Id: engineJobId }), {
        abortSignal: options.signal,
      })
    } catch (error) {
      const { name, message } = serviceError(error)
      if (name === 'ResourceInUseException') {
        throw new InvalidStateError(
          `Elastic Transcoder job ${engineJobId} can no longer be canceled (only a Submitted job can): ${message}`,
        )
      }
      if (name === 'ResourceNotFoundException') {
        throw new NotFoundError('Elastic Transcoder job', engineJobId, { cause: error })
      }
      throw error
    }
  }

  /**
   * The `Message` of an Elastic Transcoder SNS notification (lowerCamel keys, `state`
   * `PROGRESSING|COMPLETED|WARNING|ERROR`) as a status; `null` when it is not one.
   */
  parseNotification(message: unknown): EngineStatus | null {
    const value = notificationBody(message)
    if (typeof value !== 'object' || value === null) return null
    const m = value as Record<string, unknown>
    const state = elasticTranscoderState(m.state)
    if (!state || typeof m.jobId !== 'string' || m.jobId === '') return null
    const prefix = this.#storagePrefix(
      typeof m.outputKeyPrefix === 'string' ? m.outputKeyPrefix : '',
    )
    const outputs: EngineOutputStatus[] = []
    for (const raw of Array.isArray(m.outputs) ? m.outputs : []) {
      const output = raw as Record<string, unknown>
      if (typeof output.key !== 'string') continue
      outputs.push({
        key: prefix + storageOutputKey(output.key),
        state: elasticTranscoderState(output.status) ?? state,
        size: typeof output.fileSize === 'number' ? output.fileSize : null,
        durationSec:
          typeof output.durationMillis === 'number'
            ? output.durationMillis / 1000
            : typeof output.duration === 'number'
              ? output.duration
              : null,
      })
    }
    const status: EngineStatus = { engineJobId: m.jobId, state, outputs }
    if (state === 'error') {
      const failed = (Array.isArray(m.outputs) ? m.outputs : []).find(
        (o) => elasticTranscoderState((o as Record<string, unknown>).status) === 'error',
      ) as Record<string, unknown> | undefined
      const code =
        typeof m.errorCode === 'number' || typeof m.errorCode === 'string'
          ? String(m.errorCode)
          : ''
      const detail = typeof failed?.statusDetail === 'string' ? failed.statusDetail : code
      status.error = {
        code: errorCode(detail || code),
        message: `Elastic Transcoder failed the job: ${detail || 'no detail given'}`,
      }
    }
    return status
  }

  /** The storage-key prefix of a job's outputs, from its `OutputKeyPrefix` (an object key). */
  #storagePrefix(outputKeyPrefix: string): string {
    const objectPrefix = this.#objectKeyPrefix
    return objectPrefix && outputKeyPrefix.startsWith(objectPrefix)
      ? outputKeyPrefix.slice(objectPrefix.length)
      : outputKeyPrefix
  }

  #status(job: EtJob): EngineStatus {
    const state = elasticTranscoderState(job.Status) ?? 'submitted'
    const prefix = this.#storagePrefix(job.OutputKeyPrefix ?? '')
    const outputs = (job.Outputs ?? []).map((output: EtJobOutput) => ({
      key: prefix + storageOutputKey(output.Key ?? ''),
      state: elasticTranscoderState(output.Status) ?? state,
      size: output.FileSize ?? null,
      durationSec:
        output.DurationMillis !== undefined
          ? output.DurationMillis / 1000
          : output.Duration !== undefined
            ? output.Duration
            : null,
    }))
    const status: EngineStatus = { engineJobId: job.Id as string, state, outputs }
    if (state === 'error') {
      const failed = (job.Outputs ?? []).find((o) => elasticTranscoderState(o.Status) === 'error')
      status.error = {
        code: errorCode(failed?.StatusDetail),
        message: `Elastic Transcoder failed the job: ${failed?.StatusDetail ?? 'no detail given'}`,
      }
    }
    if (isTerminal(state) && state !== 'complete') {
      for (const output of status.outputs ?? []) {
        if (!isTerminal(output.state)) output.state = state
      }
    }
    return status
  }
}

/**
 * Elastic Transcoder as an `Engine`: the pipeline found by name through every page of
 * `ListPipelines`, one job per transcode with one output per preset under a unique
 * `OutputKeyPrefix`, `ReadJob` polling and SNS notifications.
 *
 * @example
 * const engine = elasticTranscoderEngine({ client: new ElasticTranscoderClient({}), pipelineName: 'Audio Files' })
 */
export function elasticTranscoderEngine(
  options: ElasticTranscoderEngineOptions,
): ElasticTranscoderEngine {
  return new ElasticTranscoderEngine(options)
}
