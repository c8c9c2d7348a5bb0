import {
  type Job,
  NotFoundError,
  probeMedia,
  type Storage,
  type TranscodeService,
} from '@transcodekit/core'
import type { EtOutputRecord } from './store/et-store.ts'

/**
 * Copies one finished output of a core job to `OutputKeyPrefix + Key` in the pipeline's
 * output bucket and reads back what ET reports of it (size, duration, picture size). An
 * existing object is never overwritten: ET fails that output with its error 3002.
 */
export async function deliverOutput(
  service: TranscodeService,
  core: Job,
  output: EtOutputRecord,
  target: { bucket: string; storage: Storage; prefix: string },
): Promise<EtOutputRecord> {
  const made = core.outputs.find((o) => o.presetId === output.corePresetId)
  if (made?.state !== 'complete') {
    const reason = made?.errorMessage ?? core.errorMessage ?? 'the output was not made'
    return { ...output, status: 'Error', statusDetail: `4000 ${reason}` }
  }
  const key = `${target.prefix}${output.key}`
  if (await target.storage.head(key)) {
    return {
      ...output,
      status: 'Error',
      statusDetail: `3002 The specified object could not be saved in the specified bucket because an object by that name already exists: bucket=${target.bucket}, key=${key}.`,
    }
  }
  const { body } = await service.storage.get(made.storageKey)
  const { size } = await target.storage.put(key, body, { contentType: made.contentType })
  // A custom preset's output carries its own copy; the others are the catalog's.
  const picture = (made.preset ?? service.presets.resolve(output.corePresetId)).video
    ? await pictureSize(service, made.storageKey)
    : null
  return {
    ...output,
    status: 'Complete',
    statusDetail: null,
    fileSize: size,
    durationSec: made.durationSec === null ? null : Math.round(made.durationSec),
    durationMillis: made.durationSec === null ? null : Math.round(made.durationSec * 1000),
    width: picture?.width ?? null,
    height: picture?.height ?? null,
  }
}

/** The picture size of a stored video output, probed where it lies (a local path or a URL). */
async function pictureSize(
  service: TranscodeService,
  key: string,
): Promise<{ width: number; height: number } | null> {
  const where =
    service.storage.localPath?.(key) ?? (await service.storage.url(key, { expiresInSec: 300 }))
  try {
    const media = await probeMedia(where, { timeoutMs: 30_000 })
    const video = media.streams.find((s) => s.type === 'video')
    return video?.width && video.height ? { width: video.width, height: video.height } : null
  } catch (error) {
    if (error instanceof NotFoundError) return null
    throw error
  }
}
