import { createHash, timingSafeEqual } from 'node:crypto'
import { Hash } from '@smithy/hash-node'
import { SignatureV4 } from '@smithy/signature-v4'
import type { Owner } from '@transcodekit/core'
import { ElasticTranscoderError } from './et-errors.ts'

/** An access key the API accepts: its id, its secret, and whose resources it acts on. */
export interface EtAccessKey {
  accessKeyId: string
  secretAccessKey: string
  /** @default the access key id */
  owner?: Owner
}

/** What the verifier needs of a request, as it arrived. */
export interface SignedRequest {
  method: string
  /** The path and query as they arrived (still percent-encoded). */
  url: string
  headers: Record<string, string | string[] | undefined>
  /** The raw body; empty for none. */
  body: Uint8Array
}

const SERVICE = 'elastictranscoder'
const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/\s,]+)\/(\d{8})\/([a-z0-9-]{1,32})\/([a-z0-9-]{1,64})\/aws4_request,\s*SignedHeaders=([a-z0-9;_.-]+),\s*Signature=([0-9a-f]{64})$/
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/

const invalid = (message: string) =>
  new ElasticTranscoderError('InvalidSignatureException', message)

function header(headers: SignedRequest['headers'], name: string): string | undefined {
  const value = headers[name]
  return Array.isArray(value) ? value.join(',') : value
}

function parseAmzDate(value: string | undefined): Date {
  const match = value ? AMZ_DATE.exec(value) : null
  if (!match) {
    throw new ElasticTranscoderError(
      'IncompleteSignatureException',
      "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    )
  }
  const [, y, mo, d, h, mi, s] = match.map(Number) as number[]
  return new Date(Date.UTC(y as number, (mo as number) - 1, d, h, mi, s))
}

/**
 * Verifies AWS Signature Version 4 of requests to the Elastic Transcoder API: the key must be
 * one of the configured keys, the signature is recomputed from the canonical request with
 * `@smithy/signature-v4` (what the AWS SDKs sign with) and compared in constant time, the
 * body must match its hash, and the time must be within `maxSkewMs` of now. Refusals are the
 * errors AWS answers, so SDKs report them as they did.
 */
export class SigV4Verifier {
  readonly #keys: Map<string, Required<EtAccessKey>>
  readonly #maxSkewMs: number

  constructor(keys: readonly EtAccessKey[], options: { maxSkewMs: number }) {
    this.#keys = new Map(
      keys.map((key) => [key.accessKeyId, { ...key, owner: key.owner ?? key.accessKeyId }]),
    )
    this.#maxSkewMs = options.maxSkewMs
  }

  /**
   * The checks that need no body (a known key, a well-formed header, the time): run before
   * the body is read, so that an anonymous client cannot make the server read one.
   */
  precheck(request: Omit<SignedRequest, 'body'>): void {
    this.#parse(request)
  }

  /** The owner the request acts for; throws an `ElasticTranscoderError` when it is refused. */
  async verify(request: SignedRequest): Promise<Owner> {
    const { key, region, service, signedHeaders, signature, date } = this.#parse(request)
    const payloadHash = createHash('sha256').update(request.body).digest('hex')
    const claimedHash = header(request.headers, 'x-amz-content-sha256')
    if (claimedHash !== undefined && claimedHash !== payloadHash) {
      throw invalid("The provided 'x-amz-content-sha256' header does not match what was computed.")
    }
    const url = new URL(request.url, 'http://localhost')
    const query: Record<string, string | string[]> = {}
    for (const [name, value] of url.searchParams) {
      const existing = query[name]
      query[name] =
        existing === undefined
          ? value
          : [...(Array.isArray(existing) ? existing : [existing]), value]
    }
    const headers: Record<string, string> = {}
    for (const name of signedHeaders) {
      const value = header(request.headers, name)
      if (value === undefined) throw invalid(`The signed header ${name} is missing.`)
      headers[name] = value
    }
    const signer = new SignatureV4({
      service,
      region,
      credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey },
      sha256: Hash.bind(null, 'sha256'),
      uriEscapePath: true,
      applyChecksum: false,
    })
    const signed = await signer.sign(
      {
        method: request.method,
        protocol: 'http:',
        hostname: headers.host ?? '',
        path: url.pathname,
        query,
        headers,
        body: request.body.length === 0 ? undefined : request.body,
      },
      { signingDate: date, signableHeaders: new Set(signedHeaders) },
    )
    const expected = /Signature=([0-9a-f]{64})$/.exec(String(signed.headers.authorization))?.[1]
    if (
      !expected ||
      !timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(signature, 'hex'))
    ) {
      throw invalid(
        'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
      )
    }
    return key.owner
  }

  #parse(request: Omit<SignedRequest, 'body'>) {
    const authorization = header(request.headers, 'authorization')
    if (!authorization) {
      throw new ElasticTranscoderError(
        'MissingAuthenticationTokenException',
        'Missing Authentication Token',
      )
    }
    const match = AUTHORIZATION.exec(authorization)
    if (!match) {
      throw new ElasticTranscoderError(
        'IncompleteSignatureException',
        "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters, signed with AWS4-HMAC-SHA256.",
      )
    }
    const [, keyId, day, region, service, signedList, signature] = match as unknown as string[]
    const key = this.#keys.get(keyId as string)
    if (!key) {
      throw new ElasticTranscoderError(
        'UnrecognizedClientException',
        'The security token included in the request is invalid.',
      )
    }
    if (service !== SERVICE) {
      throw invalid(`Credential should be scoped to correct service: '${SERVICE}'.`)
    }
    const amzDate = header(request.headers, 'x-amz-date')
    const date = parseAmzDate(amzDate)
    if (amzDate?.slice(0, 8) !== day) {
      throw invalid(
        `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${day}' != '${amzDate?.slice(0, 8)}'`,
      )
    }
    if (Math.abs(Date.now() - date.getTime()) > this.#maxSkewMs) {
      throw invalid(
        `Signature expired: ${amzDate} is now earlier or later than the allowed ${Math.round(this.#maxSkewMs / 60_000)} minutes from the server time.`,
      )
    }
    const signedHeaders = (signedList as string).split(';')
    if (!signedHeaders.includes('host') || !signedHeaders.includes('x-amz-date')) {
      throw invalid('The signed headers must include host and x-amz-date.')
    }
    return {
      key,
      region: region as string,
      service,
      signedHeaders,
      signature: signature as string,
      date,
    }
  }
}
