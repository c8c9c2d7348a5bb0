/** The rows of `/proc/<pid>/limits` that the ffmpeg engine sets, as [soft, hard] strings. */
export interface FfmpegRlimits {
  cpuTime: string[] | undefined
  addressSpace: string[] | undefined
  fileSize: string[] | undefined
  coreFileSize: string[] | undefined
}

/** Reads the engine's four rlimits from the text of a process's `/proc/<pid>/limits`. */
export function ffmpegRlimits(limits: string): FfmpegRlimits {
  return {
    cpuTime: limitRow(limits, 'Max cpu time'),
    addressSpace: limitRow(limits, 'Max address space'),
    fileSize: limitRow(limits, 'Max file size'),
    coreFileSize: limitRow(limits, 'Max core file size'),
  }
}

/** The soft and hard values of the row named `name` ('unlimited' as written), if there is one. */
function limitRow(limits: string, name: string): string[] | undefined {
  return limits
    .split('\n')
    .find((line) => line.startsWith(name))
    ?.slice(name.length)
    .trim()
    .split(/\s+/)
    .slice(0, 2)
}
