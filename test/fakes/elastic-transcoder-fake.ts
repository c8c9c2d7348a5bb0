import { randomBytes } from 'node:crypto'
import { EventEmitter, once } from 'node:events'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { builtinPresets } from '../../packages/core/src/presets/builtin-presets.ts'
import type { Preset } from '../../packages/core/src/presets/preset-schema.ts'
import { readJson, ServiceError, serveRestJson } from './aws-rest-json.ts'
import { type FakeOutput, objectExists, transcodeObjects } from './fake-transcode.ts'
import type { SnsSigner } from './sns-signer.ts'

/**
 * A wire-level fake of AWS Elastic Transcoder (REST-JSON, API version 2012-09-25): the
 * operations an app uses (ListPipelines, CreateJob, ReadJob, CancelJob), validated the way
 * the service validates them, with jobs really transcoded by ffmpeg from and to an S3
 * endpoint (s3rver), and SNS notifications signed with a test certificate.
 */
export interface EtPipeline {
  Id: string
  Name: string
  InputBucket: string
  OutputBucket: string
  Status?: string
}

export interface EtOutputRecord {
  Id: string
  Key: string
  PresetId: string
  SegmentDuration?: string
  Status: string
  StatusDetail?: string
  Duration?: number
  DurationMillis?: number
  FileSize?: number
  Width?: number
  Height?: number
}

export interface EtJobRecord {
  Id: string
  Arn: string
  PipelineId: string
  Input: { Key: string; [key: string]: unknown }
  OutputKeyPrefix: string
  Outputs: EtOutputRecord[]
  Output?: EtOutputRecord
  Playlists: unknown[]
  Status: string
  UserMetadata?: Record<string, string>
  Timing: { SubmitTimeMillis: number; StartTimeMillis?: number; FinishTimeMillis?: number }
}

export interface EtRequestRecord {
  method: string
  path: string
  query: URLSearchParams
  body: unknown
}

export interface SnsDelivery {
  state: string
  jobId: string
  status: number
  body: string
}

export interface ElasticTranscoderFakeOptions {
  /** The S3 endpoint (s3rver) holding the pipelines' buckets. */
  s3Endpoint: string
  pipelines: EtPipeline[]
  /** Where and how job notifications are posted (one topic for every state). */
  notifications?: { signer: SnsSigner; topicArn: string; endpoint: string }
  /**
   * Keep new jobs `Submitted`: until `start(id)` (`true`), or until the job is first read
   * (`'until-read'`: a queue that is busy until someone looks). @default false
   */
  hold?: boolean | 'until-read'
}

export interface ElasticTranscoderFake {
  /** `http://127.0.0.1:<port>`: give it as the client's `endpoint`. */
  endpoint: string
  requests: EtRequestRecord[]
  jobs: Map<string, EtJobRecord>
  deliveries: SnsDelivery[]
  /** Starts a held job. */
  start(jobId: string): void
  /** Resolves with the job once it is Complete, Canceled or Error. */
  settled(jobId: string): Promise<EtJobRecord>
  close(): Promise<void>
}

const API = '/2012-09-25'
const TERMINAL = ['Complete', 'Canceled', 'Error']
const JOBS_PAGE = 50
const NOT_JSON = new ServiceError(400, 'ValidationException', 'the request body is not JSON')

const presetsById = new Map<string, Preset>()
for (const preset of builtinPresets) {
  if (preset.elasticTranscoderPresetId) presetsById.set(preset.elasticTranscoderPresetId, preset)
}

function etId(): string {
  const digits = `${Date.now()}`.padStart(13, '0').slice(-13)
  return `${digits}-${randomBytes(3).toString('hex')}`
}

function send(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, {
    'content-type': 'application/json',
    'x-amzn-requestid': randomBytes(8).toString('hex'),
  })
  res.end(JSON.stringify(body))
}

export async function startElasticTranscoderFake(
  options: ElasticTranscoderFakeOptions,
): Promise<ElasticTranscoderFake> {
  const requests: EtRequestRecord[] = []
  const jobs = new Map<string, EtJobRecord>()
  const deliveries: SnsDelivery[] = []
  const events = new EventEmitter()
  events.setMaxListeners(0)
  const running = new Set<Promise<void>>()

  function pipeline(id: string): EtPipeline | undefined {
    return options.pipelines.find((p) => p.Id === id)
  }

  function createJob(body: unknown): EtJobRecord {
    const input = body as Record<string, unknown> | null
    if (!input || typeof input !== 'object')
      throw new ServiceError(400, 'ValidationException', 'missing body')
    if (typeof input.PipelineId !== 'string' || !/^\d{13}-\w{6}$/.test(input.PipelineId)) {
      throw new ServiceError(
        400,
        'ValidationException',
        "1 validation error detected: Value at 'pipelineId' failed to satisfy constraint: Member must satisfy regular expression pattern: ^\\d{13}-\\w{6}$",
      )
    }
    const pipe = pipeline(input.PipelineId)
    if (!pipe) {
      throw new ServiceError(
        400,
        'ValidationException',
        `The specified pipeline was not found: account=123456789012, pipelineId=${input.PipelineId}.`,
      )
    }
    const jobInput = input.Input as Record<string, unknown> | undefined
    if (!jobInput || typeof jobInput.Key !== 'string' || jobInput.Key === '') {
      throw new ServiceError(400, 'ValidationException', 'Input:Key is required')
    }
    const outputs = input.Outputs
    if (!Array.isArray(outputs) || outputs.length === 0 || outputs.length > 30) {
      throw new ServiceError(400, 'ValidationException', 'a job has 1 to 30 outputs')
    }
    const prefix = input.OutputKeyPrefix === undefined ? '' : input.OutputKeyPrefix
    if (typeof prefix !== 'string' || prefix.length > 255) {
      throw new ServiceError(
        400,
        'ValidationException',
        'OutputKeyPrefix must be a string of at most 255 characters',
      )
    }
    const keys = new Set<string>()
    const records: EtOutputRecord[] = outputs.map((raw, index) => {
      const output = raw as Record<string, unknown>
      if (typeof output.Key !== 'string' || output.Key === '') {
        throw new ServiceError(400, 'ValidationException', `Outputs[${index}]:Key is required`)
      }
      if (keys.has(output.Key)) {
        throw new ServiceError(
          400,
          'ValidationException',
          `Two outputs have the same key: ${output.Key}`,
        )
      }
      keys.add(output.Key)
      if (typeof output.PresetId !== 'string' || !presetsById.has(output.PresetId)) {
        throw new ServiceError(
          400,
          'ValidationException',
          `The specified preset was not found: presetId=${String(output.PresetId)}.`,
        )
      }
      const preset = presetsById.get(output.PresetId) as Preset
      if (preset.container === 'hls' && typeof output.SegmentDuration !== 'string') {
        throw new ServiceError(
          400,
          'ValidationException',
          `Outputs[${index}]:SegmentDuration is required for an HLS preset`,
        )
      }
      return {
        Id: String(index + 1),
        Key: output.Key,
        PresetId: output.PresetId,
        SegmentDuration: output.SegmentDuration as string | undefined,
        Status: 'Submitted',
      }
    })
    const id = etId()
    const job: EtJobRecord = {
      Id: id,
      Arn: `arn:aws:elastictranscoder:us-east-1:123456789012:job/${id}`,
      PipelineId: pipe.Id,
      Input: jobInput as EtJobRecord['Input'],
      OutputKeyPrefix: prefix,
      Outputs: records,
      Output: records[0],
      Playlists: [],
      Status: 'Submitted',
      UserMetadata: input.UserMetadata as Record<string, string> | undefined,
      Timing: { SubmitTimeMillis: Date.now() },
    }
    jobs.set(id, job)
    // The answer shows the job as created; the work starts after.
    const created = structuredClone(job)
    if (!options.hold) setImmediate(() => start(id))
    return created
  }

  function start(jobId: string) {
    const job = jobs.get(jobId)
    if (job?.Status !== 'Submitted') return
    job.Status = 'Progressing'
    job.Timing.StartTimeMillis = Date.now()
    for (const output of job.Outputs) output.Status = 'Progressing'
    const work = transcodeJob(job).finally(() => running.delete(work))
    running.add(work)
  }

  async function transcodeJob(job: EtJobRecord) {
    const pipe = pipeline(job.PipelineId) as EtPipeline
    await notify(job, 'PROGRESSING')
    const todo: FakeOutput[] = []
    for (const output of job.Outputs) {
      const preset = presetsById.get(output.PresetId) as Preset
      const mainKey = preset.container === 'hls' ? `${output.Key}.m3u8` : output.Key
      const key = `${job.OutputKeyPrefix}${mainKey}`
      // The service never overwrites: an existing output key fails that output (3002).
      if (await objectExists(options.s3Endpoint, pipe.OutputBucket, key)) {
        output.Status = 'Error'
        output.StatusDetail = `3002 The specified object could not be saved in the specified bucket because an object by that name already exists: bucket=${pipe.OutputBucket}, key=${key}.`
      } else {
        todo.push({ key, preset })
      }
    }
    const results =
      todo.length === 0
        ? []
        : await transcodeObjects({
            endpoint: options.s3Endpoint,
            inputBucket: pipe.InputBucket,
            inputKey: job.Input.Key,
            outputBucket: pipe.OutputBucket,
            outputs: todo,
          })
    for (const result of results) {
      const output = job.Outputs.find(
        (o) =>
          `${job.OutputKeyPrefix}${o.Key}` === result.key ||
          `${job.OutputKeyPrefix}${o.Key}.m3u8` === result.key,
      ) as EtOutputRecord
      if (result.ok) {
        output.Status = 'Complete'
        output.FileSize = result.fileSize
        output.Duration =
          result.durationSec === undefined ? undefined : Math.round(result.durationSec)
        output.DurationMillis =
          result.durationSec === undefined ? undefined : Math.round(result.durationSec * 1000)
        output.Width = result.width
        output.Height = result.height
      } else {
        output.Status = 'Error'
        output.StatusDetail = result.detail
      }
    }
    job.Status = job.Outputs.some((o) => o.Status === 'Error') ? 'Error' : 'Complete'
    job.Timing.FinishTimeMillis = Date.now()
    await notify(job, job.Status === 'Error' ? 'ERROR' : 'COMPLETED')
    events.emit(`settled:${job.Id}`, job)
  }

  /** The notification `Message` Elastic Transcoder publishes (lowerCamel keys). */
  function notificationMessage(job: EtJobRecord, state: string) {
    const failed = job.Outputs.find((o) => o.Status === 'Error')
    return {
      state,
      version: '2012-09-25',
      jobId: job.Id,
      pipelineId: job.PipelineId,
      input: { key: job.Input.Key },
      ...(state === 'ERROR' && failed?.StatusDetail
        ? {
            errorCode: Number(failed.StatusDetail.slice(0, 4)),
            messageDetails: failed.StatusDetail,
          }
        : {}),
      outputKeyPrefix: job.OutputKeyPrefix,
      outputs: job.Outputs.map((o) => ({
        id: o.Id,
        presetId: o.PresetId,
        key: o.Key,
        ...(o.SegmentDuration ? { segmentDuration: Number(o.SegmentDuration) } : {}),
        status: o.Status,
        ...(o.StatusDetail ? { statusDetail: o.StatusDetail } : {}),
        ...(o.Duration !== undefined ? { duration: o.Duration } : {}),
        ...(o.Width !== undefined ? { width: o.Width, height: o.Height } : {}),
      })),
      ...(job.UserMetadata ? { userMetadata: job.UserMetadata } : {}),
    }
  }

  async function notify(job: EtJobRecord, state: string) {
    const target = options.notifications
    if (!target) return
    const envelope = target.signer.notification({
      topicArn: target.topicArn,
      subject: `Amazon Elastic Transcoder has ${state === 'PROGRESSING' ? 'started' : 'finished'} transcoding job ${job.Id}`,
      message: JSON.stringify(notificationMessage(job, state)),
    })
    try {
      const { status, body } = await target.signer.deliver(target.endpoint, envelope)
      deliveries.push({ state, jobId: job.Id, status, body })
    } catch (error) {
      deliveries.push({ state, jobId: job.Id, status: 0, body: String(error) })
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://fake')
    const method = req.method ?? 'GET'
    const body = method === 'POST' || method === 'PUT' ? await readJson(req, NOT_JSON) : null
    requests.push({ method, path: url.pathname, query: url.searchParams, body })
    if (!url.pathname.startsWith(`${API}/`)) {
      throw new ServiceError(
        404,
        'UnknownOperationException',
        `no route for ${method} ${url.pathname}`,
      )
    }
    const path = url.pathname.slice(API.length)
    if (method === 'GET' && path === '/pipelines') {
      // One pipeline per page: a client that reads only the first page misses the rest.
      const token = url.searchParams.get('PageToken')
      const index = token === null ? 0 : Number(Buffer.from(token, 'base64url').toString())
      if (!Number.isInteger(index) || index < 0 || index > options.pipelines.length) {
        throw new ServiceError(400, 'ValidationException', 'invalid PageToken')
      }
      const page = options.pipelines.slice(index, index + 1)
      const next =
        index + 1 < options.pipelines.length
          ? Buffer.from(String(index + 1)).toString('base64url')
          : undefined
      return send(res, 200, { Pipelines: page, ...(next ? { NextPageToken: next } : {}) })
    }
    const byPipeline = /^\/jobsByPipeline\/([^/]+)$/.exec(path)
    if (method === 'GET' && byPipeline) {
      const id = decodeURIComponent(byPipeline[1] as string)
      if (!pipeline(id))
        throw new ServiceError(
          404,
          'ResourceNotFoundException',
          `The specified pipeline was not found: pipelineId=${id}.`,
        )
      const all = [...jobs.values()].filter((job) => job.PipelineId === id)
      if (url.searchParams.get('Ascending') !== 'true') all.reverse()
      const token = url.searchParams.get('PageToken')
      const start = token === null ? 0 : Number(Buffer.from(token, 'base64url').toString())
      const page = all.slice(start, start + JOBS_PAGE)
      const next =
        start + JOBS_PAGE < all.length
          ? Buffer.from(String(start + JOBS_PAGE)).toString('base64url')
          : undefined
      return send(res, 200, { Jobs: page, ...(next ? { NextPageToken: next } : {}) })
    }
    if (method === 'POST' && path === '/jobs') {
      return send(res, 201, { Job: createJob(body) })
    }
    const match = /^\/jobs\/([^/]+)$/.exec(path)
    if (match) {
      const id = decodeURIComponent(match[1] as string)
      const job = jobs.get(id)
      if (!job)
        throw new ServiceError(
          404,
          'ResourceNotFoundException',
          `The specified job was not found: jobId=${id}.`,
        )
      if (method === 'GET') {
        send(res, 200, { Job: job })
        if (options.hold === 'until-read') start(id)
        return
      }
      if (method === 'DELETE') {
        if (job.Status !== 'Submitted') {
          throw new ServiceError(
            409,
            'ResourceInUseException',
            `The job ${id} cannot be canceled because its status is ${job.Status}.`,
          )
        }
        job.Status = 'Canceled'
        for (const output of job.Outputs) output.Status = 'Canceled'
        events.emit(`settled:${job.Id}`, job)
        return send(res, 202, {})
      }
    }
    throw new ServiceError(
      404,
      'UnknownOperationException',
      `no route for ${method} ${url.pathname}`,
    )
  }

  const http = await serveRestJson(route, {
    internalErrorType: 'InternalServiceException',
    errorTypeSuffix: ':http://internal.amazon.com/coral/com.amazonaws.ets/',
  })

  return {
    endpoint: http.endpoint,
    requests,
    jobs,
    deliveries,
    start,
    async settled(jobId) {
      const job = jobs.get(jobId)
      if (job && TERMINAL.includes(job.Status) && !running.size) return job
      if (job && TERMINAL.includes(job.Status)) {
        await Promise.all(running)
        return job
      }
      const [settled] = await once(events, `settled:${jobId}`)
      return settled as EtJobRecord
    },
    async close() {
      await Promise.allSettled(running)
      await http.close()
    },
  }
}
