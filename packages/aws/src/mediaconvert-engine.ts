import assert from 'node:assert'
import {
  type AudioDescription,
  CancelJobCommand,
  CreateJobCommand,
  GetJobCommand,
  type Job as McJob,
  type MediaConvertClient,
  type Output,
  type OutputGroup,
  type VideoDescription,
} from '@aws-sdk/client-mediaconvert'
import {
  AbortedError,
  type AudioSpec,
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
  type VideoSpec,
} from '@transcodekit/core'
import { notificationBody, serviceError, submissionError } from './aws-errors.ts'
import { S3Storage } from './s3-storage.ts'

export interface MediaConvertEngineOptions {
  /** The client (on the account's regional endpoint); never destroyed by the engine. */
  client: MediaConvertClient
  /** ARN of the IAM role MediaConvert assumes to read the input and write the outputs. */
  role: string
  /** The bucket inputs are read from and outputs written to (that of the `S3Storage`). */
  bucket: string
  /** ARN of the queue. @default the account's default queue */
  queue?: string
  /** What the storage puts before every key in the bucket (its `prefix`). @default '' */
  objectKeyPrefix?: string
}

const STATES: Record<string, JobState> = {
  SUBMITTED: 'submitted',
  PROGRESSING: 'progressing',
  STATUS_UPDATE: 'progressing',
  INPUT_INFORMATION: 'progressing',
  COMPLETE: 'complete',
  CANCELED: 'canceled',
  ERROR: 'error',
}

function mediaConvertState(status: unknown): JobState | null {
  return typeof status === 'string' ? (STATES[status.toUpperCase()] ?? null) : null
}

/** MediaConvert error codes: 1xxx are about the input, 3xxx about S3 and permissions. */
function errorCode(code: unknown): JobErrorCode {
  const text = String(code ?? '')
  if (text.startsWith('1')) return 'DECODE_FAILED'
  if (text.startsWith('3')) return 'STORAGE_FAILED'
  return 'ENCODE_FAILED'
}

function channels(audio: AudioSpec): number {
  return audio.channels ?? 2
}

function audioDescription(audio: AudioSpec): AudioDescription {
  const sampleRate = audio.sampleRate ?? 44_100
  const codecSettings = (() => {
    switch (audio.codec) {
      case 'pcm_s16le':
        return {
          Codec: 'WAV',
          WavSettings: {
            BitDepth: 16,
            Channels: channels(audio),
            SampleRate: sampleRate,
            Format: 'RIFF',
          },
        }
      case 'flac':
        return {
          Codec: 'FLAC',
          FlacSettings: { BitDepth: 16, Channels: channels(audio), SampleRate: sampleRate },
        }
      case 'mp3':
        return {
          Codec: 'MP3',
          Mp3Settings: {
            Bitrate: audio.bitrate ?? 192_000,
            Channels: channels(audio),
            RateControlMode: 'CBR',
            SampleRate: sampleRate,
          },
        }
      case 'aac':
        return {
          Codec: 'AAC',
          AacSettings: {
            Bitrate: audio.bitrate ?? 160_000,
            CodingMode: channels(audio) === 1 ? 'CODING_MODE_1_0' : 'CODING_MODE_2_0',
            SampleRate: sampleRate,
            CodecProfile: 'LC',
            RateControlMode: 'CBR',
          },
        }
      case 'opus':
        return {
          Codec: 'OPUS',
          OpusSettings: {
            Bitrate: audio.bitrate ?? 96_000,
            Channels: channels(audio),
            SampleRate: 48_000,
          },
        }
      case 'vorbis':
        return {
          Codec: 'VORBIS',
          VorbisSettings: { Channels: channels(audio), SampleRate: sampleRate, VbrQuality: 4 },
        }
    }
  })()
  return { AudioSourceName: 'Audio Selector 1', CodecSettings: codecSettings } as AudioDescription
}

function videoDescription(video: VideoSpec): VideoDescription {
  const framerate = video.maxFrameRate
    ? {
        FramerateControl: 'SPECIFIED',
        FramerateNumerator: Math.round(video.maxFrameRate * 1000),
        FramerateDenominator: 1000,
      }
    : { FramerateControl: 'INITIALIZE_FROM_SOURCE' }
  const codecSettings = (() => {
    switch (video.codec) {
      case 'h264':
        return {
          Codec: 'H_264',
          H264Settings: {
            RateControlMode: 'CBR',
            Bitrate: video.bitrate ?? 2_000_000,
            CodecProfile: (video.profile ?? 'main').toUpperCase(),
            ...framerate,
          },
        }
      case 'vp8':
        return {
          Codec: 'VP8',
          Vp8Settings: {
            RateControlMode: 'VBR',
            Bitrate: video.bitrate ?? 2_000_000,
            ...framerate,
          },
        }
      case 'vp9':
        return {
          Codec: 'VP9',
          Vp9Settings: {
            RateControlMode: 'VBR',
            Bitrate: video.bitrate ?? 2_000_000,
            ...framerate,
          },
        }
    }
  })()
  return {
    Width: video.maxWidth,
    Height: video.maxHeight,
    // Fit inside the box, keeping the aspect ratio, never upscaling: what the preset means.
    ScalingBehavior: 'FIT_NO_UPSCALE',
    CodecSettings: codecSettings,
  } as VideoDescription
}

/**
 * The MediaConvert output group that makes `preset`, written to `destination`
 * (`s3://bucket/path/name`: MediaConvert adds the extension), or `null` when MediaConvert
 * cannot make it (see `mediaConvertUnsupportedReason`).
 */
export function presetToMediaConvertOutput(
  preset: Preset,
  destination: string,
): OutputGroup | null {
  if (mediaConvertUnsupportedReason(preset)) return null
  if (preset.image) {
    return fileGroup(preset.id, destination, {
      Extension: preset.extension,
      ContainerSettings: { Container: 'RAW' },
      VideoDescription: {
        Width: preset.image.maxWidth,
        Height: preset.image.maxHeight,
        ScalingBehavior: 'FIT_NO_UPSCALE',
        CodecSettings: {
          Codec: 'FRAME_CAPTURE',
          FrameCaptureSettings: {
            FramerateNumerator: 1,
            FramerateDenominator: 10,
            MaxCaptures: 1,
            Quality: 80,
          },
        },
      },
    })
  }
  const audio = preset.audio ? [audioDescription(preset.audio)] : undefined
  const video = preset.video ? videoDescription(preset.video) : undefined
  if (preset.container === 'hls') {
    return {
      Name: preset.id,
      OutputGroupSettings: {
        Type: 'HLS_GROUP_SETTINGS',
        HlsGroupSettings: {
          Destination: destination,
          SegmentLength: preset.hls?.segmentSec ?? 10,
          MinSegmentLength: 0,
          DirectoryStructure: 'SINGLE_DIRECTORY',
          ManifestDurationFormat: 'INTEGER',
        },
      },
      Outputs: [
        {
          NameModifier: '-stream',
          ContainerSettings: { Container: 'M3U8' },
          ...(video ? { VideoDescription: video } : {}),
          ...(audio ? { AudioDescriptions: audio } : {}),
        },
      ],
    } as OutputGroup
  }
  const container = (
    { wav: 'RAW', flac: 'RAW', mp3: 'RAW', mp4: 'MP4', webm: 'WEBM', ogg: 'OGG' } as const
  )[preset.container as 'wav' | 'flac' | 'mp3' | 'mp4' | 'webm' | 'ogg']
  return fileGroup(preset.id, destination, {
    Extension: preset.extension,
    ContainerSettings: { Container: container },
    ...(video ? { VideoDescription: video } : {}),
    ...(audio ? { AudioDescriptions: audio } : {}),
  })
}

/** An output group that writes one file, `<destination>.<extension>`. */
function fileGroup(name: string, destination: string, output: Output): OutputGroup {
  return {
    Name: name,
    OutputGroupSettings: {
      Type: 'FILE_GROUP_SETTINGS',
      FileGroupSettings: { Destination: destination },
    },
    Outputs: [output],
  } as OutputGroup
}

/** Why MediaConvert cannot make `preset` under its output key, or `null`. */
export function mediaConvertUnsupportedReason(preset: Preset): string | null {
  if (preset.image?.source === 'waveform')
    return `MediaConvert cannot draw a waveform (preset ${preset.id})`
  if (preset.image) {
    // Frame captures are named `<name>.<7-digit index>.jpg`: never the output key we promise.
    return `MediaConvert names frame captures with a sequence number, so preset ${preset.id} cannot land on its output key`
  }
  if (preset.container === 'ogg') return `MediaConvert has no Ogg container (preset ${preset.id})`
  if (preset.audio?.codec === 'opus' && preset.container !== 'webm') {
    return `MediaConvert writes Opus only in WebM (preset ${preset.id})`
  }
  return null
}

/** AWS Elemental MediaConvert as an `Engine`, from the same preset catalog. */
export class MediaConvertEngine implements Engine {
  readonly name = 'mediaconvert'
  readonly #client: MediaConvertClient
  readonly #role: string
  readonly #bucket: string
  readonly #queue: string | undefined
  readonly #objectKeyPrefix: string

  constructor(options: MediaConvertEngineOptions) {
    assert(options.client, 'mediaConvertEngine: the `client` option is required')
    if (typeof options.role !== 'string' || !options.role.startsWith('arn:')) {
      throw new ConfigurationError('mediaConvertEngine: `role` must be the ARN of an IAM role')
    }
    if (typeof options.bucket !== 'string' || options.bucket.length < 3) {
      throw new ConfigurationError('mediaConvertEngine: `bucket` must be the bucket of the storage')
    }
    this.#client = options.client
    this.#role = options.role
    this.#bucket = options.bucket
    this.#queue = options.queue
    this.#objectKeyPrefix = options.objectKeyPrefix ?? ''
  }

  unsupportedReason(preset: Preset): string | null {
    return mediaConvertUnsupportedReason(preset)
  }

  #s3Url(objectKey: string): string {
    return `s3://${this.#bucket}/${objectKey}`
  }

  /** `s3://bucket/<object prefix><key>` → `<key>`, or `null` for anything else. */
  #storageKey(url: string): string | null {
    const head = `s3://${this.#bucket}/${this.#objectKeyPrefix}`
    return url.startsWith(head) ? url.slice(head.length) : null
  }

  async run(request: EngineJobRequest, options: EngineRunOptions): Promise<EngineStatus> {
    if (options.signal.aborted) {
      throw new AbortedError('the job was canceled before it was submitted', {
        cause: options.signal.reason,
      })
    }
    if (request.storage instanceof S3Storage) {
      if (
        request.storage.bucket !== this.#bucket ||
        request.storage.prefix !== this.#objectKeyPrefix
      ) {
        throw new ConfigurationError(
          `the storage is s3://${request.storage.bucket}/${request.storage.prefix}, the engine was given s3://${this.#bucket}/${this.#objectKeyPrefix}`,
        )
      }
    }
    const groups = request.outputs.map((output) => {
      const reason = this.unsupportedReason(output.preset)
      if (reason) throw new EngineError('ENGINE_REJECTED', reason)
      const suffix = `.${output.preset.extension}`
      if (!output.key.endsWith(suffix)) {
        throw new EngineError('ENGINE_REJECTED', `output ${output.key} does not end with ${suffix}`)
      }
      // MediaConvert appends the extension to the destination's last segment.
      const destination = this.#s3Url(this.#objectKeyPrefix + output.key.slice(0, -suffix.length))
      return presetToMediaConvertOutput(output.preset, destination) as OutputGroup
    })
    const hasVideo = request.outputs.some((o) => o.preset.video)
    let job: McJob | undefined
    try {
      const response = await this.#client.send(
        new CreateJobCommand({
          Role: this.#role,
          Queue: this.#queue,
          // Our job id: a retried submission gives back the same MediaConvert job.
          ClientRequestToken: request.jobId,
          UserMetadata: { transcodekitJobId: request.jobId },
          Settings: {
            Inputs: [
              {
                FileInput: this.#s3Url(this.#objectKeyPrefix + request.input.key),
                AudioSelectors: { 'Audio Selector 1': { DefaultSelection: 'DEFAULT' } },
                ...(hasVideo ? { VideoSelector: {} } : {}),
                TimecodeSource: 'ZEROBASED',
              },
            ],
            OutputGroups: groups,
          },
        }),
        { abortSignal: options.signal },
      )
      job = response.Job
    } catch (error) {
      throw submissionError('MediaConvert', error)
    }
    if (!job?.Id) throw new EngineError('ENGINE_UNAVAILABLE', 'MediaConvert returned no job id')
    return this.#status(job)
  }

  async getStatus(
    engineJobId: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<EngineStatus> {
    try {
      const response = await this.#client.send(new GetJobCommand({ Id: engineJobId }), {
        abortSignal: options.signal,
      })
      if (!response.Job) throw new EngineError('ENGINE_UNAVAILABLE', 'GetJob returned no job')
      return this.#status(response.Job)
    } catch (error) {
      if (serviceError(error).name === 'NotFoundException') {
        throw new NotFoundError('MediaConvert job', engineJobId, { cause: error })
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
      if (name === 'NotFoundException')
        throw new NotFoundError('MediaConvert job', engineJobId, { cause: error })
      if (name === 'ConflictException' || name === 'BadRequestException') {
        throw new InvalidStateError(
          `MediaConvert job ${engineJobId} can no longer be canceled: ${message}`,
        )
      }
      throw error
    }
  }

  /**
   * An EventBridge "MediaConvert Job State Change" event (as SNS delivers it: the event is
   * the `Message`) as a status; `null` for other events and for jobs of other buckets.
   */
  parseNotification(message: unknown): EngineStatus | null {
    const value = notificationBody(message)
    const event = value as {
      source?: unknown
      'detail-type'?: unknown
      detail?: Record<string, unknown>
    } | null
    if (!event || typeof event !== 'object' || event.source !== 'aws.mediaconvert') return null
    if (event['detail-type'] !== 'MediaConvert Job State Change' || !event.detail) return null
    const detail = event.detail
    const state = mediaConvertState(detail.status)
    if (!state || typeof detail.jobId !== 'string') return null
    const status: EngineStatus = { engineJobId: detail.jobId, state }
    const progress = (detail.jobProgress as { jobPercentComplete?: unknown } | undefined)
      ?.jobPercentComplete
    if (typeof progress === 'number') status.progress = progress
    if (state === 'error') {
      status.error = {
        code: errorCode(detail.errorCode),
        message: `MediaConvert failed the job (${String(detail.errorCode ?? '?')}): ${String(detail.errorMessage ?? 'no message')}`,
      }
    }
    const outputs: EngineOutputStatus[] = []
    for (const group of Array.isArray(detail.outputGroupDetails) ? detail.outputGroupDetails : []) {
      const g = group as { playlistFilePaths?: unknown; outputDetails?: unknown }
      const details = Array.isArray(g.outputDetails)
        ? (g.outputDetails as Record<string, unknown>[])
        : []
      const durationMs = details.find((d) => typeof d.durationInMs === 'number')?.durationInMs as
        | number
        | undefined
      // An HLS group's file is its main playlist; a file group's, the output's file.
      const paths = Array.isArray(g.playlistFilePaths)
        ? g.playlistFilePaths
        : details.flatMap((d) => (Array.isArray(d.outputFilePaths) ? d.outputFilePaths : []))
      for (const path of paths) {
        const key = typeof path === 'string' ? this.#storageKey(path) : null
        if (key)
          outputs.push({
            key,
            state,
            durationSec: durationMs === undefined ? null : durationMs / 1000,
          })
      }
    }
    if (outputs.length > 0) status.outputs = outputs
    return status
  }

  #status(job: McJob): EngineStatus {
    const state = mediaConvertState(job.Status) ?? 'submitted'
    const status: EngineStatus = { engineJobId: job.Id as string, state }
    if (typeof job.JobPercentComplete === 'number') status.progress = job.JobPercentComplete
    const groups = job.Settings?.OutputGroups ?? []
    status.outputs = groups.flatMap((group, index) => {
      const destination =
        group.OutputGroupSettings?.FileGroupSettings?.Destination ??
        group.OutputGroupSettings?.HlsGroupSettings?.Destination
      const output = group.Outputs?.[0]
      if (!destination) return []
      const extension = group.OutputGroupSettings?.HlsGroupSettings
        ? 'm3u8'
        : (output?.Extension ?? '')
      const key = this.#storageKey(`${destination}.${extension}`)
      if (!key) return []
      const durationMs = job.OutputGroupDetails?.[index]?.OutputDetails?.[0]?.DurationInMs
      return [{ key, state, durationSec: durationMs === undefined ? null : durationMs / 1000 }]
    })
    if (state === 'error') {
      status.error = {
        code: errorCode(job.ErrorCode),
        message: `MediaConvert failed the job (${job.ErrorCode ?? '?'}): ${job.ErrorMessage ?? 'no message'}`,
      }
    }
    if (isTerminal(state)) status.progress = state === 'complete' ? 100 : status.progress
    return status
  }
}

/**
 * AWS Elemental MediaConvert as an `Engine`: outputs from the preset catalog (so Elastic
 * Transcoder preset ids keep working), `ClientRequestToken` = our job id.
 *
 * @example
 * const engine = mediaConvertEngine({ client: new MediaConvertClient({ region }), role, bucket: 'media' })
 */
export function mediaConvertEngine(options: MediaConvertEngineOptions): MediaConvertEngine {
  return new MediaConvertEngine(options)
}
