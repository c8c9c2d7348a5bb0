import {
  type Asset,
  FFMPEG_ENGINE_NAME,
  type Job,
  type Output,
  type TranscodeService,
} from '@transcodekit/core'
import { isHlsPlaylistKey } from './http/hls-playlist.ts'
import type { ResolvedOptions } from './plugin-options.ts'
import type { JobView } from './schemas.ts'

type UrlSettings = Pick<ResolvedOptions, 'serveFiles' | 'fileUrls' | 'urlExpiresInSec' | 'prefix'>

/**
 * A job as the routes show it: storage keys stay inside, each complete output gets the URL to
 * play it from and the URL to download it under a name made from the asset's own filename.
 * Files served by this plugin get signed URLs; remote storage presigns its own, but for HLS
 * playlists, which this plugin serves with their segments presigned.
 */
export async function jobView(
  service: TranscodeService,
  job: Job,
  settings: UrlSettings,
): Promise<JobView> {
  const complete = job.outputs.some((output) => output.state === 'complete')
  // Only the name is read; an asset deleted meanwhile leaves the output's own name.
  const asset = complete ? await service.repository.getAsset(job.assetId) : null
  const outputs = await Promise.all(
    job.outputs.map(async (output) => {
      const urls =
        output.state === 'complete'
          ? await outputUrls(service, settings, job, output, downloadName(asset, job, output))
          : { url: null, downloadUrl: null }
      return {
        name: output.name,
        presetId: output.presetId,
        requestedPresetId: output.requestedPresetId ?? null,
        contentType: output.contentType,
        state: output.state,
        size: output.size,
        durationSec: output.durationSec,
        ...urls,
        errorCode: output.errorCode ?? null,
        errorMessage: output.errorMessage ?? null,
      }
    }),
  )
  return {
    id: job.id,
    assetId: job.assetId,
    engine: job.engine,
    engineJobId: job.engineJobId,
    state: job.state,
    progress: job.progress,
    errorCode: job.errorCode,
    errorMessage: job.errorMessage,
    idempotencyKey: job.idempotencyKey,
    attempts: job.attempts,
    outputs,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    finishedAt: job.finishedAt,
  }
}

async function outputUrls(
  service: TranscodeService,
  { serveFiles, fileUrls, urlExpiresInSec: expiresInSec, prefix }: UrlSettings,
  job: Job,
  output: Output,
  name: string,
): Promise<{ url: string; downloadUrl: string }> {
  const key = output.storageKey
  // The file route signs the segments of the ffmpeg engine's playlists only: it knows how
  // that engine names them. A remote engine's playlist keeps its presigned URL.
  const playlistServedHere = isHlsPlaylistKey(key) && job.engine === FFMPEG_ENGINE_NAME
  if (!serveFiles && !playlistServedHere) {
    return {
      url: await service.outputUrl(output, { expiresInSec }),
      downloadUrl: await service.storage.url(key, { expiresInSec, filename: name }),
    }
  }
  const base = serveFiles
    ? await service.storage.url(key)
    : `${prefix}/files/${key.split('/').map(encodeURIComponent).join('/')}`
  const join = base.includes('?') ? '&' : '?'
  return {
    url: `${base}${join}${fileUrls.sign(key, { expiresInSec })}`,
    downloadUrl: `${base}${join}${fileUrls.sign(key, { expiresInSec, download: name })}`,
  }
}

// C0 and C1 controls, DEL, and the Unicode bidi controls, as in content-disposition.ts.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"]/g

/**
 * The name an output is saved under: the original's base name (never a name from the link)
 * and the output's extension, with the output's name too when another output of the job
 * shares that extension. `My Song.mp3` → `My Song.flac`, or `My Song-mp3-128.mp3`.
 */
export function downloadName(asset: Asset | null, job: Job, output: Output): string {
  const extension = extensionOf(output.storageKey)
  const original = (asset?.originalFilename ?? '').split(/[/\\]/).pop() ?? ''
  const dot = original.lastIndexOf('.')
  const base =
    (dot > 0 ? original.slice(0, dot) : original).replace(UNSAFE, '').trim().slice(0, 150) ||
    output.name
  const shared = job.outputs.filter((other) => extensionOf(other.storageKey) === extension)
  const name = shared.length > 1 && base !== output.name ? `${base}-${output.name}` : base
  return extension ? `${name}.${extension}` : name
}

function extensionOf(key: string): string {
  const file = key.slice(key.lastIndexOf('/') + 1)
  const dot = file.lastIndexOf('.')
  return dot > 0 ? file.slice(dot + 1) : ''
}
