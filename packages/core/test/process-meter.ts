import { readdir, readFile } from 'node:fs/promises'

/** The peaks seen of the child processes of this process while the meter ran. */
export interface ProcessPeaks {
  /** How many distinct children were seen. */
  processes: number
  /** User + system CPU time of the most expensive child, in seconds. */
  cpuSec: number
  /** Highest resident memory (VmHWM) of a child, in bytes. */
  rssBytes: number
  /** Most bytes a child passed to write() (`wchar`): every byte it wrote, to disk or pipe. */
  writtenBytes: number
  /**
   * CPU time of the children that ended and were reaped while the meter ran, exact: the
   * kernel adds a reaped child's times to its parent's `cutime`/`cstime`.
   */
  reapedCpuSec: number
  /**
   * Bytes written by the children reaped while the meter ran, plus this process's own: the
   * kernel adds a reaped child's I/O counts to its parent's `/proc/self/io`. An upper bound.
   */
  reapedWrittenBytes: number
}

async function selfTotals(): Promise<{ cpuSec: number; writtenBytes: number }> {
  const stat = await readFile('/proc/self/stat', 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const io = await readFile('/proc/self/io', 'utf8')
  return {
    // cutime and cstime: fields 16 and 17 of stat, 14 and 15 after the name.
    cpuSec: (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS,
    writtenBytes: Number(/wchar: (\d+)/.exec(io)?.[1] ?? 0),
  }
}

const CLOCK_TICKS = 100

/** The pids of this process's children (Linux `/proc`), zombies included. */
export async function children(): Promise<number[]> {
  const pids: number[] = []
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (Number(fields[1]) === process.pid) pids.push(Number(name))
  }
  return pids
}

async function sample(pid: number) {
  const [stat, status, io] = await Promise.all(
    [`/proc/${pid}/stat`, `/proc/${pid}/status`, `/proc/${pid}/io`].map((path) =>
      readFile(path, 'utf8').catch(() => ''),
    ),
  )
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const cpuSec = stat ? (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS : 0
  const hwm = /VmHWM:\s+(\d+) kB/.exec(status ?? '')
  const wchar = /wchar: (\d+)/.exec(io ?? '')
  return {
    cpuSec,
    rssBytes: hwm ? Number(hwm[1]) * 1024 : 0,
    writtenBytes: wchar ? Number(wchar[1]) : 0,
  }
}

/**
 * Samples every child process of this one (Linux `/proc`) every `intervalMs` until `stop()`:
 * CPU time, peak resident memory and bytes written, per child, kept at their highest. A
 * child's last moments between two samples are missed: CPU and bytes by at most one interval.
 *
 * @example
 * const meter = meterChildren()
 * await service.runJob(job.id)
 * const peaks = await meter.stop()
 */
export function meterChildren(intervalMs = 50): { stop(): Promise<ProcessPeaks> } {
  const seen = new Map<number, { cpuSec: number; rssBytes: number; writtenBytes: number }>()
  let running = true
  const before = selfTotals()
  const loop = (async () => {
    while (running) {
      for (const pid of await children()) {
        const now = await sample(pid)
        const before = seen.get(pid) ?? { cpuSec: 0, rssBytes: 0, writtenBytes: 0 }
        seen.set(pid, {
          cpuSec: Math.max(before.cpuSec, now.cpuSec),
          rssBytes: Math.max(before.rssBytes, now.rssBytes),
          writtenBytes: Math.max(before.writtenBytes, now.writtenBytes),
        })
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs))
    }
  })()
  return {
    async stop() {
      running = false
      await loop
      const start = await before
      const end = await selfTotals()
      const all = [...seen.values()]
      return {
        processes: all.length,
        cpuSec: Math.max(0, ...all.map((p) => p.cpuSec)),
        rssBytes: Math.max(0, ...all.map((p) => p.rssBytes)),
        writtenBytes: Math.max(0, ...all.map((p) => p.writtenBytes)),
        reapedCpuSec: end.cpuSec - start.cpuSec,
        reapedWrittenBytes: end.writtenBytes - start.writtenBytes,
      }
    },
  }
}
