import assert from 'node:assert/strict'
import type { NotificationVerifier, TranscodeService } from '@transcodekit/core'
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
   * The key (at least 32 bytes) that signs the URLs of `GET {prefix}/files/*` (HMAC-SHA256).
   * Without it, a random key is made at start: links then stop working when the process
   * restarts, and several API processes behind one address each refuse the others' links.
   * Give every process the same secret (from the environment or a file) to avoid both.
   * @default 32 random bytes per process
   */
  fileUrlSecret?: string | Uint8Array
}

export interface ResolvedOptions {
  service: TranscodeService
  prefix: string
  limits: Required<UploadLimits>
  notifications: NotificationVerifier | null
  serveFiles: boolean
  urlExpiresInSec: number
  fileUrls: FileUrlSigner
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
  return {
    service: options.service,
    prefix,
    limits,
    notifications: options.notifications ?? null,
    serveFiles,
    urlExpiresInSec,
    fileUrls: new FileUrlSigner(options.fileUrlSecret),
  }
}
