import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ffmpegInputArgs, ffmpegOutputArgs } from '../../packages/core/src/engine/ffmpeg-args.ts'
import { ffmpegPath } from '../../packages/core/src/media/ffmpeg-binaries.ts'
import { probeMedia } from '../../packages/core/src/media/ffprobe.ts'
import type { Preset } from '../../packages/core/src/presets/preset-schema.ts'

const execFileAsync = promisify(execFile)

/** What the fake services do to media: real ffmpeg, reading and writing S3 (s3rver) over HTTP. */
export interface FakeOutput {
  /** Object key of the main file (the playlist for HLS). */
  key: string
  preset: Preset
}

export interface FakeOutputResult {
  key: string
  ok: boolean
  /** Set when `ok` is false. */
  detail?: string
  fileSize?: number
  durationSec?: number
  width?: number
  height?: number
}

function objectUrl(endpoint: string, bucket: string, key: string): string {
  return `${endpoint}/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`
}

export async function objectExists(
  endpoint: string,
  bucket: string,
  key: string,
): Promise<boolean> {
  const response = await fetch(objectUrl(endpoint, bucket, key), { method: 'HEAD' })
  return response.status === 200
}

async function putObject(
  endpoint: string,
  bucket: string,
  key: string,
  path: string,
  contentType: string,
) {
  const response = await fetch(objectUrl(endpoint, bucket, key), {
    method: 'PUT',
    headers: { 'content-type': contentType },
    body: await readFile(path),
  })
  if (!response.ok) throw new Error(`PUT ${key}: HTTP ${response.status}`)
}

/**
 * Downloads `inputKey`, makes every output with ffmpeg (one process per output, as a service
 * farm would) and uploads it. Inputs that cannot be read or decoded fail every output.
 */
export async function transcodeObjects(options: {
  endpoint: string
  inputBucket: string
  inputKey: string
  outputBucket: string
  outputs: FakeOutput[]
  /** Called after each output, with how many are done. */
  onOutput?: (done: number, total: number) => void
}): Promise<FakeOutputResult[]> {
  const dir = await mkdtemp(join(tmpdir(), 'tk-fake-transcode-'))
  try {
    const response = await fetch(objectUrl(options.endpoint, options.inputBucket, options.inputKey))
    if (!response.ok) {
      return options.outputs.map((o) => ({
        key: o.key,
        ok: false,
        detail: `4000 The input file could not be read: bucket=${options.inputBucket}, key=${options.inputKey}`,
      }))
    }
    const input = join(dir, 'input')
    await writeFile(input, Buffer.from(await response.arrayBuffer()))
    let media: Awaited<ReturnType<typeof probeMedia>>
    try {
      media = await probeMedia(input)
    } catch (error) {
      return options.outputs.map((o) => ({
        key: o.key,
        ok: false,
        detail: `4001 The input file is not media: ${(error as Error).message}`,
      }))
    }
    const results: FakeOutputResult[] = []
    for (const [index, output] of options.outputs.entries()) {
      const outDir = join(dir, `out-${index}`)
      await execFileAsync('mkdir', [outDir])
      const main = join(outDir, `main.${output.preset.extension}`)
      try {
        const plan = ffmpegOutputArgs(output.preset, {
          index,
          media,
          path: main,
          segmentPattern: join(outDir, 'segment%05d.ts'),
          x264Preset: 'ultrafast',
        })
        const filters =
          plan.filterComplex.length > 0 ? ['-filter_complex', plan.filterComplex.join(';')] : []
        await execFileAsync(ffmpegPath(), [
          '-hide_banner',
          '-nostdin',
          '-loglevel',
          'error',
          '-y',
          '-xerror',
          ...ffmpegInputArgs(input, media),
          ...filters,
          ...plan.args,
        ])
        if ((await stat(main)).size === 0) throw new Error('the input decoded to nothing')
        // The main file under its key; HLS segments beside it.
        const base = output.key.slice(0, output.key.lastIndexOf('/') + 1)
        for (const file of await readdir(outDir)) {
          const key = file.startsWith('main.') ? output.key : `${base}${file}`
          const type = file.startsWith('main.') ? output.preset.contentType : 'video/mp2t'
          await putObject(options.endpoint, options.outputBucket, key, join(outDir, file), type)
        }
        const probed =
          output.preset.container === 'hls' ? null : await probeMedia(main).catch(() => null)
        const video = probed?.streams.find((s) => s.type === 'video')
        results.push({
          key: output.key,
          ok: true,
          fileSize: (await stat(main)).size,
          durationSec: probed?.durationSec ?? media.durationSec ?? undefined,
          width: video?.width,
          height: video?.height,
        })
      } catch (error) {
        results.push({
          key: output.key,
          ok: false,
          detail: `4000 The input file could not be decoded: ${(error as Error).message.slice(-200)}`,
        })
      }
      options.onOutput?.(results.length, options.outputs.length)
    }
    return results
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
