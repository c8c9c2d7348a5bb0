import { createHash, randomUUID } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { AbortedError, outOfSpace, TranscodeKitError, UnsupportedMediaError } from '../errors.ts'
import { originalKey } from '../keys.ts'
import { processTag } from '../leftovers/leftover-sweeper.ts'
import { errorText } from '../logging/error-text.ts'
import { describeMedia, sniffRejection } from '../media/sniff.ts'
import { type Asset, DEFAULT_OWNER } from '../model.ts'
import type { Outbox, Repository } from '../ports/repository.ts'
import type { Storage } from '../ports/storage.ts'
import type { FileHasher } from '../spool/file-hasher.ts'
import { spoolUpload } from '../spool/spool-upload.ts'
import type { ConcurrencyLimiter } from './concurrency-limiter.ts'
import { probeLocalFile } from './media-probe.ts'
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
 * How an original not probed yet is stored: only the probe can name its format (the sniff
 * refuses text, it does not identify containers), and a wrong guess would outlive the probe
 * in the key. Nothing reads the extension: the engine opens the input with the demuxer the
 * probe named.
 */
const NOT_YET_PROBED = { contentType: 'application/octet-stream', extension: 'bin' }

/**
 * Streams an upload to a spool file (written once: local storage renames it into place) while
 * counting it and hashing it (a large one on another thread), checks that its bytes
 * are audio or video (never trusting its name or claimed type), then stores it and records
 * the asset. Anything refused leaves nothing behind. With `probe: 'deferred'` only the sniff
 * checks it now; the asset is recorded with `media: null` and its first job probes it.
 */
export async function ingestUpload(
  body: UploadBody,
  options: IngestOptions,
  { storage, repository, settings, probes, hasher, outbox }: IngestContext,
): Promise<Asset> {
  const limit = options.maxBytes ?? settings.maxInputBytes
  await mkdir(settings.tmpDir, { recursive: true, mode: 0o700 })
  const spool = join(settings.tmpDir, `${processTag()}-${randomUUID()}.upload`)
  let stored: string | null = null
  // Until the storage takes the spool over (`putFile` moves it): left to remove.
  let spooled = true
  try {
    const { size, sha256, head } = await spoolUpload(body, spool, {
      maxBytes: limit,
      hasher,
      signal: options.signal,
    })
    const rejection = sniffRejection(head)
    if (rejection) throw new UnsupportedMediaError(rejection)
    const media =
      options.probe === 'deferred'
        ? null
        : await probeLocalFile(spool, { settings, probes }, options.signal)
    const { contentType, extension } = media ? describeMedia(media) : NOT_YET_PROBED
    const id = randomUUID()
    const key = originalKey(settings.keyPrefix, id, extension)
    stored = key
    if (storage.putFile) {
      await storage.putFile(key, spool, { contentType, signal: options.signal })
      spooled = false
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
    if (spooled) await rm(spool, { force: true })
  }
}

/** The sha256 of a whole body, read to its end and kept nowhere. */
export async function sha256Of(body: UploadBody): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of body) hash.update(chunk)
  return hash.digest('hex')
}
