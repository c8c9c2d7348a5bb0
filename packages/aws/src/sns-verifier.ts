import assert from 'node:assert'
import { createVerify, X509Certificate } from 'node:crypto'
import {
  NotificationRejectedError,
  type NotificationVerifier,
  type VerifiedSnsMessage,
} from '@transcodekit/core'

/** Remembers which `MessageId`s were already accepted (SNS repeats a message on retries). */
export interface MessageDedup {
  /** Records `messageId`; resolves `true` the first time, `false` for a repeat. */
  claim(messageId: string): boolean | Promise<boolean>
}

/** The subset of `fetch` the verifier uses. */
export type FetchLike = (
  url: string,
  init: { signal?: AbortSignal; redirect?: 'error' },
) => Promise<{ ok: boolean; status: number; text(): Promise<string> }>

export interface SnsVerifierOptions {
  /** The topics whose messages are accepted; anything else is `UNKNOWN_TOPIC`. */
  topicArns: readonly string[]
  /** Older messages are `TOO_OLD`. @default 3_600_000 (one hour) */
  maxAgeMs?: number
  /**
   * Hosts that may serve signing certificates and subscription URLs, matched against the
   * parsed hostname (never the raw string).
   * @default /^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$/
   */
  trustedCertHost?: RegExp
  /** How certificates are fetched and subscriptions confirmed. @default globalThis.fetch */
  fetch?: FetchLike
  /** Replay protection. @default an in-memory LRU of `dedupSize` ids */
  dedup?: MessageDedup
  /** Capacity of the default in-memory dedup. @default 10_000 */
  dedupSize?: number
  /** Certificates kept in memory, by URL. @default 32 */
  certificateCacheSize?: number
  /** Longest wait for the certificate or the subscription URL. @default 10_000 */
  fetchTimeoutMs?: number
}

const DEFAULT_HOST = /^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$/
const CLOCK_SKEW_MS = 5 * 60_000

const NOTIFICATION_FIELDS = ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type']
const SUBSCRIPTION_FIELDS = [
  'Message',
  'MessageId',
  'SubscribeURL',
  'Timestamp',
  'Token',
  'TopicArn',
  'Type',
]
const TYPES = ['Notification', 'SubscriptionConfirmation', 'UnsubscribeConfirmation'] as const

/** A small LRU set: a `Map` keeps insertion order, the oldest entry goes first. */
export function memoryDedup(capacity = 10_000): MessageDedup {
  const seen = new Map<string, true>()
  return {
    claim(messageId) {
      if (seen.has(messageId)) return false
      seen.set(messageId, true)
      if (seen.size > capacity) seen.delete(seen.keys().next().value as string)
      return true
    },
  }
}

interface ResolvedOptions {
  topicArns: Set<string>
  maxAgeMs: number
  trustedCertHost: RegExp
  fetch: FetchLike
  dedup: MessageDedup
  certificateCacheSize: number
  fetchTimeoutMs: number
}

function resolveOptions(options: SnsVerifierOptions): ResolvedOptions {
  assert(
    Array.isArray(options.topicArns) && options.topicArns.length > 0,
    'snsVerifier: `topicArns` must list at least one topic ARN',
  )
  const resolved: ResolvedOptions = {
    topicArns: new Set(options.topicArns),
    maxAgeMs: options.maxAgeMs ?? 3_600_000,
    trustedCertHost: options.trustedCertHost ?? DEFAULT_HOST,
    fetch: options.fetch ?? (globalThis.fetch as FetchLike),
    dedup: options.dedup ?? memoryDedup(options.dedupSize ?? 10_000),
    certificateCacheSize: options.certificateCacheSize ?? 32,
    fetchTimeoutMs: options.fetchTimeoutMs ?? 10_000,
  }
  assert(resolved.maxAgeMs > 0, 'snsVerifier: `maxAgeMs` must be positive')
  assert(typeof resolved.fetch === 'function', 'snsVerifier: no `fetch` available')
  return resolved
}

function reject(reason: string, message: string, cause?: unknown): never {
  throw new NotificationRejectedError(reason, message, cause === undefined ? undefined : { cause })
}

/** The string SNS signs: `Name\nvalue\n` for each signed field present, in SNS's order. */
export function snsStringToSign(message: Record<string, unknown>): string {
  const fields = message.Type === 'Notification' ? NOTIFICATION_FIELDS : SUBSCRIPTION_FIELDS
  let result = ''
  for (const field of fields) {
    const value = message[field]
    if (value === undefined || value === null) continue
    result += `${field}\n${String(value)}\n`
  }
  return result
}

/**
 * Verifies SNS HTTP(S) deliveries: signature (versions 1 and 2) over SNS's canonical string
 * with the certificate from a trusted SNS host, topic allow-list, age, replay.
 */
export class SnsVerifier implements NotificationVerifier {
  readonly #options: ResolvedOptions
  readonly #certificates = new Map<string, Promise<X509Certificate>>()
  readonly #verified = new WeakSet<object>()

  constructor(options: SnsVerifierOptions) {
    this.#options = resolveOptions(options)
  }

  async verify(body: unknown, options: { signal?: AbortSignal } = {}): Promise<VerifiedSnsMessage> {
    const message = parseBody(body)
    const type = message.Type
    if (typeof type !== 'string' || !(TYPES as readonly string[]).includes(type)) {
      reject('MALFORMED', `unknown SNS message Type ${JSON.stringify(type)}`)
    }
    const required =
      type === 'Notification'
        ? ['Message', 'MessageId', 'Timestamp', 'TopicArn']
        : ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn']
    for (const field of required) {
      if (typeof message[field] !== 'string' || message[field] === '') {
        reject('MALFORMED', `SNS ${type} lacks ${field}`)
      }
    }
    if (message.Subject !== undefined && typeof message.Subject !== 'string') {
      reject('MALFORMED', 'SNS Subject must be a string')
    }
    const { Signature, SignatureVersion, SigningCertURL } = message
    if (
      typeof Signature !== 'string' ||
      Signature === '' ||
      typeof SignatureVersion !== 'string' ||
      typeof SigningCertURL !== 'string'
    ) {
      reject('UNSIGNED', 'the SNS message carries no signature')
    }
    const algorithm =
      SignatureVersion === '1' ? 'RSA-SHA1' : SignatureVersion === '2' ? 'RSA-SHA256' : null
    if (!algorithm)
      reject('BAD_SIGNATURE', `unsupported SignatureVersion ${JSON.stringify(SignatureVersion)}`)

    const topicArn = message.TopicArn as string
    if (!this.#options.topicArns.has(topicArn)) {
      reject('UNKNOWN_TOPIC', `topic ${JSON.stringify(topicArn)} is not accepted here`)
    }
    const timestamp = Date.parse(message.Timestamp as string)
    if (Number.isNaN(timestamp)) reject('MALFORMED', 'the SNS Timestamp is not a date')
    const age = Date.now() - timestamp
    if (age > this.#options.maxAgeMs) {
      reject(
        'TOO_OLD',
        `the message is ${Math.round(age / 1000)} s old (limit ${this.#options.maxAgeMs / 1000} s)`,
      )
    }
    if (age < -CLOCK_SKEW_MS) reject('TOO_OLD', 'the message Timestamp is in the future')

    const certUrl = this.#trustedUrl(SigningCertURL, 'UNTRUSTED_CERT_URL', 'SigningCertURL')
    const certificate = await this.#certificate(certUrl, options.signal)
    let valid = false
    try {
      valid = createVerify(algorithm)
        .update(snsStringToSign(message), 'utf8')
        .verify(certificate.publicKey, Signature, 'base64')
    } catch (error) {
      reject('BAD_SIGNATURE', 'the SNS signature could not be checked', error)
    }
    if (!valid) reject('BAD_SIGNATURE', 'the SNS signature does not match the message')

    // Claimed last: only a message that verified may take a MessageId.
    if (!(await this.#options.dedup.claim(message.MessageId as string))) {
      reject('REPLAYED', `message ${JSON.stringify(message.MessageId)} was already received`)
    }
    const verified: VerifiedSnsMessage = {
      Type: type as VerifiedSnsMessage['Type'],
      MessageId: message.MessageId as string,
      TopicArn: topicArn,
      Message: message.Message as string,
      Timestamp: message.Timestamp as string,
    }
    if (typeof message.Subject === 'string') verified.Subject = message.Subject
    if (typeof message.SubscribeURL === 'string') verified.SubscribeURL = message.SubscribeURL
    if (typeof message.Token === 'string') verified.Token = message.Token
    this.#verified.add(verified)
    return verified
  }

  async confirmSubscription(
    message: VerifiedSnsMessage,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    if (!this.#verified.has(message)) {
      reject('UNSIGNED', 'only a message returned by verify() can be confirmed')
    }
    if (message.Type !== 'SubscriptionConfirmation' || !message.SubscribeURL) {
      reject('MALFORMED', 'only a SubscriptionConfirmation can be confirmed')
    }
    const url = this.#trustedUrl(message.SubscribeURL, 'UNTRUSTED_CERT_URL', 'SubscribeURL')
    const response = await this.#options.fetch(url.href, {
      signal: this.#signal(options.signal),
      redirect: 'error',
    })
    if (!response.ok) {
      throw new Error(`confirming the SNS subscription failed with HTTP ${response.status}`)
    }
  }

  #signal(signal?: AbortSignal): AbortSignal {
    const timeout = AbortSignal.timeout(this.#options.fetchTimeoutMs)
    return signal ? AbortSignal.any([signal, timeout]) : timeout
  }

  #trustedUrl(value: string, reason: string, field: string): URL {
    let url: URL
    try {
      url = new URL(value)
    } catch (error) {
      reject(reason, `${field} is not a URL`, error)
    }
    if (url.protocol !== 'https:') reject(reason, `${field} must use https`)
    if (url.username || url.password) reject(reason, `${field} must not carry credentials`)
    if (!this.#options.trustedCertHost.test(url.hostname)) {
      reject(reason, `${field} host ${JSON.stringify(url.hostname)} is not a trusted SNS host`)
    }
    return url
  }

  #certificate(url: URL, signal?: AbortSignal): Promise<X509Certificate> {
    const cached = this.#certificates.get(url.href)
    if (cached) return cached
    const loading = this.#loadCertificate(url, signal)
    this.#certificates.set(url.href, loading)
    if (this.#certificates.size > this.#options.certificateCacheSize) {
      this.#certificates.delete(this.#certificates.keys().next().value as string)
    }
    // A failed fetch must not stay cached: the next delivery tries again.
    loading.catch(() => this.#certificates.delete(url.href))
    return loading
  }

  async #loadCertificate(url: URL, signal?: AbortSignal): Promise<X509Certificate> {
    let pem: string
    try {
      const response = await this.#options.fetch(url.href, {
        signal: this.#signal(signal),
        redirect: 'error',
      })
      if (!response.ok) throw new Error(`HTTP ${response.status}`)
      pem = await response.text()
    } catch (error) {
      reject(
        'CERT_UNAVAILABLE',
        `the signing certificate could not be fetched from ${url.href}`,
        error,
      )
    }
    let certificate: X509Certificate
    try {
      certificate = new X509Certificate(pem)
    } catch (error) {
      reject('BAD_SIGNATURE', 'the signing certificate is not a valid X.509 certificate', error)
    }
    const now = Date.now()
    if (Date.parse(certificate.validFrom) > now || Date.parse(certificate.validTo) < now) {
      reject('BAD_SIGNATURE', 'the signing certificate is not valid now')
    }
    return certificate
  }
}

function parseBody(body: unknown): Record<string, unknown> {
  let value = body
  if (typeof value === 'string' || Buffer.isBuffer(value)) {
    try {
      value = JSON.parse(value.toString())
    } catch (error) {
      reject('MALFORMED', 'the SNS body is not JSON', error)
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    reject('MALFORMED', 'the SNS body is not a JSON object')
  }
  return value as Record<string, unknown>
}

/**
 * Verifies SNS messages before anything acts on them.
 *
 * @example
 * const verifier = snsVerifier({ topicArns: ['arn:aws:sns:eu-west-1:123456789012:transcodes'] })
 * const message = await verifier.verify(request.body)
 */
export function snsVerifier(options: SnsVerifierOptions): SnsVerifier {
  return new SnsVerifier(options)
}
