import { readFileSync } from 'node:fs'
import { isExecutable } from '../media/executable.ts'

let setpriv: string | null | undefined
let prlimit: string | null | undefined

/**
 * The command that runs `binary` (ffmpeg, ffprobe) so that it dies with this process, under
 * its resource limits. On Linux, util-linux's `setpriv --pdeathsig KILL` asks the kernel to
 * kill it when its parent dies (even by SIGKILL), and `prlimit` sets its rlimits (`limits`,
 * made by `rlimit`); each execs the next in place, so the pid is the binary's. Without
 * `setpriv`, the ffmpeg of a killed worker runs on to the end of the job as an orphan: a
 * broken progress pipe does not stop it. Elsewhere, or when a binary is missing, it is
 * spawned as it is (the watched limits still apply).
 */
export function dieWithParent(
  binary: string,
  args: string[],
  limits: string[],
): [string, string[]] {
  if (setpriv === undefined) {
    setpriv = process.platform === 'linux' ? findExecutable('setpriv') : null
    prlimit = process.platform === 'linux' ? findExecutable('prlimit') : null
  }
  if (!isExecutable(binary)) return [binary, args]
  const command =
    prlimit && limits.length > 0 ? [prlimit, ...limits, '--', binary, ...args] : [binary, ...args]
  if (!setpriv) return [command[0] as string, command.slice(1)]
  return [setpriv, ['--pdeathsig', 'KILL', '--', ...command]]
}

let ownLimits: string | null | undefined

/**
 * One `prlimit` option (`cpu`, `as`, …, with its row `name` in `/proc/<pid>/limits`), its
 * values lowered to this process's own hard limit: a process can lower its limits, never
 * raise them, and `prlimit` would refuse to run the binary at all.
 */
export function rlimit(option: string, name: string, soft: number, hard: number): string {
  if (ownLimits === undefined) {
    try {
      ownLimits = readFileSync('/proc/self/limits', 'utf8')
    } catch {
      ownLimits = null
    }
  }
  const line = ownLimits?.split('\n').find((l) => l.startsWith(name))
  const ceiling = Number(line?.slice(name.length).trim().split(/\s+/)[1])
  if (Number.isFinite(ceiling)) {
    hard = Math.min(hard, ceiling)
    soft = Math.min(soft, hard)
  }
  return `--${option}=${soft}:${hard}`
}

function findExecutable(name: string): string | null {
  return [`/usr/bin/${name}`, `/bin/${name}`].find((path) => isExecutable(path)) ?? null
}
