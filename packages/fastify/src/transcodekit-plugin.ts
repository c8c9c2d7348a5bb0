import multipart from '@fastify/multipart'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Owner, TranscodeService } from '@transcodekit/core'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { documentSecurity, resolveOwnerHook } from './access-control.ts'
import { NotFoundError, toHttpError } from './http-errors.ts'
import {
  type ResolvedOptions,
  resolveOptions,
  type TranscodekitPluginOptions,
} from './plugin-options.ts'
import { registerAssetRoutes } from './routes/asset-routes.ts'
import { registerFileRoute } from './routes/file-route.ts'
import { registerJobRoutes } from './routes/job-routes.ts'
import { registerNotificationRoute } from './routes/notification-route.ts'
import { registerPresetRoute } from './routes/preset-route.ts'
import { registerUploadRoute } from './routes/upload-route.ts'
import { registerWebhookRoutes } from './routes/webhook-routes.ts'
import { sharedSchemas } from './schemas.ts'
import { webhookSchemas } from './webhook-schemas.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** The `TranscodeService` the transcodekit routes call. */
    transcodekit: TranscodeService
  }
  interface FastifyRequest {
    /** The owner the transcodekit routes act for, once `owner` resolved it; else `null`. */
    transcodekitOwner: Owner | null
  }
}

const routes: FastifyPluginAsync<{ settings: ResolvedOptions }> = async (
  instance,
  { settings },
) => {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>()

  // The app may have registered @fastify/multipart itself; the limits are passed per request
  // either way.
  if (!instance.hasRequestDecorator('parts')) {
    await instance.register(multipart, { limits: settings.limits, throwFileSizeLimit: true })
  }

  instance.setErrorHandler((error, request, reply) => {
    const answer = toHttpError(error)
    if (answer.statusCode >= 500) request.log.error({ err: error }, 'transcodekit: request failed')
    else request.log.info({ code: answer.code }, answer.message)
    // The client is still sending a body nobody will read: close the connection after the
    // answer instead of leaving it stuck.
    if (!request.raw.complete) reply.header('connection', 'close')
    return reply.status(answer.statusCode).send(answer)
  })

  if (settings.prefix !== '') {
    instance.setNotFoundHandler((request, reply) => {
      const answer = toHttpError(
        NotFoundError(`route ${request.method} ${request.url} was not found`),
      )
      return reply.status(404).send(answer)
    })
  }

  // The owned routes: each request is resolved to its owner before its body is read. Files
  // (signed URLs) and notifications (signed messages) carry their own authorization.
  await instance.register(async (owned) => {
    owned.addHook('onRequest', resolveOwnerHook(settings))
    if (settings.openapiSecurity)
      owned.addHook('onRoute', documentSecurity(settings.openapiSecurity))
    const api = owned.withTypeProvider<TypeBoxTypeProvider>()
    registerUploadRoute(api, settings)
    registerAssetRoutes(api, settings)
    registerJobRoutes(api, settings)
    registerPresetRoute(api, settings)
    const webhooks = settings.service.webhooks
    if (webhooks) registerWebhookRoutes(api, settings, webhooks)
  })
  // Remote storage presigns its own URLs, but its HLS playlists are served here (see the route).
  registerFileRoute(app, settings)
  if (settings.notifications) await instance.register(registerNotificationRoute, { settings })
}

async function transcodekit(fastify: FastifyInstance, options: TranscodekitPluginOptions) {
  const settings = resolveOptions(options)
  fastify.decorate('transcodekit', settings.service)
  if (!fastify.hasRequestDecorator('transcodekitOwner')) {
    fastify.decorateRequest('transcodekitOwner', null)
  }
  // Shared schemas live in the app's context, where @fastify/swagger can see them.
  for (const schema of [...sharedSchemas, ...webhookSchemas]) {
    if (!fastify.getSchema(schema.$id!)) fastify.addSchema(schema)
  }
  if (settings.serveFiles) {
    const sample = await settings.service.storage.url('sample')
    if (!sample.endsWith(`${settings.prefix}/files/sample`)) {
      fastify.log.warn(
        { sample },
        `transcodekit: the storage's URLs do not point at ${settings.prefix}/files/: set its baseUrl`,
      )
    }
  }
  // With remote storage too: HLS playlists are served at signed URLs.
  if (options.fileUrlSecret === undefined) {
    fastify.log.info(
      'transcodekit: file URLs are signed with a key made by this process: set `fileUrlSecret` so that they outlive a restart and work across processes',
    )
  }
  await fastify.register(routes, { prefix: settings.prefix, settings })
}

/**
 * The transcodekit routes: upload, assets, jobs (with server-sent events), presets, stored
 * files and SNS notifications, with TypeBox schemas that `@fastify/swagger` documents
 * (register it first).
 *
 * @example
 * await app.register(transcodekit, { service, prefix: '/media', limits: { fileSize: 2 ** 30 } })
 */
export default fp(transcodekit, { fastify: '5.x', name: '@transcodekit/fastify' })
