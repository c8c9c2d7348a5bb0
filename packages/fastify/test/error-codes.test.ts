import { JOB_ERROR_CODES, REQUEST_ERROR_CODES, TranscodeKitError } from '@transcodekit/core'
import { describe, expect, it } from 'vitest'
import { toHttpError } from '../src/http-errors.ts'

describe('core error codes over HTTP', () => {
  it.each(REQUEST_ERROR_CODES)(
    '%s answers with its own TRANSCODEKIT_ code and a client status',
    (code) => {
      const answer = toHttpError(new TranscodeKitError(code, `refused: ${code}`))
      if (code === 'CONFIGURATION') {
        // The server's own options: nothing to tell the client, nothing it can change.
        expect(answer).toMatchObject({ statusCode: 500, code: 'TRANSCODEKIT_INTERNAL' })
        expect(answer.message).toBe('internal error')
        return
      }
      expect(answer.code).toMatch(/^TRANSCODEKIT_[A-Z_]+$/)
      expect(answer.code).not.toBe('TRANSCODEKIT_INTERNAL')
      expect(answer.message).toBe(`refused: ${code}`)
      const clientStatus = answer.statusCode >= 400 && answer.statusCode < 500
      expect(clientStatus || (code === 'INSUFFICIENT_STORAGE' && answer.statusCode === 507)).toBe(
        true,
      )
    },
  )

  it('keeps the message of an engine failure that reaches a route to the logs (500)', () => {
    for (const code of JOB_ERROR_CODES.filter((c) => !REQUEST_ERROR_CODES.includes(c as never))) {
      const answer = toHttpError(new TranscodeKitError(code, 'ffmpeg said /secret/path'))
      expect(answer).toMatchObject({ statusCode: 500, code: 'TRANSCODEKIT_INTERNAL' })
      expect(answer.message).toBe('internal error')
    }
  })
})
