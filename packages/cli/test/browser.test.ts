import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { makeTone } from '@transcodekit/core/testing'
import { type Browser, chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RunningServer, startServer } from './server-process.ts'

const RESULTS = fileURLToPath(new URL('../../../test-results/', import.meta.url))
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

describe('the web page in headless Chromium', () => {
  let dir: string
  let server: RunningServer
  let browser: Browser

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH`)
    }
    dir = await mkdtemp(join(tmpdir(), 'transcodekit-browser-'))
    await mkdir(RESULTS, { recursive: true })
    // The page is under test here; the embedded database has its own test (server.test.ts).
    server = await startServer({ DATA_DIR: join(dir, 'data'), DATABASE_URL: 'memory://' })
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--autoplay-policy=no-user-gesture-required',
      ],
    })
  }, 240_000)

  afterAll(async () => {
    await browser?.close()
    await server?.stop('SIGTERM')
    await rm(dir, { recursive: true, force: true })
  })

  it('uploads a file, shows the upload and the job reach 100 %, and plays an output', async () => {
    const mp3 = await makeTone(join(dir, 'morning tone.mp3'), { seconds: 3, format: 'mp3' })
    const page = await browser.newPage({ viewport: { width: 1100, height: 1300 } })
    const problems: string[] = []
    page.on('pageerror', (error) => problems.push(error.message))
    page.on('response', (response) => {
      if (response.status() >= 400) problems.push(`${response.status()} ${response.url()}`)
    })
    await page.goto(server.url)
    await page.waitForSelector('body[data-ready="true"]')
    expect(await page.textContent('#assets')).toContain('Nothing uploaded yet')
    // The seed's three outputs are checked by default.
    const checked = await page.$$eval('input[name="presets"]:checked', (boxes) =>
      boxes.map((box) => (box as HTMLInputElement).value),
    )
    expect(checked).toEqual(['wav', 'flac', 'aac-256k'])

    await page.setInputFiles('#file', mp3)
    expect(await page.textContent('#file-name')).toContain('morning tone.mp3')
    // Keyboard: the submit button is reachable and works with Enter.
    await page.focus('#submit')
    await page.keyboard.press('Enter')

    await page.waitForFunction(
      () => (document.getElementById('upload-progress') as HTMLProgressElement).value === 100,
    )
    await page.waitForFunction(
      () => document.getElementById('status')?.textContent?.startsWith('Done'),
      undefined,
      {
        timeout: 60_000,
      },
    )
    expect(await page.$eval('#job-progress', (el) => (el as HTMLProgressElement).value)).toBe(100)
    expect(await page.textContent('#job-percent')).toBe('100 %')
    const rows = await page.$$eval('#outputs li', (items) =>
      items.map((item) => item.getAttribute('data-output')),
    )
    expect(rows).toEqual(['wav', 'flac', 'aac-256k'])
    expect(await page.$$('#outputs audio')).toHaveLength(3)
    const links = await page.$$eval('#outputs a', (anchors) =>
      anchors.map((a) => (a as HTMLAnchorElement).href),
    )
    expect(links).toHaveLength(3)
    for (const link of links) {
      const response = await fetch(link)
      expect(response.status).toBe(200)
      // Saved under the upload's own name, with each output's extension.
      expect(response.headers.get('content-disposition')).toMatch(
        /^attachment; filename="morning tone\.(wav|flac|m4a|mp4)"/,
      )
    }

    // Play the WAV output: it loads, its duration is the input's, and time advances.
    const played = await page.$eval('#outputs li[data-output="wav"] audio', async (element) => {
      const audio = element as HTMLAudioElement
      await audio.play()
      const start = performance.now()
      while (audio.currentTime < 0.3 && performance.now() - start < 10_000) {
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      return {
        currentTime: audio.currentTime,
        duration: audio.duration,
        readyState: audio.readyState,
        paused: audio.paused,
      }
    })
    expect(played.readyState).toBeGreaterThanOrEqual(2)
    expect(played.duration).toBeCloseTo(3, 0)
    expect(played.currentTime).toBeGreaterThan(0.3)
    expect(played.paused).toBe(false)

    // The earlier uploads list now shows this one.
    await page.waitForFunction(() =>
      document.getElementById('assets')?.textContent?.includes('morning tone.mp3'),
    )
    expect(await page.isHidden('#more-assets')).toBe(true)
    await page.evaluate(() => window.scrollTo(0, 0))
    await page.screenshot({ path: join(RESULTS, 'example-server-page.png'), fullPage: true })
    expect(problems).toEqual([])
    await page.close()
  }, 120_000)

  it('asks for the API key once, keeps it, and sends it on every call', async () => {
    const key = 'page-key-0123456789abcdef'
    const keyed = await startServer({
      DATA_DIR: join(dir, 'keyed'),
      DATABASE_URL: 'memory://',
      API_KEYS: `${key}:alice`,
    })
    const context = await browser.newContext()
    try {
      const page = await context.newPage()
      const errors: string[] = []
      page.on('pageerror', (error) => errors.push(error.message))
      await page.goto(keyed.url)
      await page.waitForSelector('#api-key:not([hidden])')
      // A wrong key is refused, and asked for again.
      await page.fill('#api-key-input', 'wrong-key-0123456789abcdef')
      await page.click('#api-key-form button[type="submit"]')
      await page.waitForFunction(() =>
        document.getElementById('api-key-message')?.textContent?.includes('did not accept'),
      )
      await page.fill('#api-key-input', key)
      await page.click('#api-key-form button[type="submit"]')
      await page.waitForSelector('body[data-ready="true"]')
      expect(await page.isHidden('#api-key')).toBe(true)
      expect(await page.evaluate(() => localStorage.getItem('transcodekit.apiKey'))).toBe(key)

      // Upload and follow the job: every call carries the key (events included).
      const mp3 = await makeTone(join(dir, 'keyed tone.mp3'), { seconds: 1, format: 'mp3' })
      await page.setInputFiles('#file', mp3)
      await page.click('#submit')
      await page.waitForFunction(
        () => document.getElementById('status')?.textContent?.startsWith('Done'),
        undefined,
        { timeout: 60_000 },
      )
      // Kept: a new visit of the page asks nothing.
      await page.reload()
      await page.waitForSelector('body[data-ready="true"]')
      expect(await page.isHidden('#api-key')).toBe(true)
      expect(await page.textContent('#assets')).toContain('keyed tone.mp3')
      expect(await page.isVisible('#forget-key')).toBe(true)
      expect(errors).toEqual([])
      // Without the key, the API refuses what the page just did.
      expect((await fetch(`${keyed.url}/api/assets`)).status).toBe(401)
    } finally {
      await context.close()
      await keyed.stop('SIGTERM')
    }
  }, 120_000)
})
