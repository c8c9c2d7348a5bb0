import { afterEach, describe, expect, it, vi } from 'vitest'
import { consoleLogger } from '../src/logging/console-logger.ts'

describe('consoleLogger', () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it('writes one line per entry to stderr, named once, with its fields as JSON', () => {
    const lines: string[] = []
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      lines.push(String(chunk))
      return true
    })
    const stdout = vi.spyOn(process.stdout, 'write')
    const logger = consoleLogger()
    logger.info('ffmpeg engine: ready')
    logger.warn({ jobId: 'j1' }, 'transcodekit: could not record the progress of a job')
    logger.error({ code: 'STALLED' }, 'transcode job failed')
    expect(lines).toEqual([
      'transcodekit: ffmpeg engine: ready\n',
      'transcodekit: could not record the progress of a job {"jobId":"j1"}\n',
      'transcodekit: transcode job failed {"code":"STALLED"}\n',
    ])
    expect(stdout).not.toHaveBeenCalled()
  })
})
