import { createHash, randomUUID } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { AbortedError, outOfSpace, TranscodeKitError, UnsupportedMediaError } from '../errors.ts'
import { originalKey } from '../keys.ts'
import { processTag } from '../leftovers/leftover-sweeper.ts'
import { errorText } from '../logging/error-text.ts'
import { describeMedia, sniffFileRejection } from '../media/sniff.ts'
import { type Asset, DEFAULT_OWNER } from '../model.ts'
import type { Outbox, Repository } from '../ports/repository.ts'
import type { Storage } from '../ports/storage.ts'
import type { FileHasher } from '../spool/file-hasher.ts'
import { spoolUpload } from '../spool/spool-upload.ts'
import type { ConcurrencyLimiter } from './concurrency-limiter.ts'
import type { IngestOptions, ServiceSettings } from './transcoder-options.ts'

export type UploadBody = NodeJS.ReadableStream | AsyncIterable<Uint8Array>

export interface IngestContext {
  storage: Storage
  repository: Repository
  settings: ServiceSettings
  /** Bounds the probes running at once. */
  probes: ConcurrencyLimiter
  /** Hashes the spool off the request's thread. */
  hasher: FileHasher
  /** The `asset.created` deliveries to record with the asset. */
  outbox?: Outbox<Asset>
}

/**
 * Streams an upload to a spool file (written once: local storage renames it into place) while
 * counting it and hashing it on another thread, checks that its bytes
 * are audio or video (never trusting its name or claimed type), then stores it and records
 * the asset. Anything refused leaves nothing behind.
 */
export async function ingestUpload(
  body: UploadBody,
  options: IngestOptions,
  { storage, repository, settings, probes, hasher, outbox }: IngestContext,
): Promise<Asset> {
  const limit = options.maxBytes ?? settings.maxInputBytes
  await mkdir(settings.tmpDir, { recursive: true })
  const spool = join(settings.tmpDir, `${processTag()}-${randomUUID()}.upload`)
  let stored: string | null = null
  try {
    const { size, sha256 } = await spoolUpload(body, spool, {
      maxBytes: limit,
      hasher,
      signal: options.signal,
    })
    const rejection = await sniffFileRejection(spool)
    if (rejection) throw new UnsupportedMediaError(rejection)
    const media = await probes.run(
      () =>
        settings.probe(spool, {
          signal: options.signal,
          // A frame the limits refuse anyway is never decoded, not even by the probe.
          maxFramePixels: settings.limits.maxFramePixels,
        }),
      options.signal,
    )
    const { contentType, extension } = describeMedia(media)
    const id = randomUUID()
    const key = originalKey(settings.keyPrefix, id, extension)
    stored = key
    if (storage.putFile) {
      await storage.putFile(key, spool, { contentType, signal: options.signal })
    } else {
      await storage.put(key, createReadStream(spool), { contentType, signal: options.signal })
    }
    const asset: Asset = {
      id,
      owner: options.owner ?? DEFAULT_OWNER,
      storageKey: key,
      originalFilename: options.filename ?? null,
      contentType,
      size,
      sha256,
      media,
      createdAt: new Date(),
    }
    await repository.createAsset(asset, { outbox })
    stored = null
    return asset
  } catch (error) {
    if (stored) {
      await storage.delete(stored).catch((cleanup: unknown) => {
        settings.logger.error(
          { key: stored, error: errorText(cleanup) },
          'transcodekit: could not remove the original of a failed ingest',
        )
      })
    }
    const full = outOfSpace(error, 'the upload')
    if (full) throw full
    if (options.signal?.aborted && !(error instanceof TranscodeKitError)) {
      throw new AbortedError('the upload was aborted', { cause: error })
    }
    throw error
  } finally {
    await rm(spool, { force: true })
  }
}

/** The sha256 of a whole body, read to its end and kept nowhere. */
export async function sha256Of(body: UploadBody): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of body) hash.update(chunk)
  return hash.digest('hex')
}
