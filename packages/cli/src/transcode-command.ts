import { randomUUID } from 'node:crypto'
import { access, mkdir, mkdtemp, rm, stat } from 'node:fs/promises'
import { basename, extname, join, resolve } from 'node:path'
import {
  checkPresetsFit,
  createPresetCatalog,
  EngineError,
  ffmpegEngine,
  type MediaInfo,
  NotFoundError,
  probeMedia,
  sniffFileRejection,
  UnsupportedMediaError,
} from '@transcodekit/core'
import { OutputExistsError } from './cli-errors.ts'
import { OutputFolderStorage } from './output-folder-storage.ts'
import { progressReporter } from './progress-reporter.ts'

export interface TranscodeCommandOptions {
  file: string
  /** Preset ids or aliases, in order; repeats of one preset are dropped. */
  presets: string[]
  /** @default the working folder */
  outDir?: string | undefined
  /** Overwrite outputs that exist. @default false */
  force?: boolean | undefined
  /** One JSON document on stdout instead of progress and lines. @default false */
  json?: boolean | undefined
  signal?: AbortSignal | undefined
}

export interface TranscodedOutput {
  preset: string
  path: string
  size: number | null
  durationSec: number | null
}

export interface TranscodeResult {
  input: string
  media: MediaInfo
  outputs: TranscodedOutput[]
}

/**
 * `transcodekit transcode`: the ffmpeg engine on a local file, outputs named
 * `<input name>-<preset id>.<extension>` in the output folder. The checks of an upload come
 * first (the bytes are media, ffprobe reads them, each preset applies), then one ffmpeg run
 * writes every output in a work folder inside the output folder, and they are moved into place
 * only once all are complete: a failure leaves no output behind.
 */
export async function transcodeCommand(options: TranscodeCommandOptions): Promise<TranscodeResult> {
  const catalog = createPresetCatalog()
  const presets = catalog.resolveAll(options.presets)
  const input = resolve(options.file)
  const info = await stat(input).catch(() => null)
  if (!info?.isFile()) throw new NotFoundError('file', options.file)
  const rejection = await sniffFileRejection(input)
  if (rejection) throw new UnsupportedMediaError(rejection)
  const media = await probeMedia(input, options.signal ? { signal: options.signal } : {})
  // The same rules as an upload's presets: a video preset needs a picture, audio needs sound.
  checkPresetsFit(media, presets)

  const outDir = resolve(options.outDir ?? '.')
  await mkdir(outDir, { recursive: true })
  const stem = safeStem(input)
  const planned = presets.map((preset) => ({
    preset,
    key: `${stem}-${preset.id}.${preset.extension}`,
  }))
  if (!options.force) {
    for (const { key } of planned) {
      const path = join(outDir, key)
      if (await exists(path)) throw new OutputExistsError(path)
    }
  }

  const work = await mkdtemp(join(outDir, '.transcodekit-'))
  const storage = new OutputFolderStorage({ dir: outDir, input })
  const progress = options.json ? null : progressReporter(process.stdout, 'transcoding')
  try {
    const status = await ffmpegEngine({ tmpDir: work }).run(
      {
        jobId: randomUUID(),
        input: { key: storage.inputKey, media },
        outputs: planned.map(({ preset, key }) => ({ name: preset.id, key, preset })),
        storage,
      },
      {
        signal: options.signal ?? new AbortController().signal,
        onStatus: (update) => progress?.update(update.progress ?? 0),
      },
    )
    if (status.state !== 'complete') {
      throw new EngineError(
        status.error?.code ?? 'ENGINE_FAILED',
        status.error?.message ?? `the job ended ${status.state}`,
      )
    }
    progress?.update(100)
    const byKey = new Map((status.outputs ?? []).map((output) => [output.key, output]))
    return {
      input,
      media,
      outputs: planned.map(({ preset, key }) => ({
        preset: preset.id,
        path: join(outDir, key),
        size: byKey.get(key)?.size ?? null,
        durationSec: byKey.get(key)?.durationSec ?? null,
      })),
    }
  } finally {
    progress?.finish()
    await rm(work, { recursive: true, force: true })
  }
}

/** The input's name without extension, as letters, digits, `.`, `_` and `-` (a storage key). */
function safeStem(path: string): string {
  const stem = basename(path, extname(path))
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 80)
  return stem === '' ? 'output' : stem
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  )
}
