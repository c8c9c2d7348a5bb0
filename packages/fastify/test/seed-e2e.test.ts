import { openAsBlob } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeTone, probe } from '@transcodekit/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeApp, parseEvents, type TestApp } from './helpers.ts'

const SEED_PRESETS = ['1351620000001-300300', '1351620000001-300110', '1351620000001-100110']

describe("the seed's case over HTTP", () => {
  let t: TestApp
  let dir: string
  let base: string

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'transcodekit-seed-'))
    t = await makeApp({ prefix: '/api' })
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    base = `http://127.0.0.1:${(t.app.server.address() as { port: number }).port}`
  })
  afterAll(async () => {
    await t?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('uploads a 10 s stereo mp3 with the three seed presets and downloads WAV, FLAC and AAC 256k in MP4', async () => {
    const source = await makeTone(join(dir, 'song.mp3'), { seconds: 10, format: 'mp3' })
    const form = new FormData()
    for (const preset of SEED_PRESETS) form.append('presets', preset)
    form.append('file', await openAsBlob(source, { type: 'audio/mpeg' }), 'song.mp3')
    const res = await fetch(`${base}/api/uploads`, {
      method: 'POST',
      body: form,
      headers: { 'idempotency-key': 'seed-1' },
    })
    expect(res.status).toBe(201)
    const { asset, job } = await res.json()
    expect(res.headers.get('location')).toBe(`/api/jobs/${job.id}`)
    expect(asset.media.durationSec).toBeCloseTo(10, 0)
    expect(job.outputs.map((o: { presetId: string }) => o.presetId)).toEqual([
      'wav',
      'flac',
      'aac-256k',
    ])
    // The ids as the client asked for them, beside the canonical names.
    expect(
      job.outputs.map((o: { requestedPresetId: string | null }) => o.requestedPresetId),
    ).toEqual(SEED_PRESETS)

    // Follow the job over server-sent events until it ends.
    const events = await fetch(`${base}/api/jobs/${job.id}/events`)
    expect(events.headers.get('content-type')).toMatch(/^text\/event-stream/)
    const jobs = parseEvents(await events.text()).map((e) => JSON.parse(e.data))
    const done = jobs.at(-1)
    expect(done.state).toBe('complete')

    const expected = [
      { presetId: 'wav', format: 'wav', codec: 'pcm_s16le' },
      { presetId: 'flac', format: 'flac', codec: 'flac' },
      { presetId: 'aac-256k', format: 'mov,mp4,m4a,3gp,3g2,mj2', codec: 'aac' },
    ]
    for (const want of expected) {
      const output = done.outputs.find((o: { presetId: string }) => o.presetId === want.presetId)
      expect(output.state).toBe('complete')
      const download = await fetch(`${base}${output.url}`)
      expect(download.status).toBe(200)
      const bytes = Buffer.from(await download.arrayBuffer())
      expect(bytes.length).toBe(output.size)
      const path = join(dir, `out-${want.presetId}`)
      await writeFile(path, bytes)
      const info = await probe(path)
      expect(info.format.format_name).toBe(want.format)
      const audio = info.streams.find((s) => s.codec_type === 'audio')!
      expect(audio.codec_name).toBe(want.codec)
      expect(audio.sample_rate).toBe('44100')
      expect(audio.channels).toBe(2)
      expect(Math.abs(Number(info.format.duration) - 10)).toBeLessThan(0.1)
      expect(Math.abs(output.durationSec - 10)).toBeLessThan(0.1)
      if (want.presetId === 'aac-256k') {
        const rate = Number(audio.bit_rate ?? info.format.bit_rate)
        expect(rate).toBeGreaterThan(256_000 * 0.85)
        expect(rate).toBeLessThan(256_000 * 1.15)
      }
    }
  })
})
