import { lookup as dnsLookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import ipaddr from 'ipaddr.js'
import { WebhookUrlError } from '../errors.ts'

/** One DNS answer. */
export interface ResolvedAddress {
  address: string
  /** 4 or 6. */
  family: number
}

/** Resolves a host name to every address it has (as `dns.promises.lookup(name, { all: true })`). */
export type AddressResolver = (hostname: string) => Promise<ResolvedAddress[]>

export const systemResolver: AddressResolver = (hostname) =>
  dnsLookup(hostname, { all: true, verbatim: true })

/** Longest webhook URL accepted. */
const MAX_URL_LENGTH = 2048

/**
 * Why `address` is not a public unicast address (`loopback`, `private`, `linkLocal`, …), or
 * `null` when it is. An IPv4-mapped IPv6 address is judged as the IPv4 address it carries;
 * every special range ipaddr.js knows (CGNAT, multicast, unique-local, NAT64, 6to4, Teredo,
 * documentation, reserved) is refused, not only the private ones.
 */
export function addressRefusal(address: string): string | null {
  if (!ipaddr.isValid(address)) return 'not an IP address'
  const range = ipaddr.process(address).range()
  return range === 'unicast' ? null : range
}

/**
 * Checks what can be checked without DNS, at configuration time: an absolute http(s) URL with
 * no credentials, and, when its host is an IP address or `localhost`, a public one (unless
 * `allowPrivateAddresses`). Returns the parsed URL.
 */
export function checkWebhookUrl(
  url: string,
  options: { allowPrivateAddresses?: boolean } = {},
): URL {
  if (typeof url !== 'string' || url.length === 0 || url.length > MAX_URL_LENGTH) {
    throw new WebhookUrlError(`a webhook URL has 1 to ${MAX_URL_LENGTH} characters`)
  }
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch (error) {
    throw new WebhookUrlError(`the webhook URL ${JSON.stringify(url)} is not a URL`, {
      cause: error,
    })
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new WebhookUrlError(`a webhook URL is http or https, not ${parsed.protocol}`)
  }
  if (parsed.username || parsed.password) {
    throw new WebhookUrlError('a webhook URL may not carry a user name or password')
  }
  if (options.allowPrivateAddresses) return parsed
  const host = hostOf(parsed)
  if (isIP(host)) {
    refuseUnlessPublic(host, host)
  } else if (host === 'localhost' || host.endsWith('.localhost')) {
    throw new WebhookUrlError(`the webhook host ${host} is this machine (loopback)`)
  }
  return parsed
}

/**
 * Resolves the URL's host once and checks every address it resolves to (a name with one
 * private answer among public ones is refused: a client may connect to any of them). Returns
 * the address to connect to, so that the connection goes where the check looked.
 */
export async function resolveWebhookTarget(
  url: URL,
  options: { allowPrivateAddresses?: boolean; resolve?: AddressResolver } = {},
): Promise<ResolvedAddress> {
  const host = hostOf(url)
  const family = isIP(host)
  const answers = family
    ? [{ address: host, family }]
    : await (options.resolve ?? systemResolver)(host).catch((error: unknown) => {
        throw new WebhookUrlError(`the webhook host ${host} does not resolve`, { cause: error })
      })
  if (answers.length === 0) throw new WebhookUrlError(`the webhook host ${host} does not resolve`)
  if (!options.allowPrivateAddresses) {
    for (const answer of answers) refuseUnlessPublic(answer.address, host)
  }
  return answers[0]!
}

function refuseUnlessPublic(address: string, host: string): void {
  const reason = addressRefusal(address)
  if (reason === null) return
  const resolved = address === host ? '' : ` (resolves to ${address})`
  throw new WebhookUrlError(
    `the webhook host ${host}${resolved} is not a public address (${reason}); allowPrivateAddresses permits it`,
  )
}

/** The URL's host name, without the brackets of an IPv6 literal. */
function hostOf(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase()
}
