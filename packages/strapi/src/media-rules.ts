import { ConfigurationError } from '@transcodekit/core'

/**
 * Which uploads are transcoded, and to what. `mime` is an exact type (`video/mp4`), a family
 * (`audio/*`) or `*\/*`; the first rule that matches an upload's MIME type wins, and an upload
 * that no rule matches gets no job.
 *
 * @example
 * const rules: MediaRule[] = [
 *   { mime: 'audio/*', presets: ['mp3-192k', 'aac-256k'] },
 *   { mime: 'video/*', presets: ['mp4-720p', 'thumbnail'] },
 * ]
 */
export interface MediaRule {
  mime: string
  /** Preset ids or aliases of the service's catalog; at least one. */
  presets: readonly string[]
}

const MIME_PATTERN = /^(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)\/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)$/

/** Copies and checks rules; throws a `ConfigurationError` that names the bad rule. */
export function resolveRules(rules: unknown, option = 'rules'): MediaRule[] {
  if (!Array.isArray(rules) || rules.length === 0) {
    throw new ConfigurationError(`${option} must be a non-empty array of { mime, presets }`)
  }
  return rules.map((rule, index) => {
    const where = `${option}[${index}]`
    if (typeof rule !== 'object' || rule === null) {
      throw new ConfigurationError(`${where} must be an object { mime, presets }`)
    }
    const { mime, presets } = rule as Record<string, unknown>
    if (
      typeof mime !== 'string' ||
      !MIME_PATTERN.test(mime.toLowerCase()) ||
      (mime.startsWith('*/') && mime !== '*/*')
    ) {
      throw new ConfigurationError(
        `${where}.mime must be a MIME type like "video/mp4", "audio/*" or "*/*"; got ${JSON.stringify(mime)}`,
      )
    }
    if (
      !Array.isArray(presets) ||
      presets.length === 0 ||
      !presets.every((p) => typeof p === 'string' && p.length > 0)
    ) {
      throw new ConfigurationError(`${where}.presets must be a non-empty array of preset names`)
    }
    return { mime: mime.toLowerCase(), presets: [...presets] as string[] }
  })
}

/** The first rule whose `mime` matches `mime` (parameters such as `; charset` ignored). */
export function matchRule(
  rules: readonly MediaRule[],
  mime: string | null | undefined,
): MediaRule | null {
  if (typeof mime !== 'string') return null
  const type = mime.split(';', 1)[0]!.trim().toLowerCase()
  const [family, subtype] = type.split('/')
  if (!family || !subtype) return null
  for (const rule of rules) {
    const [ruleFamily, ruleSubtype] = rule.mime.split('/')
    if (
      (ruleFamily === '*' || ruleFamily === family) &&
      (ruleSubtype === '*' || ruleSubtype === subtype)
    ) {
      return rule
    }
  }
  return null
}
