import { createHash, timingSafeEqual } from 'node:crypto'
import type { MetricsRecorder } from '@transcodekit/core'
import { UnauthenticatedError } from '@transcodekit/fastify'
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import type { ReadinessReport } from './readiness.ts'

export interface OperationsRoutesOptions {
  /** The report of `/readyz`. */
  ready: () => Promise<ReadinessReport>
  /**
   * `/metrics`, when served: its registry, and who may read it (`token`: a bearer token every
   * scrape must carry; `null`: anyone who can reach the server).
   */
  metrics: { registry: Registry; token: string | null } | null
  /** Counts the bytes of stored uploads: the route that answers an upload with its asset. */
  uploads?: { url: string; recorder: MetricsRecorder }
}

/**
 * `GET /healthz` (the process answers), `GET /readyz` (what it needs answers: 503 naming the
 * check that failed) and `GET /metrics` (Prometheus text). None of them is part of the media
 * API: they are left out of the OpenAPI document.
 */
export function registerOperationsRoutes(
  app: FastifyInstance,
  options: OperationsRoutesOptions,
): void {
  app.get('/healthz', { schema: { hide: true } }, async (_request, reply) => {
    return reply.header('cache-control', 'no-store').send({ status: 'ok' })
  })

  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    const report = await options.ready()
    reply.header('cache-control', 'no-store')
    if (report.ready) return reply.send({ status: 'ready', checks: report.checks })
    const failed = Object.entries(report.checks)
      .filter(([, result]) => result !== 'ok')
      .map(([name]) => name)
    return reply.status(503).send({
      status: 'unready',
      code: 'TRANSCODEKIT_NOT_READY',
      message: `not ready: ${failed.join(', ')} did not answer`,
      checks: report.checks,
    })
  })

  const metrics = options.metrics
  if (metrics) {
    const expected = metrics.token === null ? null : digest(metrics.token)
    app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
      if (expected) {
        const header = request.headers.authorization ?? ''
        const given = header.startsWith('Bearer ') ? header.slice(7) : ''
        // Digests of equal length, so that the comparison takes the same time for any token.
        if (!timingSafeEqual(digest(given), expected)) {
          reply.header('www-authenticate', 'Bearer realm="metrics"')
          throw new UnauthenticatedError('metrics need `Authorization: Bearer <METRICS_TOKEN>`')
        }
      }
      return reply
        .header('content-type', metrics.registry.contentType)
        .header('cache-control', 'no-store')
        .send(await metrics.registry.metrics())
    })
  }

  const uploads = options.uploads
  if (uploads) {
    app.addHook('preSerialization', async (request, reply, payload) => {
      if (
        reply.statusCode === 201 &&
        request.method === 'POST' &&
        request.routeOptions.url === uploads.url
      ) {
        const size = (payload as { asset?: { size?: unknown } } | null)?.asset?.size
        if (typeof size === 'number') uploads.recorder.bytesUploaded?.(size)
      }
      return payload
    })
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest()
}
