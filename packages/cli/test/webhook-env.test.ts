import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { loadConfig } from '../src/config.ts'
import { BIN, configProblems } from './server-process.ts'

const SECRET = `whsec_${Buffer.alloc(32, 1).toString('base64')}`

describe('loadConfig: WEBHOOK_URL, WEBHOOK_SECRET, WEBHOOK_ALLOW_PRIVATE', () => {
  it('has no webhook when neither is set', () => {
    expect(loadConfig({}).webhook).toBeNull()
  })

  it('reads a public receiver with its secret', () => {
    const config = loadConfig({
      WEBHOOK_URL: 'https://hooks.example.com/tk',
      WEBHOOK_SECRET: SECRET,
    })
    expect(config.webhook).toEqual({
      url: 'https://hooks.example.com/tk',
      secret: SECRET,
      allowPrivateAddresses: false,
      retryDelayMs: 30_000,
      retainEndedMs: 30 * 86_400_000,
    })
  })

  it('keeps ended deliveries WEBHOOK_RETAIN_DAYS days, for ever at 0', () => {
    const env = { WEBHOOK_URL: 'https://hooks.example.com/tk', WEBHOOK_SECRET: SECRET }
    const retained = (days: string) =>
      loadConfig({ ...env, WEBHOOK_RETAIN_DAYS: days }).webhook?.retainEndedMs
    expect(retained('7')).toBe(7 * 86_400_000)
    expect(retained('0')).toBe(Number.POSITIVE_INFINITY)
    expect(configProblems({ ...env, WEBHOOK_RETAIN_DAYS: '-1' })).toEqual([
      expect.stringMatching(/^WEBHOOK_RETAIN_DAYS must be an integer from 0 to 36500/),
    ])
  })

  it.each([
    'http://127.0.0.1:4000/hook',
    'http://10.1.2.3/hook',
    'http://169.254.169.254/latest/meta-data/',
    'http://[::1]:4000/hook',
    'http://localhost:4000/hook',
  ])('refuses %s unless WEBHOOK_ALLOW_PRIVATE=true', (url) => {
    expect(configProblems({ WEBHOOK_URL: url, WEBHOOK_SECRET: SECRET })).toEqual([
      expect.stringMatching(/^WEBHOOK_URL: .*WEBHOOK_ALLOW_PRIVATE=true allows it/),
    ])
    const allowed = loadConfig({
      WEBHOOK_URL: url,
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_ALLOW_PRIVATE: 'true',
    })
    expect(allowed.webhook).toMatchObject({ url, allowPrivateAddresses: true })
  })

  it('names each bad variable', () => {
    expect(configProblems({ WEBHOOK_URL: 'https://hooks.example.com/' })).toEqual([
      expect.stringMatching(/^WEBHOOK_SECRET is required/),
    ])
    expect(configProblems({ WEBHOOK_SECRET: SECRET })).toEqual([
      expect.stringMatching(/^WEBHOOK_SECRET is set without WEBHOOK_URL/),
    ])
    expect(
      configProblems({ WEBHOOK_URL: 'https://hooks.example.com/', WEBHOOK_SECRET: 'hunter2' }),
    ).toEqual([expect.stringMatching(/^WEBHOOK_SECRET must be "whsec_"/)])
    expect(configProblems({ WEBHOOK_URL: 'ftp://example.com/', WEBHOOK_SECRET: SECRET })).toEqual([
      expect.stringMatching(/^WEBHOOK_URL: a webhook URL is http or https/),
    ])
    expect(
      configProblems({
        WEBHOOK_URL: 'https://example.com/',
        WEBHOOK_SECRET: SECRET,
        WEBHOOK_ALLOW_PRIVATE: 'maybe',
      }),
    ).toEqual([expect.stringMatching(/^WEBHOOK_ALLOW_PRIVATE must be true or false/)])
  })

  it('`serve --help` and both READMEs name every webhook variable', async () => {
    const { stdout: help } = await promisify(execFile)(process.execPath, [BIN, 'serve', '--help'])
    const readmes = await Promise.all(
      ['../README.md', '../../../examples/server/README.md'].map((path) =>
        readFile(new URL(path, import.meta.url), 'utf8'),
      ),
    )
    for (const name of [
      'WEBHOOK_URL',
      'WEBHOOK_SECRET',
      'WEBHOOK_ALLOW_PRIVATE',
      'WEBHOOK_RETRY_DELAY_MS',
      'WEBHOOK_RETAIN_DAYS',
    ]) {
      expect(
        help.split('\n').some((line) => line.trim().startsWith(`${name} `)),
        name,
      ).toBe(true)
      for (const readme of readmes) {
        expect(
          readme.split('\n').some((line) => line.startsWith(`| \`${name}\``)),
          name,
        ).toBe(true)
      }
    }
  })
})
