import type { LogFn, Logger } from '@transcodekit/core'
import type { StrapiLogger } from './strapi-host.ts'

/** Core's `Logger` on Strapi's logger: the fields are appended to the message as JSON. */
export function strapiCoreLogger(log: StrapiLogger): Logger {
  const level =
    (write: (message: string) => void): LogFn =>
    (fieldsOrMessage: Record<string, unknown> | string, message?: string) => {
      if (typeof fieldsOrMessage === 'string') return write(fieldsOrMessage)
      write(`${message ?? ''} ${JSON.stringify(fieldsOrMessage)}`.trim())
    }
  return {
    info: level((m) => log.info(m)),
    warn: level((m) => log.warn(m)),
    error: level((m) => log.error(m)),
  }
}
