// CPU time of the processes this one has spawned (ffprobe, ffmpeg), directly or through the
// process launcher: the children this process has reaped (`cutime`/`cstime` of its own
// /proc/self/stat), plus each live child's own time and what it reaped (the launcher and its
// ffprobes). Linux only; null elsewhere.
import { readdirSync, readFileSync } from 'node:fs'

const TICKS_PER_SEC = 100

function statFields(pid: number | 'self'): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    return null
  }
}

/** Seconds of CPU used by the processes spawned from this one so far. */
export function childrenCpuSec(): number | null {
  const own = statFields('self')
  if (!own) return null
  // Fields after the command: utime 11, stime 12, cutime 13, cstime 14 (0-based here).
  let ticks = Number(own[13]) + Number(own[14])
  for (const task of readdirSync('/proc/self/task')) {
    let children: string[] = []
    try {
      children = readFileSync(`/proc/self/task/${task}/children`, 'utf8').trim().split(/\s+/)
    } catch {
      continue
    }
    for (const pid of children.filter(Boolean)) {
      const fields = statFields(Number(pid))
      if (fields) ticks += fields.slice(11, 15).reduce((sum, f) => sum + Number(f), 0)
    }
  }
  return ticks / TICKS_PER_SEC
}
