import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { delimiter, dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { isExecutable } from './executable.ts'

const require = createRequire(import.meta.url)
const execFileAsync = promisify(execFile)

/**
 * Which binary runs and why: `option` (given to the engine), `env` (`FFMPEG_PATH`,
 * `FFPROBE_PATH`), `path` (found on `PATH`) or `bundled` (the npm package's).
 */
export interface BinaryChoice {
  path: string
  source: 'option' | 'env' | 'path' | 'bundled'
}

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue
    const candidate = join(dir, name)
    if (isExecutable(candidate)) return candidate
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

/**
 * The linux-x64 ffprobe this package depends on itself (4.0.3, optional). The one
 * `@ffprobe-installer/ffprobe` 2.1.2 pins, 5.2.0 (as every build from 4.1.0 on), dies with
 * SIGSEGV on any MPEG-TS input; 4.0.3 reads it.
 */
const PINNED_PROBE = { name: '@ffprobe-installer/linux-x64', version: '4.0.3' }

function pinnedProbe(): string | null {
  if (process.platform !== 'linux' || process.arch !== 'x64') return null
  try {
    const manifest = require.resolve(`${PINNED_PROBE.name}/package.json`)
    const { version } = JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }
    const path = join(dirname(manifest), 'ffprobe')
    // Its postinstall makes it executable: a package manager that skipped it leaves it not.
    return version === PINNED_PROBE.version && isExecutable(path) ? path : null
  } catch {
    return null
  }
}

function choose(
  env: string | undefined,
  name: string,
  fallback: () => string | null,
): BinaryChoice | null {
  if (env) return { path: env, source: 'env' }
  const found = onPath(name)
  if (found) return { path: found, source: 'path' }
  const own = fallback()
  return own ? { path: own, source: 'bundled' } : null
}

/** ffmpeg: `FFMPEG_PATH`, else `ffmpeg` on `PATH`, else the 2018 build of `@ffmpeg-installer/ffmpeg`. */
export function ffmpegBinary(): BinaryChoice {
  const found = choose(process.env.FFMPEG_PATH, 'ffmpeg', () => bundled('@ffmpeg-installer/ffmpeg'))
  if (!found) throw new Error('no ffmpeg found: set FFMPEG_PATH or install ffmpeg')
  return found
}

/**
 * ffprobe: `FFPROBE_PATH`, else `ffprobe` on `PATH`, else the bundled 2018 build: this
 * package's own `@ffprobe-installer/linux-x64` 4.0.3 on Linux x64, else the binary of
 * `@ffprobe-installer/ffprobe`.
 */
export function ffprobeBinary(): BinaryChoice {
  const found = choose(
    process.env.FFPROBE_PATH,
    'ffprobe',
    () => pinnedProbe() ?? bundled('@ffprobe-installer/ffprobe'),
  )
  if (!found) throw new Error('no ffprobe found: set FFPROBE_PATH or install ffprobe')
  return found
}

/**
 * The bundled builds alone, whatever `FFMPEG_PATH`, `FFPROBE_PATH` and `PATH` say (`null` when
 * the package is not installed for this platform): for tests that run both.
 */
export function bundledBinaries(): { ffmpeg: string | null; ffprobe: string | null } {
  return {
    ffmpeg: bundled('@ffmpeg-installer/ffmpeg'),
    ffprobe: pinnedProbe() ?? bundled('@ffprobe-installer/ffprobe'),
  }
}

/** The path of `ffmpegBinary()`. */
export function ffmpegPath(): string {
  return ffmpegBinary().path
}

/** The path of `ffprobeBinary()`. */
export function ffprobePath(): string {
  return ffprobeBinary().path
}

/** A binary as it answers `-version`: the first line, such as `ffmpeg version 5.1.8-0+deb12u1 …`. */
export interface BinaryVersion extends BinaryChoice {
  version: string
  /** The 2018 builds of `@ffmpeg-installer`/`@ffprobe-installer`: old decoders, known bugs. */
  outdated: boolean
}

const versions = new Map<string, Promise<string>>()

/** Runs `<binary> -version` (once per process and path) and reads its first line. */
export async function binaryVersion(choice: BinaryChoice): Promise<BinaryVersion> {
  let read = versions.get(choice.path)
  if (!read) {
    read = execFileAsync(choice.path, ['-version'], { timeout: 10_000 }).then(
      ({ stdout }) => stdout.split('\n')[0]?.trim() ?? '',
    )
    read.catch(() => versions.delete(choice.path))
    versions.set(choice.path, read)
  }
  const version = await read
  return {
    ...choice,
    version,
    outdated: choice.source === 'bundled' || /Copyright \(c\) 20\d\d-201\d/.test(version),
  }
}
