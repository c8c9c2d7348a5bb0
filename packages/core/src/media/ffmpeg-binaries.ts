import { accessSync, constants } from 'node:fs'
import { createRequire } from 'node:module'
import { delimiter, join } from 'node:path'

const require = createRequire(import.meta.url)

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue
    const candidate = join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return null
}

function bundled(packageName: string): string | null {
  try {
    return (require(packageName) as { path: string }).path
  } catch {
    return null
  }
}

/** ffmpeg: `FFMPEG_PATH`, else `ffmpeg` on `PATH`, else the binary of `@ffmpeg-installer/ffmpeg`. */
export function ffmpegPath(): string {
  const found = process.env.FFMPEG_PATH || onPath('ffmpeg') || bundled('@ffmpeg-installer/ffmpeg')
  if (!found) throw new Error('no ffmpeg found: set FFMPEG_PATH or install ffmpeg')
  return found
}

/** ffprobe: `FFPROBE_PATH`, else `ffprobe` on `PATH`, else the binary of `@ffprobe-installer/ffprobe`. */
export function ffprobePath(): string {
  const found =
    process.env.FFPROBE_PATH || onPath('ffprobe') || bundled('@ffprobe-installer/ffprobe')
  if (!found) throw new Error('no ffprobe found: set FFPROBE_PATH or install ffprobe')
  return found
}
