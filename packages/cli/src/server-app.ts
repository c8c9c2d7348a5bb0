import { randomBytes } from 'node:crypto'
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import rateLimit from '@fastify/rate-limit'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import transcodekit, { RateLimitedError } from '@transcodekit/fastify'
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyServerOptions,
  type RouteOptions,
} from 'fastify'
import { apiKeyOwner } from './api-keys.ts'
import { guardKeylessApi } from './browser-guard.ts'
import type { ServerConfig, Services } from './config.ts'
import { registerElasticTranscoderApi } from './elastic-transcoder-routes.ts'
import { registerOperationsRoutes } from './ops/ops-routes.ts'
import { readiness } from './ops/readiness.ts'
import { binaryChecks, databaseCheck, storageCheck } from './ops/readiness-checks.ts'
import { QuietReadsLogController } from './request-logging.ts'

const PUBLIC_FILES: Record<string, [file: string, contentType: string]> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/style.css': ['style.css', 'text/css; charset=utf-8'],
}

/**
 * The example's Fastify app: OpenAPI first (it documents only routes registered after it),
 * then the transcodekit routes under the API prefix, then the web page.
 */
export async function buildServer(
  config: ServerConfig,
  services: Services,
  options: {
    /** Fastify's logger options. @default { level: config.logLevel } */
    logger?: FastifyServerOptions['logger']
    /**
     * A pino logger for the app, instead of `logger`: the one the services log to, so the
     * process writes one stream of JSON lines.
     */
    loggerInstance?: FastifyBaseLogger
  } = {},
): Promise<FastifyInstance> {
  const app = Fastify({
    ...(options.loggerInstance
      ? { loggerInstance: options.loggerInstance }
      : { logger: options.logger ?? { level: config.logLevel } }),
    // Status polls log their request lines at `debug`, not `info`.
    logController: new QuietReadsLogController(config.apiPrefix),
    // Uploads are streamed by the transcodekit route; other bodies stay small.
    bodyLimit: 1024 * 1024,
    forceCloseConnections: 'idle',
  })

  if (!config.apiKeys) guardKeylessApi(app, config)

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'transcodekit example server',
        description: 'Upload media, follow its transcoding jobs, read the outputs.',
        version: '0.1.0',
      },
      tags: [{ name: 'transcodekit', description: 'Uploads, assets, jobs, presets and files' }],
    },
    // Name components after the schemas' $id (TranscodekitJob, …) rather than def-0, def-1.
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`),
    },
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })

  await registerRateLimits(app, config)
  registerOperations(app, config, services)
  await app.register(transcodekit, {
    service: services.service,
    owner: config.apiKeys ? apiKeyOwner(config.apiKeys) : undefined,
    maxActiveJobsPerOwner: config.maxJobsPerOwner || Number.POSITIVE_INFINITY,
    prefix: config.apiPrefix,
    limits: { fileSize: config.maxUploadBytes },
    notifications: services.notifications ?? undefined,
    fileUrlSecret: config.fileUrlSecret ?? (await keptSecret(config.dataDir)),
    uploadIdleTimeoutMs: config.uploadIdleTimeoutMs,
  })

  if (config.elasticTranscoder) {
    await registerElasticTranscoderApi(
      app,
      config.elasticTranscoder,
      services,
      config.maxJobsPerOwner,
    )
  }

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  const publicDir = new URL('../public/', import.meta.url)
  for (const [route, [file, contentType]] of Object.entries(PUBLIC_FILES)) {
    app.get(route, { schema: { hide: true } }, async (_request, reply) => {
      const body = await readFile(new URL(file, publicDir))
      return reply
        .header('content-type', contentType)
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .header(
          'content-security-policy',
          "default-src 'self'; media-src 'self' blob: https:; img-src 'self' data: https:; connect-src 'self'",
        )
        .send(body)
    })
  }
  app.get('/config.json', { schema: { hide: true } }, async () => ({
    apiPrefix: config.apiPrefix,
    auth: config.apiKeys ? 'api-key' : 'none',
    maxUploadBytes: config.maxUploadBytes,
  }))
  return app
}

/**
 * `/healthz`, `/readyz` and `/metrics`, outside the API prefix and the OpenAPI document.
 * `/metrics` is operator data (how many jobs, which errors): with `METRICS_TOKEN` it wants that
 * bearer; without it, it is as open as an API without keys, and not served when the API has
 * keys (a token of an owner is not an operator's).
 */
function registerOperations(app: FastifyInstance, config: ServerConfig, services: Services): void {
  const metricsAccess = config.metricsToken
    ? { registry: services.metrics.registry, token: config.metricsToken }
    : config.apiKeys
      ? null
      : { registry: services.metrics.registry, token: null }
  if (!metricsAccess) {
    app.log.info('GET /metrics is off: API_KEYS is set and METRICS_TOKEN is not')
  }
  registerOperationsRoutes(app, {
    ready: readiness(
      [
        databaseCheck(() => services.databaseProbe.ping()),
        storageCheck(services.service.storage),
        ...binaryChecks({ ffmpeg: config.engine.kind === 'ffmpeg', ffmpegPath: config.ffmpegPath }),
      ],
      { logger: app.log },
    ),
    metrics: metricsAccess,
    uploads: { url: `${config.apiPrefix}/uploads`, recorder: services.metrics.recorder },
  })
}

/** The file URL secret kept in the data folder: made once (link() never replaces a file). */
async function keptSecret(dataDir: string): Promise<string> {
  const path = join(dataDir, 'file-url-secret')
  const temp = `${path}.${process.pid}.tmp`
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  await writeFile(temp, randomBytes(32).toString('hex'), { mode: 0o600 })
  await link(temp, path).catch((error) => {
    if (error.code !== 'EEXIST') throw error
  })
  await rm(temp, { force: true })
  return (await readFile(path, 'utf8')).trim()
}

/**
 * Rate limits per owner: uploads, and each job action (cancel, retry, delete, a webhook's
 * redelivery), counted per
 * minute and per route by the owner the API resolved (the one default owner when the API is
 * open). The routes are tagged as they are added, by a hook that runs before the limiter's
 * own; the limiter runs after the owner is known (preHandler), and answers 429
 * `TRANSCODEKIT_RATE_LIMITED` with `Retry-After`.
 */
async function registerRateLimits(app: FastifyInstance, config: ServerConfig): Promise<void> {
  const prefix = config.apiPrefix
  const groups: Array<{ max: number; routes: Array<[string, string]> }> = [
    { max: config.uploadsPerMinute, routes: [['POST', `${prefix}/uploads`]] },
    {
      max: config.jobActionsPerMinute,
      routes: [
        ['POST', `${prefix}/jobs/:id/cancel`],
        ['POST', `${prefix}/jobs/:id/retry`],
        ['DELETE', `${prefix}/assets/:id`],
        // Each one sends a request to the webhook receiver.
        ['POST', `${prefix}/webhooks/deliveries/:id/redeliver`],
      ],
    },
  ]
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = [route.method].flat()
    const group = groups.find(({ routes }) =>
      routes.some(([method, url]) => url === route.url && methods.includes(method)),
    )
    if (!group || group.max === 0) return
    route.config = {
      ...route.config,
      rateLimit: { max: group.max, timeWindow: 60_000 },
    } as RouteOptions['config']
  })
  await app.register(rateLimit, {
    global: false,
    hook: 'preHandler',
    keyGenerator: (request) => request.transcodekitOwner ?? request.ip,
    errorResponseBuilder: (_request, context) =>
      RateLimitedError(`at most ${context.max} of these per minute: retry in ${context.after}`),
  })
}
