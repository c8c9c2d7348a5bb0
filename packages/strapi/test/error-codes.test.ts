import {
  EngineError,
  IncompatiblePresetError,
  MediaTooLongError,
  TooManyJobsError,
  UnsupportedMediaError,
} from '@transcodekit/core'
import { describe, expect, it } from 'vitest'
import { isPermanentError } from '../src/error-codes.ts'
import { OriginalReadError } from '../src/original-readers.ts'

describe('isPermanentError', () => {
  it('gives up on what the same file would fail again: not media, a preset, a limit, an unreadable original', () => {
    expect(isPermanentError(new UnsupportedMediaError('not media'))).toBe(true)
    expect(isPermanentError(new IncompatiblePresetError('needs video'))).toBe(true)
    expect(isPermanentError(new MediaTooLongError(36_000, 14_400))).toBe(true)
    expect(isPermanentError(new OriginalReadError('ORIGINAL_NOT_FOUND', 'gone'))).toBe(true)
  })

  it('tries again when the server is busy, or the failure is not a refusal', () => {
    expect(isPermanentError(new TooManyJobsError(4))).toBe(false)
    expect(isPermanentError(new EngineError('ENGINE_UNAVAILABLE', 'down'))).toBe(false)
    expect(
      isPermanentError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })),
    ).toBe(false)
    expect(isPermanentError(new Error('no code'))).toBe(false)
    expect(isPermanentError(null)).toBe(false)
    // Inherited names are not codes.
    expect(isPermanentError({ code: 'toString' })).toBe(false)
  })
})
