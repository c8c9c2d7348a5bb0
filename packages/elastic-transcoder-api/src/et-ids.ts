import { randomInt } from 'node:crypto'

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789'

/**
 * A new id shaped like Elastic Transcoder's (`1700000000000-a1b2c3`): the time in milliseconds
 * then 6 random characters, so ids sort by creation time as ET's listings do.
 */
export function newEtId(now = Date.now()): string {
  let suffix = ''
  for (let i = 0; i < 6; i++) suffix += ALPHABET[randomInt(ALPHABET.length)]
  return `${String(now).padStart(13, '0').slice(-13)}-${suffix}`
}

export const ET_ID = /^\d{13}-[a-z0-9]{6}$/
