import { PassThrough } from 'node:stream'
import { Type } from '@sinclair/typebox'
import { jobView } from '../job-view.ts'
import type { ResolvedOptions } from '../plugin-options.ts'
import {
  errorResponses,
  IdParamsSchema,
  JobPageSchema,
  JobSchema,
  JobStateSchema,
  PageQuerySchema,
  ref,
} from '../schemas.ts'
import type { TypedInstance } from '../transcodekit-plugin.ts'

const HEARTBEAT_MS = 15_000

export function registerJobRoutes(app: TypedInstance, settings: ResolvedOptions): void {
  const { service, prefix, urlExpiresInSec } = settings
  const view = (job: Parameters<typeof jobView>[1]) => jobView(service, job, urlExpiresInSec)
  // Open event streams end when the app closes, so that closing does not wait for jobs.
  const streams = new Set<AbortController>()
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
        response: { 200: ref(JobPageSchema), ...errorResponses(400) },
      },
    },
    async (request) => {
      const { limit, cursor, assetId, state } = request.query
      const page = await service.listJobs({ limit, cursor: cursor ?? null, assetId, state })
      return { items: await Promise.all(page.items.map(view)), nextCursor: page.nextCursor }
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
        response: { 200: ref(JobSchema), ...errorResponses(400, 404) },
      },
    },
    async (request) => view(await service.getJob(request.params.id)),
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
          ...errorResponses(400, 404),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params
      // A missing job is a plain 404, before any stream starts.
      await service.getJob(id)
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
          for await (const job of service.watch(id, { signal: controller.signal })) {
            sequence++
            stream.write(
              `id: ${sequence}\nevent: job\ndata: ${JSON.stringify(await view(job))}\n\n`,
            )
          }
        } catch (error) {
          request.log.warn({ err: error }, 'transcodekit: job event stream failed')
        } finally {
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
        response: { 200: ref(JobSchema), ...errorResponses(400, 404, 409) },
      },
    },
    async (request) => view(await service.cancel(request.params.id)),
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
        response: { 201: ref(JobSchema), ...errorResponses(400, 404, 409, 422) },
      },
    },
    async (request, reply) => {
      const job = await service.retry(request.params.id)
      reply.status(201).header('location', `${prefix}/jobs/${job.id}`)
      return view(job)
    },
  )
}
