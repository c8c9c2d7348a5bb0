import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { envList } from './env-list.ts'

/** A key: 16 to 256 printable ASCII characters, no space or comma (a colon is fine: the owner follows the last). */
const KEY = /^[\x21-\x2b\x2d-\x7e]{16,256}$/
const OWNER = /^[A-Za-z0-9._@-]{1,64}$/

/**
 * Reads `API_KEYS`: comma-separated `key:owner` pairs (the owner after the last colon). An
 * owner may have several keys (to rotate them); a key names one owner. Problems are named by
 * the pair's position, never by the key, so that no secret reaches a log.
 */
export function parseApiKeys(raw: string, problems: string[]): Map<string, string> {
  const keys = new Map<string, string>()
  const pairs = envList(raw)
  for (const [index, pair] of pairs.entries()) {
    const at = `API_KEYS: pair ${index + 1}`
    const colon = pair.lastIndexOf(':')
    if (colon <= 0) {
      problems.push(`${at} must be key:owner`)
      continue
    }
    const key = pair.slice(0, colon)
    const owner = pair.slice(colon + 1)
    if (!KEY.test(key)) {
      problems.push(
        `${at}: a key has 16 to 256 printable characters, without spaces or commas (make one with: openssl rand -hex 24)`,
      )
      continue
    }
    if (!OWNER.test(owner)) {
      problems.push(`${at}: the owner has 1 to 64 letters, digits, or . _ @ -`)
      continue
    }
    if (keys.has(key)) {
      problems.push(`${at}: this key is already given to an owner`)
      continue
    }
    keys.set(key, owner)
  }
  if (pairs.length === 0) problems.push('API_KEYS is set but holds no key:owner pair')
  return keys
}

/**
 * The owner of a request from its `Authorization: Bearer <key>`, or `null`. Keys are compared
 * as SHA-256 digests in constant time, every key each time, so that neither the length of a
 * key nor which one matched shows in how long the answer takes.
 */
export function apiKeyOwner(
  keys: ReadonlyMap<string, string>,
): (request: FastifyRequest) => string | null {
  const digests = [...keys].map(([key, owner]) => [sha256(key), owner] as const)
  return (request) => {
    const match = /^Bearer +([^\s]{1,1024}) *$/i.exec(request.headers.authorization ?? '')
    if (!match) return null
    const given = sha256(match[1]!)
    let owner: string | null = null
    for (const [digest, name] of digests) {
      if (timingSafeEqual(digest, given)) owner = name
    }
    return owner
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest()
}
