import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply } from 'fastify'
import fp from 'fastify-plugin'
import { EtCustomPresets } from './et-custom-presets.ts'
import { ElasticTranscoderError, validationError } from './et-errors.ts'
import { EtJobStarter } from './et-job-start.ts'
import { EtJobSync } from './et-job-sync.ts'
import { EtJobs } from './et-jobs.ts'
import { EtNotifier } from './et-notifier.ts'
import {
  type ElasticTranscoderApiOptions,
  type ResolvedEtOptions,
  resolveOptions,
} from './plugin-options.ts'
import { registerJobRoutes } from './routes/job-routes.ts'
import { registerPipelineRoutes } from './routes/pipeline-routes.ts'
import { registerPresetRoutes } from './routes/preset-routes.ts'
import type { EtRequest } from './routes/route-context.ts'
import { SigV4Verifier } from './sigv4-verifier.ts'

/** The path every route of the API lives under, as the SDKs call it. */
export const API_VERSION_PATH = '/2012-09-25'

const EMPTY = Buffer.alloc(0)

function sendError(reply: FastifyReply, error: ElasticTranscoderError) {
  return reply
    .status(error.statusCode)
    .header('x-amzn-errortype', `${error.code}:http://internal.amazon.com/coral/com.amazonaws.ets/`)
    .header('content-type', 'application/json')
    .send({ __type: error.code, message: error.message })
}

/** A Fastify error (a body too large, a bad header) or ours, as the ET error to answer. */
function asEtError(error: unknown, bodyLimit: number): ElasticTranscoderError | null {
  if (error instanceof ElasticTranscoderError) return error
  const { statusCode, code } = (error ?? {}) as { statusCode?: number; code?: string }
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return validationError(`The request body exceeds ${bodyLimit} bytes.`)
  }
  if (statusCode !== undefined && statusCode >= 400 && statusCode < 500) {
    return validationError(error instanceof Error ? error.message : 'The request is not valid.')
  }
  return null
}

const api: FastifyPluginAsync<{
  settings: ResolvedEtOptions
  jobs: EtJobs
  presets: EtCustomPresets
}> = async (app: FastifyInstance, { settings, jobs, presets }) => {
  const verifier = new SigV4Verifier(settings.keys, { maxSkewMs: settings.maxClockSkewMs })

  // The signature covers the raw bytes: the body is kept as sent, whatever its type, and
  // parsed as JSON only once it is verified.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser(
    '*',
    { parseAs: 'buffer', bodyLimit: settings.bodyLimit },
    (_request, body, done) => done(null, body),
  )
  // Not part of the app's OpenAPI document: the SDKs carry their own model of this API.
  app.addHook('onRoute', (route) => {
    route.schema = { ...route.schema, hide: true } as typeof route.schema
  })
  app.decorateRequest('etOwner', '')
  app.decorateRequest('etBody', null)

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-amzn-requestid', randomUUID())
    verifier.precheck({ method: request.method, url: request.url, headers: request.headers })
  })
  app.addHook('preHandler', async (request) => {
    const body = Buffer.isBuffer(request.body) ? request.body : EMPTY
    request.etOwner = await verifier.verify({
      method: request.method,
      url: request.url,
      headers: request.headers,
      body,
    })
    if (body.length > 0) {
      try {
        request.etBody = JSON.parse(body.toString('utf8'))
      } catch {
        throw validationError('The request body is not valid JSON.')
      }
    }
  })

  app.setErrorHandler((error, request, reply) => {
    const known = asEtError(error, settings.bodyLimit)
    if (known) {
      request.log.info({ type: known.code }, known.message)
      if (!request.raw.complete) reply.header('connection', 'close')
      return sendError(reply, known)
    }
    request.log.error({ err: error }, 'elastic-transcoder-api: request failed')
    return sendError(
      reply,
      new ElasticTranscoderError(
        'InternalServiceException',
        'The service could not complete the request.',
      ),
    )
  })
  app.setNotFoundHandler((request: EtRequest, reply) =>
    sendError(
      reply,
      new ElasticTranscoderError(
        'UnknownOperationException',
        `No operation at ${request.method} ${request.url.split('?')[0]}.`,
      ),
    ),
  )

  const context = { app, settings, jobs, presets }
  registerPipelineRoutes(context)
  registerJobRoutes(context)
  registerPresetRoutes(context)
}

/**
 * Serves the Elastic Transcoder `2012-09-25` REST-JSON API under `/2012-09-25/…` (the SDKs'
 * own paths, so an app changes only its endpoint): pipelines, system presets and jobs, every
 * request verified by SigV4 against `keys`, each key acting for its own owner.
 *
 * @example
 * await app.register(elasticTranscoderApi, {
 *   service,
 *   keys: [{ accessKeyId: 'AKIDEXAMPLE', secretAccessKey: process.env.ET_SECRET }],
 *   buckets: { media: s3Storage({ client, bucket: 'media' }) },
 * })
 */
const plugin: FastifyPluginAsync<ElasticTranscoderApiOptions> = async (app, options) => {
  const settings = resolveOptions(options)
  const presets = new EtCustomPresets(settings)
  const starter = new EtJobStarter(settings, presets)
  const sync = new EtJobSync(settings, new EtNotifier(settings), starter)
  const jobs = new EtJobs(settings, sync, presets, starter)
  sync.start()
  app.addHook('onClose', async () => {
    await sync.stop()
    // The default store is ours to close; one the app passed in is the app's.
    if (!options.store) await settings.store.close?.()
  })
  await app.register(api, { prefix: API_VERSION_PATH, settings, jobs, presets })
}

export default fp(plugin, { fastify: '5.x', name: '@transcodekit/elastic-transcoder-api' })
