import { createWriteStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { NotFoundError } from '../errors.ts'
import type { Storage } from '../ports/storage.ts'

/**
 * An object as a local file, for a process (ffmpeg, ffprobe) that reads files: the storage's
 * own file when it has one, else a copy written to `copyPath` (which must not exist), readable
 * by the server's user only. The caller removes the copy.
 */
export async function localFileOf(
  storage: Storage,
  key: string,
  copyPath: string,
  signal?: AbortSignal,
): Promise<string> {
  const local = storage.localPath?.(key)
  if (local !== undefined) {
    const info = await stat(local).catch(() => null)
    if (!info?.isFile()) throw new NotFoundError('object', key)
    return resolve(local)
  }
  const { body } = await storage.get(key, { signal })
  await pipeline(body, createWriteStream(copyPath, { flags: 'wx', mode: 0o600 }), { signal })
  return copyPath
}
