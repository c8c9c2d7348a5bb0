import { readdir } from 'node:fs/promises'
import { join, relative, sep } from 'node:path'
import { isTerminal, type Job } from '../model.ts'
import type { TranscodeService } from '../service/transcode-service.ts'

/**
 * Every file under `root`, as sorted paths relative to it; `[]` when `root` does not exist.
 * With `hiddenFolders: false`, files inside a folder whose name starts with `.` (the
 * `.meta` and `.tmp` of local storage) are left out.
 *
 * @example
 * expect(await filesUnder(join(dir, 'spool'))).toEqual([])
 */
export async function filesUnder(
  root: string,
  options: { hiddenFolders?: boolean } = {},
): Promise<string[]> {
  const hiddenFolders = options.hiddenFolders ?? true
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => [])
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)))
    .filter(
      (path) =>
        hiddenFolders ||
        !path
          .split(sep)
          .slice(0, -1)
          .some((s) => s.startsWith('.')),
    )
    .sort()
}

/**
 * Follows a job through `service.watch` to its end and returns it in its terminal state;
 * throws if it has not ended within `timeoutMs`.
 */
export async function jobEnd(
  service: Pick<TranscodeService, 'watch'>,
  id: string,
  { timeoutMs = 60_000 }: { timeoutMs?: number } = {},
): Promise<Job> {
  let last: Job | undefined
  for await (const job of service.watch(id, { signal: AbortSignal.timeout(timeoutMs) })) {
    last = job
  }
  if (!last || !isTerminal(last.state)) throw new Error(`job ${id} did not end in ${timeoutMs} ms`)
  return last
}
