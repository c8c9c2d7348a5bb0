import type { JobErrorCode } from '../errors.ts'
import type { JobState, MediaInfo } from '../model.ts'
import type { Preset } from '../presets/preset-schema.ts'
import type { Storage } from './storage.ts'

export interface EngineOutputRequest {
  /** Short name, unique within the job. */
  name: string
  /** Where the output goes in storage: `<prefix>/<assetId>/<jobId>/<name>.<ext>`. */
  key: string
  preset: Preset
}

/** Everything an engine needs to run one job. */
export interface EngineJobRequest {
  /** Our job id; remote engines use it as their idempotency token where they have one. */
  jobId: string
  input: {
    key: string
    media: MediaInfo
    /**
     * Frames of more pixels are not decoded: the job's `maxFramePixels`, for the frames the
     * probe did not see (a stream may change its size after its first frame). A local engine
     * applies it. @default Infinity
     */
    maxFramePixels?: number
    /**
     * Seconds of the input read at most: the job's `maxDurationSec`, for an input longer than
     * its probe said (a container's duration is only what it declares). A local engine
     * applies it. @default Infinity
     */
    maxDurationSec?: number
  }
  outputs: EngineOutputRequest[]
  /**
   * Bytes the outputs may take together: the job's `maxOutputBytes`, checked before on an
   * estimate from the probe, held while an engine writes (an input may be longer or larger
   * than its probe said). A local engine applies it, under its own cap. @default Infinity
   */
  maxOutputBytes?: number
  /** The storage the input is read from and the outputs are written to. */
  storage: Storage
}

export interface EngineOutputStatus {
  key: string
  state: JobState
  size?: number | null
  durationSec?: number | null
  /** Why this output failed while the job completed (only with `state: 'error'`). */
  error?: { code: JobErrorCode; message: string }
}

/** What an engine says about a job at one moment. */
export interface EngineStatus {
  /** The engine's own id for the job (for local engines, our job id). */
  engineJobId: string
  state: JobState
  /** 0–100, when the engine knows it. */
  progress?: number
  outputs?: EngineOutputStatus[]
  /** Set when `state` is `error`: `DECODE_FAILED`, `ENCODE_FAILED`, `TIMEOUT`, … */
  error?: { code: JobErrorCode; message: string }
}

export interface EngineRunOptions {
  /** Aborting cancels the job: a local engine kills its process and removes partial output. */
  signal: AbortSignal
  /** Called with every intermediate status (progress), in order. */
  onStatus: (status: EngineStatus) => void
}

/**
 * Turns an input into outputs by preset.
 *
 * A local engine (ffmpeg) runs the job inside `run` and resolves with a terminal status.
 * A remote engine (Elastic Transcoder, MediaConvert) submits it and resolves with
 * `submitted` or `progressing`; the service then learns the rest from `getStatus` (polling)
 * or `parseNotification` (pushed by the service).
 *
 * @example
 * const engine = ffmpegEngine({ timeoutMs: 3_600_000 })
 * const status = await engine.run(request, { signal, onStatus: (s) => console.log(s.progress) })
 */
export interface Engine {
  /** Stable name, stored on the job. */
  readonly name: string

  run(request: EngineJobRequest, options: EngineRunOptions): Promise<EngineStatus>

  /**
   * Optional: why this engine cannot produce `preset` (for example an Elastic Transcoder
   * engine and a preset with no Elastic Transcoder id), or `null` when it can. Checked before
   * a job is created.
   */
  unsupportedReason?(preset: Preset): string | null

  /** Optional (remote engines): the current status of a submitted job. */
  getStatus?(engineJobId: string, options?: { signal?: AbortSignal }): Promise<EngineStatus>

  /** Optional (remote engines): asks the service to cancel a submitted job. */
  cancel?(engineJobId: string, options?: { signal?: AbortSignal }): Promise<void>

  /**
   * Optional (remote engines): turns the `Message` of an already verified notification into
   * a status, or `null` when the message is not about a job of this engine.
   */
  parseNotification?(message: unknown): EngineStatus | null

  /** Optional: release what the engine created. */
  close?(): Promise<void>
}
