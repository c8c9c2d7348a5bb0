import { describe, expect, it } from 'vitest'
import { ConfigurationError } from '../src/errors.ts'
import { checkCountOrUnlimited } from '../src/option-checks.ts'

describe('checkCountOrUnlimited', () => {
  it('answers a positive integer or Infinity as it is', () => {
    for (const value of [1, 32, Number.MAX_SAFE_INTEGER, Number.POSITIVE_INFINITY]) {
      expect(checkCountOrUnlimited(value, 'pkg: option "cap"')).toBe(value)
    }
  })

  it('refuses anything else, naming the package and option it was given', () => {
    for (const value of [0, -1, 1.5, Number.NaN, Number.NEGATIVE_INFINITY, 2 ** 53, '3']) {
      const check = () => checkCountOrUnlimited(value as number, 'pkg: option "cap"')
      expect(check).toThrow(ConfigurationError)
      expect(check).toThrow('pkg: option "cap" must be a positive integer or Infinity')
    }
  })
})
