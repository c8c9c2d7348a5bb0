import type { Preset } from './presets/preset-schema.ts'
/**
 * The states of a job and of each of its outputs, named as Elastic Transcoder names them.
 * `submitted → progressing → complete | error | canceled`; a terminal state never changes.
 */
export type JobState = 'submitted' | 'progressing' | 'complete' | 'error' | 'canceled'

export const JOB_STATES: readonly JobState[] = [
  'submitted',
  'progressing',
  'complete',
  'error',
  'canceled',
]

export const TERMINAL_STATES: readonly JobState[] = ['complete', 'error', 'canceled']

export function isTerminal(state: JobState): boolean {
  return TERMINAL_STATES.includes(state)
}

/** One stream of a probed media file. */
export interface MediaStream {
  index: number
  type: 'audio' | 'video' | 'subtitle' | 'data' | 'attachment'
  codec: string
  durationSec: number | null
  bitRate: number | null
  width?: number
  height?: number
  frameRate?: number
  sampleRate?: number
  channels?: number
}

/** What ffprobe (or an engine) learned about a media file. */
export interface MediaInfo {
  /** The demuxer that recognised the file (`mp3`, `mov,mp4,m4a,3gp,3g2,mj2`, …). */
  formatName: string
  durationSec: number | null
  bitRate: number | null
  streams: MediaStream[]
}

/**
 * Who a resource belongs to: an opaque string the app chooses (a user id, a tenant, an API
 * key's name). Every read, listing, change and idempotency key is scoped to it.
 */
export type Owner = string

/** The owner of everything made without one: apps with no notion of owners, and rows from before owners. */
export const DEFAULT_OWNER: Owner = 'default'

/** An uploaded original. */
export interface Asset {
  id: string
  /** Who uploaded it; its jobs belong to the same owner. */
  owner: Owner
  /** Storage key of the original; made by the server, never from client input. */
  storageKey: string
  /** The name the client gave. Metadata only: it never becomes part of a path or key. */
  originalFilename: string | null
  /** Content type detected from the bytes, not the one the client claimed. */
  contentType: string
  size: number
  sha256: string
  /**
   * What the probe learned; `null` until a worker probes an asset ingested with
   * `probe: 'deferred'` (its first job does, before anything else).
   */
  media: MediaInfo | null
  createdAt: Date
}

/** One file a job writes. */
export interface Output {
  jobId: string
  /** Short name, unique within the job; the file name of its key without extension. */
  name: string
  /** The canonical preset id of the catalog. */
  presetId: string
  /**
   * The name the preset was asked for by, when it is not the canonical id: an Elastic
   * Transcoder id (`1351620000001-300300` for `wav`) or an alias. Absent when asked by its id.
   */
  requestedPresetId?: string
  /**
   * The preset itself, for a custom preset the caller passed with the job (`customPresets`)
   * rather than one of the catalog: the job runs from this copy. Absent for catalog presets.
   */
  preset?: Preset
  storageKey: string
  contentType: string
  state: JobState
  size: number | null
  durationSec: number | null
  /**
   * Why this output failed while the others of its job could complete (a video with no
   * frame where the thumbnail is taken): the job is then `complete` and this output `error`.
   */
  errorCode?: string | null
  errorMessage?: string | null
}

export interface Job {
  id: string
  /** The owner of its asset. */
  owner: Owner
  assetId: string
  /** Name of the engine that runs it (`ffmpeg`, `elastic-transcoder`, `mediaconvert`). */
  engine: string
  /** Id of the job at the engine, once submitted there (remote engines). */
  engineJobId: string | null
  state: JobState
  /** 0–100; never goes backwards. */
  progress: number
  errorCode: string | null
  errorMessage: string | null
  /** Unique per owner: the same key from the same owner always gives the same job. */
  idempotencyKey: string | null
  /** How many times a worker has started this job. */
  attempts: number
  outputs: Output[]
  createdAt: Date
  updatedAt: Date
  finishedAt: Date | null
}

/** A page of a cursor-paginated listing, newest first. */
export interface Page<T> {
  items: T[]
  /** Pass as `cursor` to get the next page; `null` on the last page. */
  nextCursor: string | null
}

export interface PageRequest {
  /** @default 20 */
  limit?: number
  cursor?: string | null
}
