import type { Owner } from '@transcodekit/core'
import { ElasticTranscoderError, notFound, validationError } from '../et-errors.ts'
import { newEtId } from '../et-ids.ts'
import { notificationTargetProblem } from '../et-notifier.ts'
import { pipelineView } from '../et-views.ts'
import { decodePageToken, encodePageToken, parseAscending } from '../page-token.ts'
import type { ResolvedEtOptions } from '../plugin-options.ts'
import type { EtNotifications, EtPipelineRecord } from '../store/et-store.ts'
import type { EtRequest, RouteContext } from './route-context.ts'

// biome-ignore lint/suspicious/noExplicitAny: untrusted wire JSON, every field is checked here
type Wire = Record<string, any>

const NO_NOTIFICATIONS: EtNotifications = { Progressing: '', Completed: '', Warning: '', Error: '' }

function body(request: EtRequest): Wire {
  const value = request.etBody
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw validationError('The request body must be a JSON object.')
  }
  return value as Wire
}

/** A bucket the owner's pipelines may use; another owner's answers as if it did not exist. */
function bucket(settings: ResolvedEtOptions, owner: Owner, value: unknown, what: string): string {
  if (typeof value !== 'string' || !settings.bucketAllowed(owner, value)) {
    throw validationError(
      `${what}: the bucket ${JSON.stringify(value)} is not one this endpoint is configured with.`,
    )
  }
  return value
}

function notifications(settings: ResolvedEtOptions, value: unknown): EtNotifications {
  if (value === undefined || value === null) return { ...NO_NOTIFICATIONS }
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw validationError('Notifications must be an object.')
  }
  const result = { ...NO_NOTIFICATIONS }
  for (const name of Object.keys(result) as Array<keyof EtNotifications>) {
    const target = (value as Wire)[name] ?? ''
    if (typeof target !== 'string' || target.length > 2048) {
      throw validationError(`Notifications:${name} must be a string.`)
    }
    const problem = notificationTargetProblem(target, settings)
    if (problem) throw validationError(problem)
    result[name] = target
  }
  return result
}

function name(value: unknown): string {
  if (typeof value !== 'string' || value.length < 1 || value.length > 40) {
    throw validationError('Name must be a string of 1 to 40 characters.')
  }
  return value
}

function role(value: unknown): string {
  if (typeof value !== 'string' || value.length < 1 || value.length > 2048) {
    throw validationError('Role must be the ARN of an IAM role.')
  }
  return value
}

function kmsKey(value: unknown): string | null {
  if (value === undefined || value === null || value === '') return null
  if (typeof value !== 'string' || value.length > 255) {
    throw validationError('AwsKmsKeyArn must be a string.')
  }
  return value
}

function outputBucketOf(input: Wire): unknown {
  return input.OutputBucket ?? input.ContentConfig?.Bucket
}

/** CreatePipeline, ListPipelines, ReadPipeline, UpdatePipeline, DeletePipeline, UpdatePipelineStatus, UpdatePipelineNotifications. */
export function registerPipelineRoutes({ app, settings, jobs }: RouteContext): void {
  const { store, arnPrefix } = settings
  const view = (pipeline: EtPipelineRecord) => pipelineView(pipeline, arnPrefix)
  const load = async (request: EtRequest) => {
    const pipeline = await store.getPipeline(request.params.Id ?? '', request.etOwner)
    if (!pipeline) throw notFound('pipeline', request.params.Id ?? '')
    return pipeline
  }

  app.post('/pipelines', async (request: EtRequest, reply) => {
    const input = body(request)
    const pipeline: EtPipelineRecord = {
      id: newEtId(),
      owner: request.etOwner,
      name: name(input.Name),
      status: 'Active',
      inputBucket: bucket(settings, request.etOwner, input.InputBucket, 'InputBucket'),
      outputBucket: bucket(settings, request.etOwner, outputBucketOf(input), 'OutputBucket'),
      role: role(input.Role),
      awsKmsKeyArn: kmsKey(input.AwsKmsKeyArn),
      notifications: notifications(settings, input.Notifications),
      createdAt: new Date(),
    }
    const created = await store.createPipeline(pipeline, {
      maxPerOwner: settings.maxPipelinesPerOwner,
    })
    if (created === 'limit') {
      throw new ElasticTranscoderError(
        'LimitExceededException',
        `Too many pipelines (at most ${settings.maxPipelinesPerOwner}): delete one first.`,
      )
    }
    return reply.status(201).send({ Pipeline: view(pipeline), Warnings: [] })
  })

  app.get('/pipelines', async (request: EtRequest) => {
    const page = await store.listPipelines({
      owner: request.etOwner,
      ascending: parseAscending(request.query.Ascending, true),
      after: decodePageToken(request.query.PageToken),
      limit: settings.pageSize,
    })
    const next = encodePageToken(page.next)
    return { Pipelines: page.items.map(view), ...(next ? { NextPageToken: next } : {}) }
  })

  app.get('/pipelines/:Id', async (request: EtRequest) => ({
    Pipeline: view(await load(request)),
    Warnings: [],
  }))

  app.put('/pipelines/:Id', async (request: EtRequest) => {
    const current = await load(request)
    const input = body(request)
    const updated = await store.updatePipeline(current.id, request.etOwner, {
      ...(input.Name !== undefined ? { name: name(input.Name) } : {}),
      ...(input.InputBucket !== undefined
        ? { inputBucket: bucket(settings, request.etOwner, input.InputBucket, 'InputBucket') }
        : {}),
      ...(outputBucketOf(input) !== undefined
        ? { outputBucket: bucket(settings, request.etOwner, outputBucketOf(input), 'OutputBucket') }
        : {}),
      ...(input.Role !== undefined ? { role: role(input.Role) } : {}),
      ...(input.AwsKmsKeyArn !== undefined ? { awsKmsKeyArn: kmsKey(input.AwsKmsKeyArn) } : {}),
      ...(input.Notifications !== undefined
        ? { notifications: notifications(settings, input.Notifications) }
        : {}),
    })
    if (!updated) throw notFound('pipeline', current.id)
    return { Pipeline: view(updated), Warnings: [] }
  })

  app.delete('/pipelines/:Id', async (request: EtRequest, reply) => {
    const id = request.params.Id ?? ''
    const result = await store.deletePipeline(id, request.etOwner)
    if (result === 'missing') throw notFound('pipeline', id)
    if (result === 'in-use') {
      throw new ElasticTranscoderError(
        'ResourceInUseException',
        `The pipeline ${id} has jobs that are not finished.`,
      )
    }
    return reply.status(202).send({})
  })

  app.post('/pipelines/:Id/status', async (request: EtRequest) => {
    const current = await load(request)
    const status = body(request).Status
    if (status !== 'Active' && status !== 'Paused') {
      throw validationError('Status must be Active or Paused.')
    }
    const updated = await store.updatePipeline(current.id, request.etOwner, { status })
    if (!updated) throw notFound('pipeline', current.id)
    // Paused, the pipeline holds the jobs created in it; Active, it starts them.
    if (status === 'Active') jobs.resumePipeline(request.etOwner, updated.id)
    return { Pipeline: view(updated) }
  })

  app.post('/pipelines/:Id/notifications', async (request: EtRequest) => {
    const current = await load(request)
    const input = body(request)
    if (input.Notifications === undefined) throw validationError('Notifications is required.')
    const updated = await store.updatePipeline(current.id, request.etOwner, {
      notifications: notifications(settings, input.Notifications),
    })
    if (!updated) throw notFound('pipeline', current.id)
    return { Pipeline: view(updated) }
  })
}
