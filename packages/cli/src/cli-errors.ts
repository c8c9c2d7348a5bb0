import { TranscodeKitError } from '@transcodekit/core'

/** A command line that does not parse: an unknown option, a missing argument. Exit code 2. */
export class UsageError extends TranscodeKitError {
  constructor(message: string) {
    super('USAGE', message)
  }
}

/** An output file that exists already, when `--force` is not given. */
export class OutputExistsError extends TranscodeKitError {
  readonly path: string

  constructor(path: string) {
    super('OUTPUT_EXISTS', `${path} exists already (--force overwrites it)`)
    this.path = path
  }
}
