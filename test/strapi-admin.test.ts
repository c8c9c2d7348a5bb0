import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeTone, makeVideo } from '../packages/core/src/testing/index.ts'
import {
  ADMIN_BUILD,
  adminSql,
  bootStrapi,
  PG_URL,
  STRAPI_INSTALLED,
  type StrapiCore,
  strapiEnv,
} from './support/strapi-app.ts'

// The plugin's admin part in the real Strapi 5 admin (built by examples/strapi/install.sh),
// driven by Chromium; and its admin routes under Strapi's admin RBAC.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const READY = STRAPI_INSTALLED && existsSync(ADMIN_BUILD) && existsSync(CHROMIUM)
const SKIP_REASON =
  'needs examples/strapi installed with its admin built (examples/strapi/install.sh) and Chromium'

if (!READY && process.env.CI) {
  describe('Strapi admin', () => {
    it('is installed and built', () => {
      throw new Error(`${SKIP_REASON} (CI must run install.sh before the tests)`)
    })
  })
} else if (!READY) {
  console.warn(`[strapi-admin.test.ts] skipped: ${SKIP_REASON}`)
}

const PASSWORD = 'Transcode1kit!'
const SUPER = { firstname: 'Super', lastname: 'Admin', email: 'super@example.com' }

/** The parts of the booted Strapi this test touches. */
interface AdminStrapi extends StrapiCore {
  service(uid: string): unknown
  plugin(name: string): { service(name: string): unknown }
}

interface AdminJob {
  id: string
  fileId: string | null
  state: string
  progress: number
  error: { code: string; message: string } | null
  outputs: Array<{ preset: string; url: string | null; mime: string; state: string }>
}

describe.skipIf(!READY)('Strapi admin: the transcodekit plugin', () => {
  const database = `strapi_admin_test_${randomBytes(4).toString('hex')}`
  let work: string
  let strapi: AdminStrapi
  let base: string
  let shutdown: () => Promise<void>
  let browser: Browser | null = null
  /** Admin JWTs by user. */
  const tokens: Record<'super' | 'none' | 'reader', string> = { super: '', none: '', reader: '' }

  async function api(
    token: string,
    method: 'GET' | 'POST',
    path: string,
  ): Promise<{ status: number; body: { data: unknown; error?: { code?: string } } }> {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    })
    return { status: response.status, body: await response.json() }
  }

  async function login(email: string): Promise<string> {
    const response = await fetch(`${base}/admin/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: PASSWORD }),
    })
    expect(response.status, `login of ${email}`).toBe(200)
    return ((await response.json()) as { data: { token: string } }).data.token
  }

  /** An admin user whose one role holds exactly `actions`. */
  async function adminWith(email: string, actions: string[]): Promise<string> {
    const roles = strapi.service('admin::role') as unknown as {
      create(input: object): Promise<{ id: number }>
      assignPermissions(id: number, permissions: object[]): Promise<unknown>
    }
    const role = await roles.create({ name: `role of ${email}`, description: 'test' })
    await roles.assignPermissions(
      role.id,
      actions.map((action) => ({ action, subject: null, properties: {}, conditions: [] })),
    )
    const users = strapi.service('admin::user') as unknown as {
      create(input: object): Promise<unknown>
    }
    await users.create({
      firstname: email.split('@')[0],
      email,
      password: PASSWORD,
      isActive: true,
      roles: [role.id],
    })
    return login(email)
  }

  async function jobOfFile(fileId: number, timeoutMs = 60_000): Promise<AdminJob> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const { status, body } = await api(tokens.super, 'GET', `/transcodekit/files/${fileId}`)
      expect(status).toBe(200)
      const job = (body.data as { job: AdminJob | null }).job
      if (job && ['complete', 'error', 'canceled'].includes(job.state)) return job
      if (Date.now() > deadline) throw new Error(`file ${fileId}: ${JSON.stringify(body)}`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'tk-strapi-admin-'))
    await adminSql(`CREATE DATABASE ${database}`)
    const publicDir = join(work, 'public')
    await mkdir(join(publicDir, 'uploads'), { recursive: true })
    for (const key of Object.keys(process.env)) {
      if (key.startsWith('TRANSCODEKIT_') || key.startsWith('AWS_')) delete process.env[key]
    }
    Object.assign(process.env, strapiEnv(), {
      DATABASE_URL: `${PG_URL}/${database}`,
      PUBLIC_DIR: publicDir,
      UPLOAD_PROVIDER: 'local',
      TRANSCODEKIT_AUDIO_PRESETS: 'wav,flac',
      TRANSCODEKIT_VIDEO_PRESETS: 'mp4-480p,thumbnail',
    })
    ;({ strapi, base, shutdown } = await bootStrapi<AdminStrapi>())

    // The first admin, through Strapi's own registration API (a super admin).
    const registered = await fetch(`${base}/admin/register-admin`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...SUPER, password: PASSWORD }),
    })
    expect(registered.status).toBe(200)
    tokens.super = await login(SUPER.email)
    tokens.none = await adminWith('none@example.com', [])
    tokens.reader = await adminWith('reader@example.com', ['plugin::transcodekit.read'])
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
  }, 180_000)

  afterAll(async () => {
    await browser?.close()
    if (shutdown) await shutdown()
    await adminSql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch((error) =>
      console.warn(`[strapi-admin.test.ts] could not drop ${database}: ${error}`),
    )
    if (work) await rm(work, { recursive: true, force: true })
  })

  it('refuses the admin routes to an admin whose role has no transcodekit permission (403), and to no admin (401)', async () => {
    const routes: Array<['GET' | 'POST', string]> = [
      ['GET', '/transcodekit/jobs'],
      ['GET', '/transcodekit/jobs/some-job'],
      ['GET', '/transcodekit/files/1'],
      ['POST', '/transcodekit/jobs/some-job/retry'],
      ['POST', '/transcodekit/jobs/some-job/cancel'],
    ]
    for (const [method, path] of routes) {
      expect((await api(tokens.none, method, path)).status, `${method} ${path}`).toBe(403)
      expect((await api('', method, path)).status, `${method} ${path}`).toBe(401)
    }
    // The same routes answer a super admin.
    const listed = await api(tokens.super, 'GET', '/transcodekit/jobs')
    expect(listed.status).toBe(200)
    expect(listed.body.data).toMatchObject({ items: expect.any(Array) })
  })

  it('lets a reader read, but neither retry nor cancel', async () => {
    expect((await api(tokens.reader, 'GET', '/transcodekit/jobs')).status).toBe(200)
    expect((await api(tokens.reader, 'GET', '/transcodekit/jobs/some-job')).status).toBe(404)
    for (const action of ['retry', 'cancel']) {
      const { status } = await api(tokens.reader, 'POST', `/transcodekit/jobs/some-job/${action}`)
      expect(status, action).toBe(403)
    }
  })

  it('answers malformed parameters with 400 and a stable code', async () => {
    for (const path of [
      '/transcodekit/files/abc',
      '/transcodekit/files/0',
      '/transcodekit/jobs?limit=1000',
      '/transcodekit/jobs?state=done',
      `/transcodekit/jobs?cursor=${'x'.repeat(600)}`,
      `/transcodekit/jobs/${'x'.repeat(200)}`,
    ]) {
      const { status, body } = await api(tokens.super, 'GET', path)
      expect(status, path).toBe(400)
      expect(body.error?.code, path).toBe('INVALID_REQUEST')
    }
    const missing = await api(tokens.super, 'GET', '/transcodekit/files/999999')
    expect(missing.status).toBe(404)
    expect(missing.body.error?.code).toBe('NOT_FOUND')
  })

  it('cancels a running job and retries it: the file then shows the new job, complete', async () => {
    const mp4 = await makeVideo(join(work, 'long.mp4'), { seconds: 20, width: 640, height: 360 })
    const form = new FormData()
    form.append(
      'files',
      new Blob([await import('node:fs/promises').then((fs) => fs.readFile(mp4))], {
        type: 'video/mp4',
      }),
      'long.mp4',
    )
    const uploaded = await fetch(`${base}/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.super}` },
      body: form,
    })
    expect(uploaded.status).toBe(201)
    const [file] = (await uploaded.json()) as Array<{ id: number }>
    // Wait (bounded) for the job to exist, then cancel it before it ends.
    const deadline = Date.now() + 30_000
    let jobId: string | null = null
    while (!jobId) {
      const { body } = await api(tokens.super, 'GET', `/transcodekit/files/${file!.id}`)
      jobId = (body.data as { job: AdminJob | null }).job?.id ?? null
      if (Date.now() > deadline) throw new Error('no job was made for the upload')
      if (!jobId) await new Promise((r) => setTimeout(r, 100))
    }
    const canceled = await api(tokens.super, 'POST', `/transcodekit/jobs/${jobId}/cancel`)
    expect(canceled.status).toBe(200)
    expect((canceled.body.data as AdminJob).state).toBe('canceled')
    expect((await jobOfFile(file!.id)).state).toBe('canceled')
    // A canceled job cannot be canceled into another state; a second cancel is a no-op.
    expect((await api(tokens.super, 'POST', `/transcodekit/jobs/${jobId}/cancel`)).status).toBe(200)

    const retried = await api(tokens.super, 'POST', `/transcodekit/jobs/${jobId}/retry`)
    expect(retried.status).toBe(200)
    const retry = retried.body.data as AdminJob
    expect(retry.id).not.toBe(jobId)
    expect(retry.fileId).toBe(String(file!.id))
    // Retrying the same job again gives the same new job.
    const again = await api(tokens.super, 'POST', `/transcodekit/jobs/${jobId}/retry`)
    expect((again.body.data as AdminJob).id).toBe(retry.id)
    const done = await jobOfFile(file!.id, 120_000)
    expect(done.id).toBe(retry.id)
    expect(done.state).toBe('complete')
    // A job that completed cannot be canceled: 409 with its code.
    const late = await api(tokens.super, 'POST', `/transcodekit/jobs/${retry.id}/cancel`)
    expect(late.status).toBe(409)
    expect(late.body.error?.code).toBe('INVALID_STATE')
  }, 180_000)

  it('in Chromium: an upload through the Media Library shows its job complete on the plugin page, with outputs that play', async () => {
    const page = await browser!.newPage()
    const failures: string[] = []
    page.on('pageerror', (error) => failures.push(error.message))
    try {
      await signIn(page, base)
      const mp3 = await makeTone(join(work, 'admin-song.mp3'), { seconds: 2, format: 'mp3' })
      await uploadThroughMediaLibrary(page, mp3)

      // The plugin's page (its menu link) lists the job; live progress until it is complete.
      await page.getByRole('link', { name: 'Transcoding' }).click()
      await page.waitForURL('**/admin/plugins/transcodekit')
      const files = strapi.plugin('upload').service('upload') as unknown as {
        findMany(query: object): Promise<Array<{ id: number; name: string }>>
      }
      const [file] = (await files.findMany({ filters: { name: 'admin-song.mp3' } })) ?? []
      expect(file, 'the uploaded file entry').toBeDefined()
      const row = page.locator(`tr[data-file="${file!.id}"]`)
      await row.locator('[data-state="complete"]').waitFor({ timeout: 90_000 })
      await expect(row.textContent()).resolves.toContain('wav (complete)')
      await expect(row.textContent()).resolves.toContain('flac (complete)')

      // The file's view: each output with a player that loads, and a download link.
      await row.getByRole('link', { name: `File #${file!.id}` }).click()
      await page.waitForURL(`**/admin/plugins/transcodekit/files/${file!.id}`)
      for (const preset of ['wav', 'flac']) {
        const output = page.locator(`[data-output="${preset}"]`)
        const audio = output.locator('audio')
        await audio.waitFor()
        await page.waitForFunction(
          (element) => (element as HTMLMediaElement).readyState >= 2,
          await audio.elementHandle(),
          { timeout: 30_000 },
        )
        const duration = await audio.evaluate((element) => (element as HTMLMediaElement).duration)
        expect(duration).toBeCloseTo(2, 0)
        const href = await output
          .getByRole('link', { name: `Download ${preset}` })
          .getAttribute('href')
        const download = await fetch(new URL(href!, base))
        expect(download.status).toBe(200)
        expect(download.headers.get('content-type')).toContain(preset === 'wav' ? 'wav' : 'flac')
      }
      expect(failures).toEqual([])
    } catch (error) {
      await page.screenshot({ path: join(tmpdir(), 'strapi-admin-failure.png'), fullPage: true })
      throw error
    } finally {
      await page.close()
    }
  }, 240_000)
})

async function signIn(page: Page, base: string): Promise<void> {
  await page.goto(`${base}/admin/auth/login`)
  await page.locator('input[name="email"]').fill(SUPER.email)
  await page.locator('input[name="password"]').fill(PASSWORD)
  await page.getByRole('button', { name: /log ?in/i }).click()
  await page.waitForURL((url) => !url.pathname.includes('/auth/'), { timeout: 60_000 })
  // The admin has loaded the admin's permissions once the plugin's menu link (read) shows.
  await page.getByRole('link', { name: 'Transcoding' }).waitFor({ timeout: 60_000 })
}

/** Strapi 5's Media Library: New › File upload, then the browser's file chooser. */
async function uploadThroughMediaLibrary(page: Page, path: string): Promise<void> {
  await page.getByRole('link', { name: 'Media Library' }).click()
  await page.getByRole('button', { name: 'New' }).click()
  const [chooser] = await Promise.all([
    page.waitForEvent('filechooser'),
    page.getByRole('menuitem', { name: 'File upload', exact: true }).click(),
  ])
  await chooser.setFiles(path)
  await page.getByText(basename(path)).first().waitFor({ timeout: 60_000 })
}
