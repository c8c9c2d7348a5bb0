import {
  ForbiddenError,
  type Job,
  type Owner,
  type Page,
  TooManyJobsError,
  UnauthenticatedError,
} from '@transcodekit/core'
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import type { ResolvedOptions, TranscodekitAction, TranscodekitResource } from './plugin-options.ts'

const MAX_OWNER_LENGTH = 255

/** The part of the OpenAPI document @fastify/swagger builds that the security scheme goes in. */
interface OpenApiDocument {
  components?: { securitySchemes?: Record<string, unknown> }
}

/** The `onRequest` hook of the owned routes: resolves the owner before any body is read. */
export function resolveOwnerHook(settings: ResolvedOptions) {
  const scheme = settings.openapiSecurity?.scheme
  const bearer = scheme?.type === 'http' && String(scheme.scheme).toLowerCase() === 'bearer'
  return async function resolveOwner(request: FastifyRequest, reply: FastifyReply) {
    const owner = await settings.owner(request)
    if (owner === null || owner === undefined || owner === '') {
      // RFC 9110: a 401 names the scheme that would have worked.
      if (bearer) reply.header('www-authenticate', 'Bearer realm="transcodekit"')
      throw new UnauthenticatedError()
    }
    if (typeof owner !== 'string' || owner.length > MAX_OWNER_LENGTH) {
      throw new TypeError(
        `transcodekit: option \`owner\` must resolve to a string of 1 to ${MAX_OWNER_LENGTH} characters`,
      )
    }
    request.transcodekitOwner = owner
  }
}

/** The owner of a request of the owned routes. */
export function ownerOf(request: FastifyRequest): Owner {
  const owner = request.transcodekitOwner
  if (owner === null) throw new Error('transcodekit: this route runs without a resolved owner')
  return owner
}

/** Asks `authorize`; anything but `true` refuses (a hook that forgot to answer refuses too). */
export async function authorize(
  settings: ResolvedOptions,
  request: FastifyRequest,
  action: TranscodekitAction,
  resource: TranscodekitResource | null = null,
): Promise<void> {
  if (!(await allows(settings, request, action, resource))) {
    throw new ForbiddenError(
      resource ? `${action} is not allowed on this ${resource.type}` : `${action} is not allowed`,
    )
  }
}

export async function allows(
  settings: ResolvedOptions,
  request: FastifyRequest,
  action: TranscodekitAction,
  resource: TranscodekitResource | null = null,
): Promise<boolean> {
  const answer = await settings.authorize({ owner: ownerOf(request), action, resource, request })
  return answer === true
}

/** Whether the outputs of `job` may get their URLs in what the request is answered. */
export function mayDownload(
  settings: ResolvedOptions,
  request: FastifyRequest,
  job: Job,
): Promise<boolean> {
  return allows(settings, request, 'download', { type: 'job', job })
}

/**
 * The `onRoute` hook that makes the OpenAPI document declare the security scheme and every
 * owned route refer to it. The scheme goes into the document through the route's
 * `swaggerTransform` (the app's own declaration of the same name wins), so that no app can
 * forget it: @fastify/swagger fails on a reference to a scheme it does not know.
 */
export function documentSecurity(security: { name: string; scheme: Record<string, unknown> }) {
  return (route: RouteOptions) => {
    if (!route.schema) return
    route.schema = { ...route.schema, security: [{ [security.name]: [] }] } as typeof route.schema
    const config = (route.config ?? {}) as Record<string, unknown>
    if (config.swaggerTransform !== undefined) return
    route.config = {
      ...config,
      swaggerTransform: ({ openapiObject }: { openapiObject?: OpenApiDocument }) => {
        const components = openapiObject?.components
        if (components) {
          components.securitySchemes ??= {}
          components.securitySchemes[security.name] ??= security.scheme
        }
        return {}
      },
    } as RouteOptions['config']
  }
}

/**
 * Jobs this process is about to make, per plugin instance and owner: how many requests hold
 * each (an idempotency key, or one request's own token). See `reserveRoomForJob`.
 */
const reserved = new WeakMap<ResolvedOptions, Map<Owner, Map<unknown, number>>>()

/**
 * Refuses a new job of the request's owner when it has `maxActiveJobsPerOwner` waiting or
 * running already (429 `TRANSCODEKIT_TOO_MANY_JOBS`). Counts no further than the cap. Jobs
 * this process is still making for the owner (an upload streaming its body, a retry) count
 * too, so that concurrent requests cannot all pass the check before any of their jobs exists;
 * requests with one idempotency key make one job and count once. Call the returned function
 * once the job is made, or the request failed.
 */
export async function reserveRoomForJob(
  settings: ResolvedOptions,
  request: FastifyRequest,
  idempotencyKey: string | null = null,
): Promise<() => void> {
  const limit = settings.maxActiveJobsPerOwner
  if (limit === Number.POSITIVE_INFINITY) return () => {}
  const owner = ownerOf(request)
  const byOwner = reserved.get(settings) ?? new Map<Owner, Map<unknown, number>>()
  reserved.set(settings, byOwner)
  const pending = byOwner.get(owner) ?? new Map<unknown, number>()
  byOwner.set(owner, pending)
  const token = idempotencyKey ?? Symbol('job')
  const others = pending.size - (pending.has(token) ? 1 : 0)
  pending.set(token, (pending.get(token) ?? 0) + 1)
  let held = true
  const release = () => {
    if (!held) return
    held = false
    const left = (pending.get(token) ?? 1) - 1
    if (left > 0) pending.set(token, left)
    else pending.delete(token)
    if (pending.size === 0) byOwner.delete(owner)
  }
  try {
    let active = others
    if (active >= limit) throw new TooManyJobsError(limit)
    for (const state of ['submitted', 'progressing'] as const) {
      let cursor: string | null = null
      do {
        const page: Page<Job> = await settings.service.listJobs({
          owner,
          state,
          limit: Math.min(100, limit - active),
          cursor,
        })
        active += page.items.length
        if (active >= limit) throw new TooManyJobsError(limit)
        cursor = page.nextCursor
      } while (cursor)
    }
  } catch (error) {
    release()
    throw error
  }
  return release
}
