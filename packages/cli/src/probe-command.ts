import { stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { describeMedia, type MediaInfo, NotFoundError, probeMedia } from '@transcodekit/core'

export interface ProbeResult extends MediaInfo {
  path: string
  /** The type and extension transcodekit gives the file (its stored original's). */
  contentType: string
  extension: string
}

/** `transcodekit probe`: ffprobe's facts, as the service reads an upload. */
export async function probeCommand(file: string): Promise<ProbeResult> {
  const path = resolve(file)
  const info = await stat(path).catch(() => null)
  if (!info?.isFile()) throw new NotFoundError('file', file)
  const media = await probeMedia(path)
  return { path, ...describeMedia(media), ...media }
}
