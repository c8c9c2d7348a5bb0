import assert from 'node:assert/strict'
import {
  type Asset,
  checkCountOrUnlimited,
  DEFAULT_OWNER,
  type Job,
  type NotificationVerifier,
  type Owner,
  type TranscodeService,
  type WebhookDelivery,
} from '@transcodekit/core'
import type { FastifyRequest } from 'fastify'
import { FileUrlSigner } from './http/file-url-signer.ts'

/** Limits of `POST /uploads`, passed to the multipart parser. */
export interface UploadLimits {
  /** Largest file, in bytes. @default 10 GiB */
  fileSize?: number
  /** Files per request. Only one is accepted. @default 1 */
  files?: number
  /** Non-file fields per request. @default 20 */
  fields?: number
  /** Parts (fields and files) per request. @default 25 */
  parts?: number
  /** Largest field value, in bytes. @default 4096 */
  fieldSize?: number
  /** Longest field name, in bytes. @default 100 */
  fieldNameSize?: number
  /** Header pairs per part. @default 100 */
  headerPairs?: number
}

/** What a request may do, as the `authorize` hook is asked about it. */
export type TranscodekitAction =
  | 'upload'
  | 'read'
  | 'list'
  | 'delete'
  | 'cancel'
  | 'retry'
  | 'download'
  /** List the owner's webhook deliveries. */
  | 'listDeliveries'
  /** Send a webhook delivery again. */
  | 'redeliver'

/** The resource an action is on; `null` for `upload` and `list`. */
export type TranscodekitResource =
  | { type: 'asset'; asset: Asset }
  | { type: 'job'; job: Job }
  | { type: 'webhookDelivery'; delivery: WebhookDelivery }

export interface AuthorizeRequest {
  /** Who asks, as `owner` resolved it. */
  owner: Owner
  action: TranscodekitAction
  /** Always one of the owner's own: another owner's resource answers 404 before the hook runs. */
  resource: TranscodekitResource | null
  request: FastifyRequest
}

/**
 * Tells who a request comes from: an owner, or `null` (or `undefined`) to refuse it with 401
 * `TRANSCODEKIT_UNAUTHENTICATED`. Reads whatever the app uses: a session, a verified JWT, an
 * API key. Runs before the body is read, for every route but `/files/*` (whose signed URL
 * is its authorization) and the SNS notifications (verified by signature).
 *
 * @example
 * owner: async (request) => (await request.jwtVerify<{ sub: string }>()).sub
 */
export type OwnerResolver = (
  request: FastifyRequest,
) => Owner | null | undefined | Promise<Owner | null | undefined>

/**
 * Decides an action of an owner, on one of its resources when there is one: `false` refuses
 * it with 403 `TRANSCODEKIT_FORBIDDEN`. For `download`, a refusal leaves the outputs of the
 * job without URLs (the job itself stays readable).
 *
 * @example
 * authorize: ({ action, request }) => action !== 'delete' || request.user.isAdmin
 */
export type AuthorizeHook = (request: AuthorizeRequest) => boolean | Promise<boolean>

/** A security scheme of the OpenAPI document, and the name the routes refer to it by. */
export interface OpenApiSecurity {
  /** @default 'bearerAuth' */
  name?: string
  /** An OpenAPI Security Scheme Object. @default { type: 'http', scheme: 'bearer' } */
  scheme?: Record<string, unknown>
}

export interface TranscodekitPluginOptions {
  /** The service every route calls. The plugin does not close it: whoever made it does. */
  service: TranscodeService
  /** Prefix of every route. @default '' */
  prefix?: string
  limits?: UploadLimits
  /**
   * Verifies SNS deliveries for `POST {prefix}/notifications/sns`. Without it the route does
   * not exist. @default undefined
   */
  notifications?: NotificationVerifier
  /**
   * Serve the storage's files at `GET {prefix}/files/*`. Only possible when the storage has
   * `localPath` (local disk). @default true when the storage has `localPath`
   */
  serveFiles?: boolean
  /**
   * How long an output URL the API hands out stays valid: presigned by S3, or signed for
   * `GET {prefix}/files/*` (rounded up to the next minute). @default 3600
   */
  urlExpiresInSec?: number
  /**
   * Resolves each request to its owner, or refuses it. Every asset and job belongs to the
   * owner that made it, and another owner's answers 404, as a missing one does.
   * @default () => DEFAULT_OWNER (one owner for every request: no access control)
   */
  owner?: OwnerResolver
  /** Decides each action of an owner on its own resources. @default () => true */
  authorize?: AuthorizeHook
  /**
   * How the OpenAPI document describes the credentials `owner` reads: the scheme goes in
   * `components.securitySchemes`, and every route but the files and notifications refers to
   * it. `false` declares none.
   * @default { name: 'bearerAuth', scheme: { type: 'http', scheme: 'bearer' } } when `owner` is set, else false
   */
  openapiSecurity?: OpenApiSecurity | false
  /**
   * How many jobs one owner may have waiting or running (`submitted` or `progressing`): an
   * upload or a retry past it answers 429 `TRANSCODEKIT_TOO_MANY_JOBS`, before the body is
   * stored. Checked before each job is made, so concurrent requests of one owner may pass it
   * by the few that were in flight together. @default Infinity (no cap)
   */
  maxActiveJobsPerOwner?: number
  /**
   * The key (at least 32 bytes) that signs the URLs of `GET {prefix}/files/*` (HMAC-SHA256).
   * Without it, a random key is made at start: links then stop working when the process
   * restarts, and several API processes behind one address each refuse the others' links.
   * Give every process the same secret (from the environment or a file) to avoid both.
   * @default 32 random bytes per process
   */
  fileUrlSecret?: string | Uint8Array
  /**
   * How long an upload's body may send nothing before the upload is cut: the connection is
   * closed and what was spooled is removed. Time the server itself spends not reading (its
   * storage is slower than the client) does not count. `0` turns the limit off.
   * @default 30_000 (30 s)
   */
  uploadIdleTimeoutMs?: number
  /**
   * Event streams (`GET {prefix}/jobs/{id}/events`) one owner may have open at once; past it,
   * 429 `TRANSCODEKIT_RATE_LIMITED`. Each open stream re-reads its job every poll interval
   * while the job waits or runs, so without a bound one owner's streams slow every request.
   * @default 32
   */
  maxEventStreamsPerOwner?: number
}

export interface ResolvedOptions {
  service: TranscodeService
  prefix: string
  limits: Required<UploadLimits>
  notifications: NotificationVerifier | null
  serveFiles: boolean
  urlExpiresInSec: number
  owner: OwnerResolver
  authorize: AuthorizeHook
  openapiSecurity: Required<OpenApiSecurity> | null
  maxActiveJobsPerOwner: number
  fileUrls: FileUrlSigner
  uploadIdleTimeoutMs: number
  maxEventStreamsPerOwner: number
  /**
   * The largest `Content-Length` `POST /uploads` accepts: the file limit plus what the
   * form's other parts may take (see `maxUploadBodyBytes`).
   */
  maxUploadBodyBytes: number
}

/** Boundary line and part headers (name, filename, type) of one part, generously. */
const PART_OVERHEAD_BYTES = 2048

/**
 * The largest body a well-formed upload within `limits` can have: the file, every field at
 * its largest (name and value), and for each part its boundary and headers. A declared
 * `Content-Length` above it is refused before the body is read.
 */
export function maxUploadBodyBytes(limits: Required<UploadLimits>): number {
  return (
    limits.fileSize +
    limits.fields * (limits.fieldNameSize + limits.fieldSize) +
    limits.parts * PART_OVERHEAD_BYTES
  )
}

export function resolveOptions(options: TranscodekitPluginOptions): ResolvedOptions {
  assert.ok(options?.service, 'transcodekit: option `service` (a TranscodeService) is required')
  const prefix = (options.prefix ?? '').replace(/\/+$/, '')
  assert.ok(prefix === '' || prefix.startsWith('/'), 'transcodekit: `prefix` must start with "/"')
  const limits: Required<UploadLimits> = {
    fileSize: options.limits?.fileSize ?? 10 * 1024 ** 3,
    files: options.limits?.files ?? 1,
    fields: options.limits?.fields ?? 20,
    parts: options.limits?.parts ?? 25,
    fieldSize: options.limits?.fieldSize ?? 4096,
    fieldNameSize: options.limits?.fieldNameSize ?? 100,
    headerPairs: options.limits?.headerPairs ?? 100,
  }
  for (const [name, value] of Object.entries(limits)) {
    assert.ok(
      Number.isSafeInteger(value) && value > 0,
      `transcodekit: \`limits.${name}\` must be a positive integer`,
    )
  }
  assert.equal(limits.files, 1, 'transcodekit: `limits.files` must be 1 (one file per upload)')
  const canServe = typeof options.service.storage.localPath === 'function'
  const serveFiles = options.serveFiles ?? canServe
  assert.ok(
    !serveFiles || canServe,
    'transcodekit: `serveFiles` needs a storage with `localPath` (local disk)',
  )
  const urlExpiresInSec = options.urlExpiresInSec ?? 3600
  assert.ok(urlExpiresInSec > 0, 'transcodekit: `urlExpiresInSec` must be positive')
  assert.ok(
    options.owner === undefined || typeof options.owner === 'function',
    'transcodekit: `owner` must be a function of the request',
  )
  assert.ok(
    options.authorize === undefined || typeof options.authorize === 'function',
    'transcodekit: `authorize` must be a function',
  )
  const security = options.openapiSecurity ?? (options.owner ? {} : false)
  let openapiSecurity: Required<OpenApiSecurity> | null = null
  if (security !== false) {
    openapiSecurity = {
      name: security.name ?? 'bearerAuth',
      scheme: security.scheme ?? { type: 'http', scheme: 'bearer' },
    }
    assert.ok(
      /^[A-Za-z0-9._-]+$/.test(openapiSecurity.name),
      'transcodekit: `openapiSecurity.name` must match ^[A-Za-z0-9._-]+$',
    )
    assert.ok(
      typeof openapiSecurity.scheme.type === 'string',
      'transcodekit: `openapiSecurity.scheme` must be an OpenAPI Security Scheme Object',
    )
  }
  const maxActiveJobsPerOwner = checkCountOrUnlimited(
    options.maxActiveJobsPerOwner ?? Number.POSITIVE_INFINITY,
    'transcodekit: `maxActiveJobsPerOwner`',
  )
  const uploadIdleTimeoutMs = options.uploadIdleTimeoutMs ?? 30_000
  assert.ok(
    Number.isSafeInteger(uploadIdleTimeoutMs) && uploadIdleTimeoutMs >= 0,
    'transcodekit: `uploadIdleTimeoutMs` must be an integer of 0 (off) or more',
  )
  const maxEventStreamsPerOwner = checkCountOrUnlimited(
    options.maxEventStreamsPerOwner ?? 32,
    'transcodekit: `maxEventStreamsPerOwner`',
  )
  return {
    service: options.service,
    prefix,
    limits,
    notifications: options.notifications ?? null,
    serveFiles,
    urlExpiresInSec,
    owner: options.owner ?? (() => DEFAULT_OWNER),
    authorize: options.authorize ?? (() => true),
    openapiSecurity,
    maxActiveJobsPerOwner,
    fileUrls: new FileUrlSigner(options.fileUrlSecret),
    uploadIdleTimeoutMs,
    maxEventStreamsPerOwner,
    maxUploadBodyBytes: maxUploadBodyBytes(limits),
  }
}
