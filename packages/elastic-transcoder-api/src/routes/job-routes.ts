import { notFound, validationError } from '../et-errors.ts'
import { ET_ID } from '../et-ids.ts'
import { jobView } from '../et-views.ts'
import { decodePageToken, encodePageToken, parseAscending } from '../page-token.ts'
import { ET_STATUSES, type EtJobRecord, type EtStatus } from '../store/et-store.ts'
import type { EtRequest, RouteContext } from './route-context.ts'

/** CreateJob, ReadJob, CancelJob, ListJobsByPipeline, ListJobsByStatus. */
export function registerJobRoutes({ app, settings, jobs }: RouteContext): void {
  const view = (job: EtJobRecord) => jobView(job, settings.arnPrefix)
  const page = (request: EtRequest) => ({
    ascending: parseAscending(request.query.Ascending, false),
    after: decodePageToken(request.query.PageToken),
  })
  const listed = (result: { items: EtJobRecord[]; next: string | null }) => {
    const next = encodePageToken(result.next)
    return { Jobs: result.items.map(view), ...(next ? { NextPageToken: next } : {}) }
  }

  app.post('/jobs', async (request: EtRequest, reply) => {
    const job = await jobs.create(request.etOwner, request.etBody)
    return reply.status(201).send({ Job: view(job) })
  })

  app.get('/jobs/:Id', async (request: EtRequest) => ({
    Job: view(await jobs.read(request.etOwner, request.params.Id ?? '')),
  }))

  app.delete('/jobs/:Id', async (request: EtRequest, reply) => {
    await jobs.cancel(request.etOwner, request.params.Id ?? '')
    return reply.status(202).send({})
  })

  app.get('/jobsByPipeline/:PipelineId', async (request: EtRequest) => {
    const pipelineId = request.params.PipelineId ?? ''
    if (
      !ET_ID.test(pipelineId) ||
      !(await settings.store.getPipeline(pipelineId, request.etOwner))
    ) {
      throw notFound('pipeline', pipelineId)
    }
    return listed(await jobs.list(request.etOwner, { pipelineId }, page(request)))
  })

  app.get('/jobsByStatus/:Status', async (request: EtRequest) => {
    const status = request.params.Status as EtStatus
    if (!ET_STATUSES.includes(status)) {
      throw validationError(
        `1 validation error detected: Value '${status}' at 'status' failed to satisfy constraint: Member must satisfy regular expression pattern: (^Submitted$)|(^Progressing$)|(^Complete$)|(^Canceled$)|(^Error$)`,
      )
    }
    return listed(await jobs.list(request.etOwner, { status }, page(request)))
  })
}
