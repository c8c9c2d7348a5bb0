import { randomUUID } from 'node:crypto'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { IncompatiblePresetError } from '../errors.ts'
import { processTag } from '../leftovers/leftover-sweeper.ts'
import type { MediaInfo } from '../model.ts'
import type { Storage } from '../ports/storage.ts'
import { type Preset, presetNeeds } from '../presets/preset-schema.ts'
import { localFileOf } from '../storage/local-file.ts'
import type { ConcurrencyLimiter } from './concurrency-limiter.ts'
import type { ServiceSettings } from './transcoder-options.ts'

/** What probing needs: the prober and limits in `settings`, and the limiter shared with uploads. */
export interface ProbeContext {
  settings: ServiceSettings
  /** Bounds the probes running at once, uploads' and workers' alike. */
  probes: ConcurrencyLimiter
}

/** Probes a local file, waiting its turn among the probes of this process. */
export function probeLocalFile(
  path: string,
  { settings, probes }: ProbeContext,
  signal?: AbortSignal,
): Promise<MediaInfo> {
  return probes.run(
    () =>
      settings.probe(path, {
        signal,
        // A frame the limits refuse anyway is never decoded, not even by the probe.
        maxFramePixels: settings.limits.maxFramePixels,
      }),
    signal,
  )
}

/**
 * Probes an original already in storage: its own file when the storage has one, else a
 * private copy read into the tmp dir (and removed), as the ffmpeg engine gets its input.
 */
export async function probeStoredFile(
  key: string,
  storage: Storage,
  context: ProbeContext,
  signal?: AbortSignal,
): Promise<MediaInfo> {
  const { tmpDir } = context.settings
  // Private, as the spool and the engine's work folders are: it holds a copy of an owner's media.
  await mkdir(tmpDir, { recursive: true, mode: 0o700 })
  const copy = join(tmpDir, `${processTag()}-${randomUUID()}.probe`)
  try {
    return await probeLocalFile(await localFileOf(storage, key, copy, signal), context, signal)
  } finally {
    await rm(copy, { force: true })
  }
}

/** Throws `IncompatiblePresetError` for the first preset that needs a stream the media lacks. */
export function checkPresetsFit(media: MediaInfo, presets: readonly Preset[]): void {
  const hasVideo = media.streams.some((s) => s.type === 'video')
  const hasAudio = media.streams.some((s) => s.type === 'audio')
  for (const preset of presets) {
    const needs = presetNeeds(preset)
    if (needs === 'video' && !hasVideo) {
      throw new IncompatiblePresetError(`preset ${preset.id} needs a video input`)
    }
    if (needs === 'audio' && !hasAudio && !preset.video) {
      throw new IncompatiblePresetError(`preset ${preset.id} needs an audio input`)
    }
  }
}
