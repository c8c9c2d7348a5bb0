import { PassThrough } from 'node:stream'
import { Type } from '@sinclair/typebox'
import type { Job } from '@transcodekit/core'
import type { FastifyRequest } from 'fastify'
import { authorize, mayDownload, ownerOf, reserveRoomForJob } from '../access-control.ts'
import { RateLimitedError } from '../http-errors.ts'
import { jobView } from '../job-view.ts'
import type { ResolvedOptions } from '../plugin-options.ts'
import {
  errorResponses,
  IdParamsSchema,
  JobPageSchema,
  JobSchema,
  JobStateSchema,
  type JobView,
  PageQuerySchema,
  ref,
} from '../schemas.ts'
import type { TypedInstance } from '../typed-instance.ts'

const HEARTBEAT_MS = 15_000

export function registerJobRoutes(app: TypedInstance, settings: ResolvedOptions): void {
  const { service, prefix } = settings
  const view = (request: FastifyRequest, job: Job) => ownedJobView(settings, request, job)
  /** The owner's job (another owner's answers 404), once `action` on it is allowed. */
  const ownJob = async (
    request: FastifyRequest,
    id: string,
    action: 'read' | 'cancel' | 'retry',
  ) => {
    const job = await service.getJob(id, { owner: ownerOf(request) })
    await authorize(settings, request, action, { type: 'job', job })
    return job
  }
  // Open event streams end when the app closes, so that closing does not wait for jobs.
  const streams = new Set<AbortController>()
  /** Open event streams per owner, for `maxEventStreamsPerOwner`. */
  const openStreams = new Map<string, number>()
  app.addHook('preClose', async () => {
    for (const controller of streams) controller.abort()
  })

  app.get(
    '/jobs',
    {
      schema: {
        operationId: 'listJobs',
        tags: ['transcodekit'],
        summary: 'List jobs, newest first',
        querystring: Type.Composite([
          PageQuerySchema,
          Type.Object({
            assetId: Type.Optional(Type.String({ format: 'uuid' })),
            state: Type.Optional(ref(JobStateSchema)),
          }),
        ]),
        response: { 200: ref(JobPageSchema), ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      await authorize(settings, request, 'list')
      const { limit, cursor, assetId, state } = request.query
      const page = await service.listJobs({
        owner: ownerOf(request),
        limit,
        cursor: cursor ?? null,
        assetId,
        state,
      })
      return {
        items: await Promise.all(page.items.map((job) => view(request, job))),
        nextCursor: page.nextCursor,
      }
    },
  )

  app.get(
    '/jobs/:id',
    {
      schema: {
        operationId: 'getJob',
        tags: ['transcodekit'],
        summary: 'Read a job: state, progress, and each output with its URL once complete',
        params: IdParamsSchema,
        response: { 200: ref(JobSchema), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => view(request, await ownJob(request, request.params.id, 'read')),
  )

  app.get(
    '/jobs/:id/events',
    {
      schema: {
        operationId: 'streamJobEvents',
        tags: ['transcodekit'],
        summary: 'Server-sent events of a job until it ends',
        description:
          'A `text/event-stream`: an `event: job` whose `data` is the job (as `GET /jobs/{id}` ' +
          'answers it) now and on every change; the stream closes after the job reaches ' +
          '`complete`, `error` or `canceled`. Comment lines keep the connection alive.',
        params: IdParamsSchema,
        response: {
          200: {
            description: 'The event stream',
            content: { 'text/event-stream': { schema: Type.String() } },
          },
          ...errorResponses(400, 401, 403, 404, 429),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params
      // A missing job (or another owner's) is a plain 404, before any stream starts.
      const owned = await ownJob(request, id, 'read')
      const download = await mayDownload(settings, request, owned)
      const open = openStreams.get(owned.owner) ?? 0
      if (open >= settings.maxEventStreamsPerOwner) {
        throw RateLimitedError(
          `at most ${settings.maxEventStreamsPerOwner} event streams open at once: close one, or read the job`,
        )
      }
      openStreams.set(owned.owner, open + 1)
      const controller = new AbortController()
      streams.add(controller)
      const stream = new PassThrough()
      reply.raw.once('close', () => controller.abort())
      const heartbeat = setInterval(() => stream.write(': keep-alive\n\n'), HEARTBEAT_MS)
      heartbeat.unref()
      void (async () => {
        try {
          stream.write('retry: 2000\n\n')
          let sequence = 0
          for await (const job of service.watch(id, {
            owner: owned.owner,
            signal: controller.signal,
          })) {
            sequence++
            const data = withoutUrls(await jobView(service, job, settings), download)
            stream.write(`id: ${sequence}\nevent: job\ndata: ${JSON.stringify(data)}\n\n`)
          }
        } catch (error) {
          request.log.warn({ err: error }, 'transcodekit: job event stream failed')
        } finally {
          const left = (openStreams.get(owned.owner) ?? 1) - 1
          if (left > 0) openStreams.set(owned.owner, left)
          else openStreams.delete(owned.owner)
          clearInterval(heartbeat)
          streams.delete(controller)
          stream.end()
        }
      })()
      return (
        reply
          .header('content-type', 'text/event-stream; charset=utf-8')
          .header('cache-control', 'no-cache, no-transform')
          .header('x-accel-buffering', 'no')
          // The schema documents the text; the body is a stream of it.
          .send(stream as unknown as string)
      )
    },
  )

  app.post(
    '/jobs/:id/cancel',
    {
      schema: {
        operationId: 'cancelJob',
        tags: ['transcodekit'],
        summary: 'Cancel a job that has not ended',
        description: 'Canceling a canceled job answers it as it is; a finished job answers 409.',
        params: IdParamsSchema,
        response: { 200: ref(JobSchema), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const job = await ownJob(request, request.params.id, 'cancel')
      return view(request, await service.cancel(job.id, { owner: job.owner }))
    },
  )

  app.post(
    '/jobs/:id/retry',
    {
      schema: {
        operationId: 'retryJob',
        tags: ['transcodekit'],
        summary: 'Run a failed or canceled job again, as a new job',
        description:
          'Retrying the same job twice answers the same new job. 422 when the input exceeds ' +
          "the server's job limits (they may have changed since the job was made).",
        params: IdParamsSchema,
        response: { 201: ref(JobSchema), ...errorResponses(400, 401, 403, 404, 409, 422, 429) },
      },
    },
    async (request, reply) => {
      const failed = await ownJob(request, request.params.id, 'retry')
      const release = await reserveRoomForJob(settings, request, `retry:${failed.id}`)
      const job = await service.retry(failed.id, { owner: failed.owner }).finally(release)
      reply.status(201).header('location', `${prefix}/jobs/${job.id}`)
      return view(request, job)
    },
  )
}

/** A job as the routes show it to its owner: output URLs only where `download` is allowed. */
export async function ownedJobView(
  settings: ResolvedOptions,
  request: FastifyRequest,
  job: Job,
): Promise<JobView> {
  const view = await jobView(settings.service, job, settings)
  return withoutUrls(view, await mayDownload(settings, request, job))
}

function withoutUrls(view: JobView, download: boolean): JobView {
  if (download) return view
  return {
    ...view,
    outputs: view.outputs.map((output) => ({ ...output, url: null, downloadUrl: null })),
  }
}
