import type { LogFn, Logger } from '../ports/logger.ts'

/** Messages name their source (`transcodekit: …`) for loggers that add no prefix: once is enough. */
function prefixed(message: string): string {
  return message.startsWith('transcodekit:') ? message : `transcodekit: ${message}`
}

function level(write: (line: string) => void): LogFn {
  return ((fields: Record<string, unknown> | string, message?: string) => {
    if (typeof fields === 'string') write(prefixed(fields))
    else write(`${prefixed(message ?? '')} ${JSON.stringify(fields)}`.replace('  ', ' '))
  }) as LogFn
}

/**
 * The default `Logger`: one line per entry on stderr, every level. A library's diagnostics
 * never go to stdout, which belongs to the program (a CLI's `--json`, a child process's
 * protocol).
 */
export function consoleLogger(): Logger {
  const write = (line: string) => {
    process.stderr.write(`${line}\n`)
  }
  return { info: level(write), warn: level(write), error: level(write) }
}
