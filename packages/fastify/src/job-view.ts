import type { Asset, Job, Output, TranscodeService } from '@transcodekit/core'
import type { ResolvedOptions } from './plugin-options.ts'
import type { JobView } from './schemas.ts'

type UrlSettings = Pick<ResolvedOptions, 'serveFiles' | 'fileUrls' | 'urlExpiresInSec'>

/**
 * A job as the routes show it: storage keys stay inside, each complete output gets the URL to
 * play it from and the URL to download it under a name made from the asset's own filename.
 * Files served by this plugin get signed URLs; remote storage presigns its own.
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
          ? await outputUrls(service, settings, output, downloadName(asset, job, output))
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
  { serveFiles, fileUrls, urlExpiresInSec: expiresInSec }: UrlSettings,
  output: Output,
  name: string,
): Promise<{ url: string; downloadUrl: string }> {
  if (!serveFiles) {
    return {
      url: await service.outputUrl(output, { expiresInSec }),
      downloadUrl: await service.storage.url(output.storageKey, { expiresInSec, filename: name }),
    }
  }
  const base = await service.storage.url(output.storageKey)
  const join = base.includes('?') ? '&' : '?'
  return {
    url: `${base}${join}${fileUrls.sign(output.storageKey, { expiresInSec })}`,
    downloadUrl: `${base}${join}${fileUrls.sign(output.storageKey, { expiresInSec, download: name })}`,
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
