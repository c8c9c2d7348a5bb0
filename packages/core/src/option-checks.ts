import { ConfigurationError } from './errors.ts'

/**
 * Checks a cap that can be lifted: a positive safe integer, or `Infinity` for no cap. Answers
 * the value; throws a ConfigurationError that begins with `option` (say
 * `my-package: option "maxThings"`), so the message names the package and the option.
 */
export function checkCountOrUnlimited(value: number, option: string): number {
  if (value === Number.POSITIVE_INFINITY || (Number.isSafeInteger(value) && value > 0)) {
    return value
  }
  throw new ConfigurationError(`${option} must be a positive integer or Infinity`)
}
