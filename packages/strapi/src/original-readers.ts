import { open, realpath } from 'node:fs/promises'
import { isAbsolute, join, relative, resolve, sep } from 'node:path'
import { Readable } from 'node:stream'
import { TranscodeKitError } from '@transcodekit/core'
import type { OriginalReadCode } from './error-codes.ts'
import type { MediaFileSnapshot, OriginalReader } from './lifecycle-adapter.ts'

/** Why an original could not be read. */
export class OriginalReadError extends TranscodeKitError {
  declare readonly code: OriginalReadCode

  constructor(code: OriginalReadCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
  }
}

export interface LocalUploadsReaderOptions {
  /** The folder the local provider writes to (Strapi: `<public>/uploads`). */
  uploadsDir: string
  /** The URL path the provider gives its files. @default '/uploads/' */
  urlPrefix?: string
}

/**
 * Reads originals of Strapi's local upload provider: the file named by the entry's URL
 * (`/uploads/<hash><ext>`) inside `uploadsDir`. A URL that names anything else (another
 * folder, `..`, an encoded separator, a symbolic link leading out) is refused.
 */
export function localUploadsReader(options: LocalUploadsReaderOptions): OriginalReader {
  const uploadsDir = resolve(options.uploadsDir)
  const urlPrefix = options.urlPrefix ?? '/uploads/'
  return async (file, { signal } = {}) => {
    const path = localUploadPath(file, uploadsDir, urlPrefix)
    let real: string
    try {
      real = await realpath(path)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new OriginalReadError(
          'ORIGINAL_NOT_FOUND',
          `the original of file ${file.id} is missing`,
          { cause: error },
        )
      }
      throw error
    }
    const root = await realpath(uploadsDir)
    if (!isInside(root, real)) {
      throw new OriginalReadError(
        'ORIGINAL_REJECTED',
        `the original of file ${file.id} is outside the uploads folder`,
      )
    }
    // Opened here so a missing or unreadable file fails now, not inside the service.
    const handle = await open(real, 'r')
    if (signal?.aborted) {
      await handle.close()
      throw signal.reason
    }
    return handle.createReadStream()
  }
}

/** The path of a local upload's file, checked to be a direct child of `uploadsDir`. */
export function localUploadPath(
  file: Pick<MediaFileSnapshot, 'id' | 'url'>,
  uploadsDir: string,
  urlPrefix = '/uploads/',
): string {
  const url = file.url ?? ''
  if (!url.startsWith(urlPrefix)) {
    throw new OriginalReadError('ORIGINAL_REJECTED', `file ${file.id} has no local upload URL`)
  }
  const name = url.slice(urlPrefix.length).split(/[?#]/, 1)[0]!
  // The local provider names files `<hash><ext>`: one segment of safe characters. Nothing
  // here is decoded, so `%2e%2e%2f` stays a literal (and refused) name.
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$/.test(name) || name.includes('..')) {
    throw new OriginalReadError('ORIGINAL_REJECTED', `file ${file.id} has an unexpected upload URL`)
  }
  const root = resolve(uploadsDir)
  const path = join(root, name)
  if (!isInside(root, path)) {
    throw new OriginalReadError(
      'ORIGINAL_REJECTED',
      `the original of file ${file.id} is outside the uploads folder`,
    )
  }
  return path
}

export interface UrlReaderOptions {
  /** Resolves the URL to fetch (a signed URL for a private bucket). @default the entry's URL */
  resolveUrl?: (file: MediaFileSnapshot) => Promise<string | null> | string | null
  /** Base for relative URLs. */
  baseUrl?: string
  /** @default globalThis.fetch */
  fetch?: typeof globalThis.fetch
}

/**
 * Reads originals over HTTP(S) from the URL the upload provider gives them: an S3 provider's
 * object URL (signed when the bucket is private), or a CDN's.
 */
export function urlReader(options: UrlReaderOptions = {}): OriginalReader {
  const fetchImpl = options.fetch ?? globalThis.fetch
  return async (file, { signal } = {}) => {
    const raw = options.resolveUrl ? await options.resolveUrl(file) : file.url
    if (!raw) throw new OriginalReadError('ORIGINAL_REJECTED', `file ${file.id} has no URL`)
    let url: URL
    try {
      url = new URL(raw, options.baseUrl)
    } catch {
      throw new OriginalReadError('ORIGINAL_REJECTED', `file ${file.id} has an invalid URL`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new OriginalReadError(
        'ORIGINAL_REJECTED',
        `file ${file.id} has a URL that is not http(s)`,
      )
    }
    const response = await fetchImpl(url, { signal, redirect: 'follow' })
    if (response.status === 404) {
      await response.body?.cancel()
      throw new OriginalReadError(
        'ORIGINAL_NOT_FOUND',
        `the original of file ${file.id} is missing (HTTP 404)`,
      )
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel()
      // Not a TranscodeKitError: a 5xx or 403 may pass, so the caller retries.
      throw new Error(`reading the original of file ${file.id} failed with HTTP ${response.status}`)
    }
    return Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>)
  }
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path)
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) && !rel.includes(`..${sep}`)
}
