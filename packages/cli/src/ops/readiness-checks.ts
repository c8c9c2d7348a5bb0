import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { ffmpegBinary, ffprobeBinary, type Storage } from '@transcodekit/core'
import type { ReadinessCheck } from './readiness.ts'

const execFileAsync = promisify(execFile)

/** A key no upload can have (ours are `<prefix>assets/<uuid>/…`): only its absence is read. */
const PROBE_KEY = 'transcodekit-readyz'

/** The database answers a query. */
export function databaseCheck(ping: (signal: AbortSignal) => Promise<void>): ReadinessCheck {
  return { name: 'database', run: ping }
}

/** The storage answers a metadata read (S3: a HEAD of an object that is not there). */
export function storageCheck(storage: Storage): ReadinessCheck {
  return {
    name: 'storage',
    run: async (signal) => {
      await storage.head(PROBE_KEY, { signal })
    },
  }
}

/**
 * The binaries this process runs answer `-version`: ffprobe reads every upload; ffmpeg runs
 * the jobs when the engine is ffmpeg.
 */
export function binaryChecks(options: {
  ffmpeg: boolean
  ffmpegPath: string | null
}): ReadinessCheck[] {
  const run = (path: () => string) => async (signal: AbortSignal) => {
    await execFileAsync(path(), ['-version'], { signal, maxBuffer: 1024 * 1024 })
  }
  const checks: ReadinessCheck[] = [{ name: 'ffprobe', run: run(() => ffprobeBinary().path) }]
  if (options.ffmpeg) {
    checks.push({
      name: 'ffmpeg',
      run: run(() => options.ffmpegPath ?? ffmpegBinary().path),
    })
  }
  return checks
}
