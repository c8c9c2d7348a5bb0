import { CrossSiteRequestError, HostNotAllowedError } from '@transcodekit/fastify'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { isLoopback } from './config.ts'

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/**
 * What an API without keys needs against the browser of someone on this machine: with no
 * bearer to forge, any page it visits could otherwise drive the API. A name the page's site
 * resolves to 127.0.0.1 (DNS rebinding) still sends its own `Host`, so only this machine's
 * names, `HOST` and `ALLOWED_HOSTS` are answered; and a form or fetch from another site sends
 * its `Origin` (or `Sec-Fetch-Site: cross-site`), so a request that changes something must
 * come from the server's own page. Both answer 403 before any route runs.
 */
export function guardKeylessApi(
  app: FastifyInstance,
  allowed: { host: string; allowedHosts: readonly string[] },
): void {
  const names = new Set([allowed.host, ...allowed.allowedHosts].map(hostName))
  app.addHook('onRequest', async (request) => {
    const name = hostName(request.headers.host ?? '')
    if (name === null || !(isLoopback(name) || names.has(name))) {
      throw HostNotAllowedError(
        `the Host ${JSON.stringify(request.headers.host ?? '')} is not this server's: ` +
          'add it to ALLOWED_HOSTS to serve it',
      )
    }
    if (STATE_CHANGING.has(request.method) && isCrossSite(request)) {
      throw CrossSiteRequestError('a request from another site may not change anything here')
    }
  })
}

/** The name of a `Host` header or `HOST` value, without its port; `null` when none parses. */
function hostName(host: string): string | null {
  if (host === '') return null
  try {
    return new URL(`http://${host}`).hostname
  } catch {
    return null
  }
}

/** Whether the browser says the request comes from another site than this server's. */
function isCrossSite(request: FastifyRequest): boolean {
  if (request.headers['sec-fetch-site'] === 'cross-site') return true
  const origin = request.headers.origin
  if (origin === undefined) return false
  try {
    return new URL(origin).host !== request.headers.host?.toLowerCase()
  } catch {
    // `Origin: null` (a sandboxed frame, a file) names no site at all.
    return true
  }
}
