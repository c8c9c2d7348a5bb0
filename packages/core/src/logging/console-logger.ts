import type { LogFn, Logger } from '../ports/logger.ts'

function level(write: (line: string) => void): LogFn {
  return ((fields: Record<string, unknown> | string, message?: string) => {
    if (typeof fields === 'string') write(`transcodekit: ${fields}`)
    else write(`transcodekit: ${message ?? ''} ${JSON.stringify(fields)}`.replace('  ', ' '))
  }) as LogFn
}

/** The default `Logger`: one line per entry on the console (stderr for warnings and errors). */
export function consoleLogger(): Logger {
  return {
    info: level((line) => console.info(line)),
    warn: level((line) => console.warn(line)),
    error: level((line) => console.error(line)),
  }
}
