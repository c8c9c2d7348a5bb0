import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeLongSilence, makeTimestampGapVideo } from '@transcodekit/core/testing'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { makeApp, multipart, type TestApp } from './helpers.ts'

let fixtures: string
let silence: Buffer
let gap: Buffer

beforeAll(async () => {
  fixtures = await mkdtemp(join(tmpdir(), 'transcodekit-fastify-limits-'))
  silence = await readFile(await makeLongSilence(join(fixtures, 'silence.flac')))
  gap = await readFile(await makeTimestampGapVideo(join(fixtures, 'gap.mkv')))
}, 60_000)
afterAll(async () => {
  await rm(fixtures, { recursive: true, force: true })
})

let t: TestApp
afterEach(async () => {
  await t?.close()
})

describe('media bombs are refused up front under the default job limits', () => {
  it.each([
    ['the 72 KB FLAC of 10 h of silence', 'silence.flac', 'audio/flac', 'wav', () => silence],
    ['the MKV with a 10-hour timestamp gap', 'gap.mkv', 'video/x-matroska', 'mp4-720p', () => gap],
  ])(
    '422 TRANSCODEKIT_MEDIA_TOO_LONG for %s, with nothing left behind',
    async (_, filename, contentType, preset, data) => {
      t = await makeApp()
      const body = multipart([
        { name: 'presets', value: preset },
        { name: 'file', filename, contentType, data: data() },
      ])
      const res = await t.app.inject({
        method: 'POST',
        url: '/uploads',
        headers: body.headers,
        payload: body.payload,
      })
      expect(res.statusCode).toBe(422)
      expect(res.json()).toMatchObject({
        statusCode: 422,
        code: 'TRANSCODEKIT_MEDIA_TOO_LONG',
        message: expect.stringMatching(/more than the limit of 14400 s/),
      })
      const state = await t.snapshot()
      expect(state).toEqual({ files: [], tmp: [], assets: [], jobs: [] })
    },
  )
})
