import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { LookupFunction } from 'node:net'
import { Webhook } from 'standardwebhooks'
import { errorText } from '../logging/error-text.ts'
import { type AddressResolver, resolveWebhookTarget } from './address-guard.ts'

export interface WebhookRequest {
  url: URL
  secret: string
  /** The `webhook-id`: the same for every attempt of one delivery. */
  id: string
  payload: string
  at: Date
}

export interface SendLimits {
  allowPrivateAddresses: boolean
  /** Longest wait for the TCP (and TLS) connection. */
  connectTimeoutMs: number
  /** Longest wait for the whole attempt, from DNS to the response's status. */
  timeoutMs: number
  /** Most response body bytes read (and thrown away) before the connection is closed. */
  maxResponseBytes: number
  resolve?: AddressResolver
}

/** What one attempt came to: a status, or why none came back. */
export type SendOutcome = { status: number; error: null } | { status: null; error: string }

/**
 * Makes one signed Standard Webhooks POST. The host is resolved once, every answer checked,
 * and the connection pinned to the checked address (a second DNS answer cannot redirect it);
 * redirects are not followed (a 3xx is a failed attempt); the response body is read up to a
 * bound and discarded. Never throws: a failure is an outcome.
 */
export async function sendWebhook(
  request: WebhookRequest,
  limits: SendLimits,
  signal?: AbortSignal,
): Promise<SendOutcome> {
  const timeout = AbortSignal.timeout(limits.timeoutMs)
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout
  try {
    // dns.lookup takes no signal: the attempt's deadline races it.
    const target = await abortable(resolveWebhookTarget(request.url, limits), combined)
    const signature = new Webhook(request.secret).sign(request.id, request.at, request.payload)
    const status = await post(request, signature, target, limits, combined)
    return { status, error: null }
  } catch (error) {
    if (timeout.aborted) return { status: null, error: `timed out after ${limits.timeoutMs} ms` }
    return { status: null, error: describe(error) }
  }
}

function post(
  request: WebhookRequest,
  signature: string,
  target: { address: string; family: number },
  limits: SendLimits,
  signal: AbortSignal,
): Promise<number> {
  const pinned: LookupFunction = (_hostname, options, callback) => {
    if (options.all) callback(null, [target])
    else callback(null, target.address, target.family)
  }
  const body = Buffer.from(request.payload)
  const send = request.url.protocol === 'https:' ? httpsRequest : httpRequest
  return new Promise<number>((resolve, reject) => {
    const req = send(request.url, {
      method: 'POST',
      // A fresh connection each time: a pooled socket would skip the check of this attempt.
      agent: false,
      lookup: pinned,
      signal,
      headers: {
        'content-type': 'application/json',
        'content-length': body.length,
        'user-agent': 'transcodekit-webhooks',
        'webhook-id': request.id,
        'webhook-timestamp': String(Math.floor(request.at.getTime() / 1000)),
        'webhook-signature': signature,
      },
    })
    const connectTimer = setTimeout(() => {
      req.destroy(new Error(`could not connect within ${limits.connectTimeoutMs} ms`))
    }, limits.connectTimeoutMs)
    req.once('socket', (socket) => {
      const connected = request.url.protocol === 'https:' ? 'secureConnect' : 'connect'
      socket.once(connected, () => clearTimeout(connectTimer))
    })
    req.on('error', (error) => {
      clearTimeout(connectTimer)
      reject(error)
    })
    req.once('response', (response: IncomingMessage) => {
      clearTimeout(connectTimer)
      drain(response, limits.maxResponseBytes).then(
        () => resolve(response.statusCode ?? 0),
        () => resolve(response.statusCode ?? 0),
      )
    })
    req.end(body)
  })
}

/** Reads the body up to `max` bytes, then closes the connection: the receiver's answer is not used. */
function drain(response: IncomingMessage, max: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let read = 0
    response.on('data', (chunk: Buffer) => {
      read += chunk.length
      if (read > max) {
        response.destroy()
        resolve()
      }
    })
    response.once('end', resolve)
    response.once('close', resolve)
    response.on('error', reject)
  })
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

function describe(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  const message = errorText(error)
  return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message
}
