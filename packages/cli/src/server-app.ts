import { randomBytes } from 'node:crypto'
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import transcodekit from '@transcodekit/fastify'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { ServerConfig, Services } from './config.ts'

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
  options: { logger?: FastifyServerOptions['logger'] } = {},
): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? { level: process.env.LOG_LEVEL ?? 'info' },
    // Uploads are streamed by the transcodekit route; other bodies stay small.
    bodyLimit: 1024 * 1024,
    forceCloseConnections: 'idle',
  })

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

  await app.register(transcodekit, {
    service: services.service,
    prefix: config.apiPrefix,
    limits: { fileSize: config.maxUploadBytes },
    notifications: services.notifications ?? undefined,
    fileUrlSecret: config.fileUrlSecret ?? (await keptSecret(config.dataDir)),
  })

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
    maxUploadBytes: config.maxUploadBytes,
  }))
  return app
}

/** The file URL secret kept in the data folder: made once (link() never replaces a file). */
async function keptSecret(dataDir: string): Promise<string> {
  const path = join(dataDir, 'file-url-secret')
  const temp = `${path}.${process.pid}.tmp`
  await mkdir(dataDir, { recursive: true })
  await writeFile(temp, randomBytes(32).toString('hex'), { mode: 0o600 })
  await link(temp, path).catch((error) => {
    if (error.code !== 'EEXIST') throw error
  })
  await rm(temp, { force: true })
  return (await readFile(path, 'utf8')).trim()
}
