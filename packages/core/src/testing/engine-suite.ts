import { randomUUID } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { TranscodeKitError } from '../errors.ts'
import { outputKey } from '../keys.ts'
import { probeMedia } from '../media/ffprobe.ts'
import { isTerminal, type MediaInfo } from '../model.ts'
import type { Engine, EngineJobRequest, EngineStatus } from '../ports/engine.ts'
import type { Storage } from '../ports/storage.ts'
import { createPresetCatalog } from '../presets/preset-catalog.ts'
import { makeCorruptMedia, makeTone } from './media-fixtures.ts'

export interface EngineUnderTest {
  engine: Engine
  /** The storage the engine reads inputs from and writes outputs to. */
  storage: Storage
  cleanup?: () => Promise<void>
}

export interface EngineConformanceOptions {
  /**
   * Presets of the multi-output job (ids or aliases of the built-in catalog).
   * @default the seed's three: `1351620000001-300300`, `1351620000001-300110`, `1351620000001-100110`
   */
  presets?: readonly string[]
  /** Length of the generated input. @default 4 */
  inputSeconds?: number
  /** How often a job that `run` left running is asked for its status. @default 100 */
  pollIntervalMs?: number
  /** How long a job may take to end, `run` and polling together. @default 60_000 */
  maxWaitMs?: number
  /** The error code a corrupt input must end with; any stable code when unset. */
  corruptInputCode?: string
  /**
   * Whether the engine reports a progress percentage (Elastic Transcoder does not). Progress
   * that is reported must rise and stay within 0–100 either way.
   * @default true
   */
  reportsProgress?: boolean
}

const SEED_PRESETS = ['1351620000001-300300', '1351620000001-300110', '1351620000001-100110']
const CODE = /^[A-Z][A-Z0-9_]+$/

/**
 * What every `Engine` must do, for any engine: local ones that finish inside `run`, and remote
 * ones whose `run` resolves `submitted`/`progressing` and that are then polled with
 * `getStatus`. Inputs are generated with ffmpeg and put into the engine's storage.
 *
 * @example
 * engineConformance('ffmpeg', async () => {
 *   const root = await mkdtemp(join(tmpdir(), 'tk-'))
 *   return { engine: ffmpegEngine(), storage: localStorage({ root }), cleanup: () => rm(root, { recursive: true }) }
 * })
 */
export function engineConformance(
  name: string,
  make: () => Promise<EngineUnderTest>,
  options: EngineConformanceOptions = {},
): void {
  const presetNames = options.presets ?? SEED_PRESETS
  const inputSeconds = options.inputSeconds ?? 4
  const pollIntervalMs = options.pollIntervalMs ?? 100
  const maxWaitMs = options.maxWaitMs ?? 60_000
  const catalog = createPresetCatalog()
  const testTimeout = maxWaitMs + 30_000

  async function withEngine<T>(
    fn: (subject: EngineUnderTest, dir: string) => Promise<T>,
  ): Promise<T> {
    const dir = await mkdtemp(join(tmpdir(), 'transcodekit-engine-suite-'))
    const subject = await make()
    try {
      return await fn(subject, dir)
    } finally {
      await subject.cleanup?.()
      await rm(dir, { recursive: true, force: true })
    }
  }

  async function storeInput(
    storage: Storage,
    path: string,
    media: MediaInfo,
  ): Promise<EngineJobRequest> {
    const assetId = randomUUID()
    const jobId = randomUUID()
    const key = `conformance/${assetId}/original.mp3`
    await storage.put(key, createReadStream(path), { contentType: 'audio/mpeg' })
    return {
      jobId,
      input: { key, media },
      storage,
      outputs: catalog.resolveAll(presetNames).map((preset) => ({
        name: preset.id,
        key: outputKey('conformance', assetId, jobId, preset.id, preset.extension),
        preset,
      })),
    }
  }

  async function toneRequest(storage: Storage, dir: string): Promise<EngineJobRequest> {
    const path = await makeTone(join(dir, 'input.mp3'), { seconds: inputSeconds, format: 'mp3' })
    return storeInput(storage, path, await probeMedia(path))
  }

  /** Follows a job to its end: `run`'s answer, then `getStatus` while it is not terminal. */
  async function untilTerminal(
    engine: Engine,
    first: EngineStatus,
    seen: EngineStatus[],
  ): Promise<EngineStatus> {
    let status = first
    const deadline = Date.now() + maxWaitMs
    while (!isTerminal(status.state)) {
      expect(
        engine.getStatus,
        `${name}: run returned ${status.state} but has no getStatus`,
      ).toBeTypeOf('function')
      if (Date.now() > deadline)
        throw new Error(`${name}: the job did not end within ${maxWaitMs} ms`)
      await new Promise((resolve) => setTimeout(resolve, pollIntervalMs))
      status = await engine.getStatus!(status.engineJobId)
      seen.push(status)
    }
    return status
  }

  async function expectNoOutputs(storage: Storage, request: EngineJobRequest): Promise<void> {
    for (const output of request.outputs) {
      expect(await storage.head(output.key), `output ${output.key} must not exist`).toBeNull()
    }
  }

  function isAbort(error: unknown): boolean {
    return (
      (error instanceof TranscodeKitError && error.code === 'ABORTED') ||
      (error instanceof Error && error.name === 'AbortError')
    )
  }

  describe(`Engine conformance: ${name}`, () => {
    it('has a stable name', async () => {
      await withEngine(async ({ engine }) => {
        expect(engine.name).toMatch(/^[a-z][a-z0-9-]*$/)
      })
    })

    it('runs a multi-output job to complete, every output stored', {
      timeout: testTimeout,
    }, async () => {
      await withEngine(async ({ engine, storage }, dir) => {
        const request = await toneRequest(storage, dir)
        const seen: EngineStatus[] = []
        const first = await engine.run(request, {
          signal: new AbortController().signal,
          onStatus: (status) => seen.push(status),
        })
        const final = await untilTerminal(engine, first, seen)
        expect(final.state, final.error?.message).toBe('complete')
        expect(final.engineJobId).toBeTypeOf('string')
        expect(final.engineJobId.length).toBeGreaterThan(0)
        expect(final.outputs?.map((o) => o.key).sort()).toEqual(
          request.outputs.map((o) => o.key).sort(),
        )
        for (const output of final.outputs ?? []) {
          expect(output.state).toBe('complete')
          const head = await storage.head(output.key)
          expect(head, `output ${output.key} is stored`).not.toBeNull()
          expect(head!.size).toBeGreaterThan(0)
          if (output.size !== undefined && output.size !== null) {
            expect(output.size).toBeGreaterThanOrEqual(head!.size)
          }
        }
      })
    })

    it('reports progress in order, rising, never past 100', { timeout: testTimeout }, async () => {
      await withEngine(async ({ engine, storage }, dir) => {
        const request = await toneRequest(storage, dir)
        const seen: EngineStatus[] = []
        const first = await engine.run(request, {
          signal: new AbortController().signal,
          onStatus: (status) => seen.push({ ...status }),
        })
        seen.push(first)
        const final = await untilTerminal(engine, first, seen)
        expect(final.state).toBe('complete')
        const progress = seen.flatMap((s) => (s.progress === undefined ? [] : [s.progress]))
        if (options.reportsProgress ?? true) expect(progress.length).toBeGreaterThan(0)
        for (const [i, value] of progress.entries()) {
          expect(value).toBeGreaterThanOrEqual(0)
          expect(value).toBeLessThanOrEqual(100)
          if (i > 0) expect(value).toBeGreaterThanOrEqual(progress[i - 1]!)
        }
        // Only the last status may be terminal, and every status is about this job.
        expect(seen.slice(0, -1).every((s) => !isTerminal(s.state))).toBe(true)
        expect(new Set(seen.map((s) => s.engineJobId))).toEqual(new Set([final.engineJobId]))
      })
    })

    it('cancels through the signal and leaves no output', { timeout: testTimeout }, async () => {
      await withEngine(async ({ engine, storage }, dir) => {
        const request = await toneRequest(storage, dir)
        const controller = new AbortController()
        let outcome: EngineStatus | unknown
        try {
          // Abort at the first sign of life: the job has started, and cannot have ended.
          const first = await engine.run(request, {
            signal: controller.signal,
            onStatus: () => controller.abort(),
          })
          controller.abort()
          if (!isTerminal(first.state)) {
            // A remote engine that had already submitted: cancel the job there.
            expect(engine.cancel, `${name}: a submitted job must be cancelable`).toBeTypeOf(
              'function',
            )
            await engine.cancel!(first.engineJobId)
            outcome = await untilTerminal(engine, first, [])
          } else {
            outcome = first
          }
        } catch (error) {
          outcome = error
        }
        if (outcome instanceof Error) {
          expect(isAbort(outcome), `expected an abort, got ${String(outcome)}`).toBe(true)
        } else {
          expect((outcome as EngineStatus).state).toBe('canceled')
        }
        await expectNoOutputs(storage, request)
      })
    })

    it('refuses to start with an aborted signal and writes nothing', {
      timeout: testTimeout,
    }, async () => {
      await withEngine(async ({ engine, storage }, dir) => {
        const request = await toneRequest(storage, dir)
        const controller = new AbortController()
        controller.abort()
        const statuses: EngineStatus[] = []
        const error = await engine
          .run(request, { signal: controller.signal, onStatus: (s) => statuses.push(s) })
          .then(
            () => null,
            (e: unknown) => e,
          )
        expect(isAbort(error), `expected an abort, got ${String(error)}`).toBe(true)
        await expectNoOutputs(storage, request)
      })
    })

    it('ends a corrupt input in error with a stable code and no output', {
      timeout: testTimeout,
    }, async () => {
      await withEngine(async ({ engine, storage }, dir) => {
        const path = await makeCorruptMedia(join(dir, 'corrupt.mp3'))
        // The corrupt file probes as mp3 (that is the point: it gets past the gate).
        const media = await probeMedia(path)
        const request = await storeInput(storage, path, media)
        let code: string
        let message: string
        try {
          const first = await engine.run(request, {
            signal: new AbortController().signal,
            onStatus: () => {},
          })
          const final = await untilTerminal(engine, first, [])
          expect(final.state).toBe('error')
          code = final.error?.code ?? ''
          message = final.error?.message ?? ''
        } catch (error) {
          expect(error).toBeInstanceOf(TranscodeKitError)
          code = (error as TranscodeKitError).code
          message = (error as TranscodeKitError).message
        }
        expect(code).toMatch(CODE)
        expect(code).not.toBe('ABORTED')
        if (options.corruptInputCode) expect(code).toBe(options.corruptInputCode)
        expect(message.length).toBeGreaterThan(0)
        await expectNoOutputs(storage, request)
      })
    })
  })
}
