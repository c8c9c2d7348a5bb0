import { randomBytes, randomUUID } from 'node:crypto'
import { EventEmitter, once } from 'node:events'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Preset } from '../../packages/core/src/presets/preset-schema.ts'
import { readJson, ServiceError, serveRestJson } from './aws-rest-json.ts'
import { type FakeOutput, transcodeObjects } from './fake-transcode.ts'
import type { SnsSigner } from './sns-signer.ts'

/**
 * A wire-level fake of AWS Elemental MediaConvert (REST-JSON, lowerCamel, API 2017-08-29):
 * CreateJob (with `clientRequestToken` idempotency), GetJob, CancelJob. It reads the job's
 * settings as MediaConvert would (output groups, containers, codecs, destinations with the
 * extension appended), transcodes with ffmpeg over S3 (s3rver), and publishes EventBridge
 * "MediaConvert Job State Change" events through SNS, signed with the test certificate.
 */
export interface McJobRecord {
  id: string
  arn: string
  role: string
  queue: string
  status: 'SUBMITTED' | 'PROGRESSING' | 'COMPLETE' | 'CANCELED' | 'ERROR'
  jobPercentComplete?: number
  clientRequestToken?: string
  settings: Record<string, unknown>
  userMetadata?: Record<string, string>
  outputGroupDetails?: Array<{
    outputDetails: Array<{ durationInMs?: number; videoDetails?: unknown }>
  }>
  errorCode?: number
  errorMessage?: string
  createdAt: number
}

export interface MediaConvertFakeOptions {
  s3Endpoint: string
  notifications?: { signer: SnsSigner; topicArn: string; endpoint: string }
  /** Keep jobs SUBMITTED until `start(id)` (`true`) or until first read (`'until-read'`). */
  hold?: boolean | 'until-read'
}

export interface MediaConvertFake {
  endpoint: string
  requests: Array<{ method: string; path: string; body: unknown }>
  jobs: Map<string, McJobRecord>
  deliveries: Array<{ status: string; jobId: string; httpStatus: number }>
  start(jobId: string): void
  settled(jobId: string): Promise<McJobRecord>
  close(): Promise<void>
}

/** Request JSON, read field by field as the service would. */
// biome-ignore lint/suspicious/noExplicitAny: untrusted wire JSON, every field is checked where used
type Wire = Record<string, any>

const bad = (message: string) => new ServiceError(400, 'BadRequestException', message)

interface PlannedOutput extends FakeOutput {
  bucket: string
  group: number
  hls: boolean
}

function parseS3(url: unknown, what: string): { bucket: string; key: string } {
  const match = typeof url === 'string' ? /^s3:\/\/([a-z0-9.-]{3,63})\/(.+)$/.exec(url) : null
  if (!match) throw bad(`${what} must be an s3:// URL, got ${JSON.stringify(url)}`)
  return { bucket: match[1] as string, key: match[2] as string }
}

function audioSpec(description: Wire): Preset['audio'] {
  const settings = description.codecSettings ?? {}
  switch (settings.codec) {
    case 'WAV':
      return {
        codec: 'pcm_s16le',
        sampleRate: settings.wavSettings?.sampleRate,
        channels: settings.wavSettings?.channels,
      }
    case 'FLAC':
      return {
        codec: 'flac',
        sampleRate: settings.flacSettings?.sampleRate,
        channels: settings.flacSettings?.channels,
      }
    case 'MP3':
      return {
        codec: 'mp3',
        bitrate: settings.mp3Settings?.bitrate,
        sampleRate: settings.mp3Settings?.sampleRate,
        channels: settings.mp3Settings?.channels,
      }
    case 'AAC':
      return {
        codec: 'aac',
        bitrate: settings.aacSettings?.bitrate,
        sampleRate: settings.aacSettings?.sampleRate,
        channels: settings.aacSettings?.codingMode === 'CODING_MODE_1_0' ? 1 : 2,
      }
    case 'VORBIS':
      return {
        codec: 'vorbis',
        sampleRate: settings.vorbisSettings?.sampleRate,
        channels: settings.vorbisSettings?.channels,
      }
    case 'OPUS':
      return {
        codec: 'opus',
        bitrate: settings.opusSettings?.bitrate,
        channels: settings.opusSettings?.channels,
      }
    default:
      throw bad(`unsupported audio codec ${JSON.stringify(settings.codec)}`)
  }
}

function videoSpec(description: Wire): Preset['video'] {
  const settings = description.codecSettings ?? {}
  const codec = { H_264: 'h264', VP8: 'vp8', VP9: 'vp9' }[settings.codec as string] as
    | 'h264'
    | 'vp8'
    | 'vp9'
    | undefined
  if (!codec) throw bad(`unsupported video codec ${JSON.stringify(settings.codec)}`)
  const codecSettings = settings.h264Settings ?? settings.vp8Settings ?? settings.vp9Settings ?? {}
  if (typeof description.width !== 'number' || typeof description.height !== 'number') {
    throw bad('videoDescription needs width and height')
  }
  return {
    codec,
    maxWidth: description.width,
    maxHeight: description.height,
    bitrate: codecSettings.bitrate,
  }
}

const CONTAINERS: Record<string, { container: Preset['container']; contentType: string }> = {
  MP4: { container: 'mp4', contentType: 'video/mp4' },
  WEBM: { container: 'webm', contentType: 'video/webm' },
  M3U8: { container: 'hls', contentType: 'application/vnd.apple.mpegurl' },
}
const RAW_AUDIO: Record<
  string,
  { container: Preset['container']; extension: string; contentType: string }
> = {
  pcm_s16le: { container: 'wav', extension: 'wav', contentType: 'audio/wav' },
  flac: { container: 'flac', extension: 'flac', contentType: 'audio/flac' },
  mp3: { container: 'mp3', extension: 'mp3', contentType: 'audio/mpeg' },
}

/** What each output of the settings writes, where, as a preset ffmpeg can make. */
function plan(settings: Wire): {
  input: { bucket: string; key: string }
  outputs: PlannedOutput[]
} {
  const inputs = settings.inputs
  if (!Array.isArray(inputs) || inputs.length !== 1)
    throw bad('settings.inputs must hold one input')
  const input = parseS3(inputs[0].fileInput, 'fileInput')
  const groups = settings.outputGroups
  if (!Array.isArray(groups) || groups.length === 0) throw bad('settings.outputGroups is empty')
  const outputs: PlannedOutput[] = []
  groups.forEach((group: Wire, index: number) => {
    const type = group.outputGroupSettings?.type
    const groupSettings =
      type === 'FILE_GROUP_SETTINGS'
        ? group.outputGroupSettings.fileGroupSettings
        : type === 'HLS_GROUP_SETTINGS'
          ? group.outputGroupSettings.hlsGroupSettings
          : null
    if (!groupSettings) throw bad(`unsupported output group type ${JSON.stringify(type)}`)
    const destination = parseS3(groupSettings.destination, 'destination')
    if (!Array.isArray(group.outputs) || group.outputs.length !== 1)
      throw bad('this fake takes one output per group')
    const output = group.outputs[0] as Wire
    const container = output.containerSettings?.container
    const audio =
      Array.isArray(output.audioDescriptions) && output.audioDescriptions[0]
        ? audioSpec(output.audioDescriptions[0])
        : undefined
    const video = output.videoDescription ? videoSpec(output.videoDescription) : undefined
    let shape: { container: Preset['container']; extension: string; contentType: string }
    if (container === 'RAW') {
      const raw = audio && !video ? RAW_AUDIO[audio.codec] : undefined
      if (!raw) throw bad('a RAW container holds one WAV, FLAC or MP3 audio stream here')
      shape = raw
    } else if (CONTAINERS[container]) {
      const known = CONTAINERS[container] as { container: Preset['container']; contentType: string }
      shape = { ...known, extension: container === 'M3U8' ? 'm3u8' : container.toLowerCase() }
      if (container === 'MP4' && !video)
        shape = { ...shape, contentType: 'audio/mp4', extension: 'm4a' }
    } else {
      throw bad(`unsupported container ${JSON.stringify(container)}`)
    }
    if (type === 'HLS_GROUP_SETTINGS' && container !== 'M3U8')
      throw bad('an HLS group writes M3U8 outputs')
    if (!audio && !video) throw bad('an output needs audio or video')
    // MediaConvert names a file <destination name><nameModifier>.<extension>; an HLS group's
    // main playlist is <destination name>.m3u8.
    const extension = type === 'HLS_GROUP_SETTINGS' ? 'm3u8' : (output.extension ?? shape.extension)
    const key =
      type === 'HLS_GROUP_SETTINGS'
        ? `${destination.key}.m3u8`
        : `${destination.key}${output.nameModifier ?? ''}.${extension}`
    const preset: Preset = {
      id: `mc-output-${index}`,
      description: 'from MediaConvert settings',
      container: shape.container,
      extension,
      contentType: shape.contentType,
      ...(audio ? { audio } : {}),
      ...(video ? { video } : {}),
      ...(shape.container === 'hls'
        ? { hls: { segmentSec: groupSettings.segmentLength ?? 10 } }
        : {}),
    }
    outputs.push({
      key,
      preset,
      bucket: destination.bucket,
      group: index,
      hls: type === 'HLS_GROUP_SETTINGS',
    })
  })
  return { input, outputs }
}

export async function startMediaConvertFake(
  options: MediaConvertFakeOptions,
): Promise<MediaConvertFake> {
  const requests: MediaConvertFake['requests'] = []
  const jobs = new Map<string, McJobRecord>()
  const byToken = new Map<string, string>()
  const deliveries: MediaConvertFake['deliveries'] = []
  const plans = new Map<string, ReturnType<typeof plan>>()
  const events = new EventEmitter()
  events.setMaxListeners(0)
  const running = new Set<Promise<void>>()

  function createJob(body: Wire | null): McJobRecord {
    if (!body || typeof body !== 'object') throw bad('missing body')
    if (typeof body.role !== 'string' || !/^arn:aws:iam::\d{12}:role\/.+$/.test(body.role)) {
      throw bad('role must be the ARN of an IAM role')
    }
    if (typeof body.clientRequestToken === 'string') {
      const existing = byToken.get(body.clientRequestToken)
      if (existing) return jobs.get(existing) as McJobRecord
    }
    const planned = plan(body.settings ?? {})
    const id = `${Date.now()}-${randomBytes(3).toString('hex')}`
    const job: McJobRecord = {
      id,
      arn: `arn:aws:mediaconvert:us-east-1:123456789012:jobs/${id}`,
      role: body.role,
      queue: body.queue ?? 'arn:aws:mediaconvert:us-east-1:123456789012:queues/Default',
      status: 'SUBMITTED',
      clientRequestToken: body.clientRequestToken,
      settings: body.settings,
      userMetadata: body.userMetadata,
      createdAt: Math.floor(Date.now() / 1000),
    }
    jobs.set(id, job)
    plans.set(id, planned)
    if (typeof body.clientRequestToken === 'string') byToken.set(body.clientRequestToken, id)
    void publish(job)
    // The answer shows the job as created; the work starts after.
    const created = structuredClone(job)
    if (!options.hold) setImmediate(() => start(id))
    return created
  }

  function start(jobId: string) {
    const job = jobs.get(jobId)
    if (job?.status !== 'SUBMITTED') return
    job.status = 'PROGRESSING'
    job.jobPercentComplete = 0
    const work = transcodeJob(job).finally(() => running.delete(work))
    running.add(work)
  }

  async function transcodeJob(job: McJobRecord) {
    const { input, outputs } = plans.get(job.id) as ReturnType<typeof plan>
    await publish(job)
    const results = await transcodeObjects({
      endpoint: options.s3Endpoint,
      inputBucket: input.bucket,
      inputKey: input.key,
      outputBucket: outputs[0]?.bucket as string,
      outputs,
      onOutput: (done, total) => {
        job.jobPercentComplete = Math.floor((done / total) * 100)
      },
    })
    const failed = results.find((r) => !r.ok)
    if (failed) {
      job.status = 'ERROR'
      job.errorCode = failed.detail?.startsWith('4000 The input file could not be read')
        ? 1010
        : 1030
      job.errorMessage = failed.detail ?? 'failed'
    } else {
      job.status = 'COMPLETE'
      job.jobPercentComplete = 100
      job.outputGroupDetails = results.map((r) => ({
        outputDetails: [
          {
            durationInMs:
              r.durationSec === undefined ? undefined : Math.round(r.durationSec * 1000),
            ...(r.width ? { videoDetails: { widthInPx: r.width, heightInPx: r.height } } : {}),
          },
        ],
      }))
    }
    await publish(job)
    events.emit(`settled:${job.id}`, job)
  }

  /** The EventBridge event MediaConvert emits for a state change. */
  function event(job: McJobRecord) {
    const { outputs } = plans.get(job.id) as ReturnType<typeof plan>
    const detail: Record<string, unknown> = {
      timestamp: Date.now(),
      accountId: '123456789012',
      queue: job.queue,
      jobId: job.id,
      status: job.status,
      userMetadata: job.userMetadata ?? {},
    }
    if (job.status === 'ERROR') {
      detail.errorCode = job.errorCode
      detail.errorMessage = job.errorMessage
    }
    if (job.status === 'COMPLETE') {
      detail.outputGroupDetails = outputs.map((output, index) => {
        const details = job.outputGroupDetails?.[index]?.outputDetails[0] ?? {}
        const s3 = `s3://${output.bucket}/${output.key}`
        return output.hls
          ? {
              type: 'HLS_GROUP',
              playlistFilePaths: [s3],
              outputDetails: [
                { ...details, outputFilePaths: [s3.replace(/\.m3u8$/, '-stream.m3u8')] },
              ],
            }
          : { type: 'FILE_GROUP', outputDetails: [{ ...details, outputFilePaths: [s3] }] }
      })
    }
    return {
      version: '0',
      id: randomUUID(),
      'detail-type': 'MediaConvert Job State Change',
      source: 'aws.mediaconvert',
      account: '123456789012',
      time: new Date().toISOString(),
      region: 'us-east-1',
      resources: [job.arn],
      detail,
    }
  }

  /** Events of one job go out one after the other, each built when its turn comes. */
  const queues = new Map<string, Promise<void>>()
  function publish(job: McJobRecord): Promise<void> {
    const target = options.notifications
    if (!target) return Promise.resolve()
    const status = job.status
    const message = JSON.stringify(event(job))
    const next = (queues.get(job.id) ?? Promise.resolve()).then(async () => {
      const envelope = target.signer.notification({ topicArn: target.topicArn, message })
      try {
        const { status: httpStatus } = await target.signer.deliver(target.endpoint, envelope)
        deliveries.push({ status, jobId: job.id, httpStatus })
      } catch {
        deliveries.push({ status, jobId: job.id, httpStatus: 0 })
      }
    })
    queues.set(job.id, next)
    return next
  }

  function view(job: McJobRecord) {
    return { job }
  }

  async function route(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://fake')
    const method = req.method ?? 'GET'
    const body = method === 'POST' ? await readJson(req, bad('the request body is not JSON')) : null
    requests.push({ method, path: url.pathname, body })
    const send = (status: number, payload: unknown) => {
      res.writeHead(status, {
        'content-type': 'application/json',
        'x-amzn-requestid': randomUUID(),
      })
      res.end(JSON.stringify(payload))
    }
    if (method === 'POST' && url.pathname === '/2017-08-29/jobs') {
      return send(201, view(createJob(body as Wire | null)))
    }
    const match = /^\/2017-08-29\/jobs\/([^/]+)$/.exec(url.pathname)
    if (match) {
      const id = decodeURIComponent(match[1] as string)
      const job = jobs.get(id)
      if (!job)
        throw new ServiceError(404, 'NotFoundException', `The specified job ${id} does not exist`)
      if (method === 'GET') {
        send(200, view(job))
        if (options.hold === 'until-read') start(id)
        return
      }
      if (method === 'DELETE') {
        if (job.status !== 'SUBMITTED') {
          throw new ServiceError(
            409,
            'ConflictException',
            `The job ${id} is ${job.status} and cannot be canceled`,
          )
        }
        job.status = 'CANCELED'
        void publish(job)
        events.emit(`settled:${job.id}`, job)
        return send(202, {})
      }
    }
    throw new ServiceError(404, 'NotFoundException', `no route for ${method} ${url.pathname}`)
  }

  const http = await serveRestJson(route, { internalErrorType: 'InternalServerErrorException' })

  return {
    endpoint: http.endpoint,
    requests,
    jobs,
    deliveries,
    start,
    async settled(jobId) {
      const job = jobs.get(jobId)
      if (job && ['COMPLETE', 'CANCELED', 'ERROR'].includes(job.status)) {
        await Promise.all(running)
        return job
      }
      const [settled] = await once(events, `settled:${jobId}`)
      return settled as McJobRecord
    },
    async close() {
      await Promise.allSettled(running)
      await http.close()
    },
  }
}
