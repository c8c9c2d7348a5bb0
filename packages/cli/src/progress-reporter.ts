import { clearLine, cursorTo } from 'node:readline'

/** Where `transcode` reports progress; `finish` leaves the line clean for what follows. */
export interface ProgressReporter {
  update(percent: number): void
  finish(): void
}

/**
 * A bar redrawn in place on a terminal; on a pipe or a file, plain lines, one per 10 % step,
 * which a log keeps readable. Hand-written: node:readline moves the cursor, and a bar library
 * would bring more than these few lines.
 */
export function progressReporter(stream: NodeJS.WriteStream, label: string): ProgressReporter {
  if (stream.isTTY) return new TerminalBar(stream, label)
  let lastStep = -1
  return {
    update(percent) {
      const step = Math.floor(clamp(percent) / 10)
      if (step === lastStep) return
      lastStep = step
      stream.write(`${label} ${step * 10}%\n`)
    },
    finish() {},
  }
}

class TerminalBar implements ProgressReporter {
  readonly #stream: NodeJS.WriteStream
  readonly #label: string
  #drawn = false

  constructor(stream: NodeJS.WriteStream, label: string) {
    this.#stream = stream
    this.#label = label
    this.update(0)
  }

  update(percent: number): void {
    const value = clamp(percent)
    const text = `${value.toFixed(0).padStart(3)}%`
    const room = (this.#stream.columns || 80) - this.#label.length - text.length - 4
    const width = Math.max(10, Math.min(40, room))
    const filled = Math.round((value / 100) * width)
    cursorTo(this.#stream, 0)
    this.#stream.write(
      `${this.#label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${text}`,
    )
    clearLine(this.#stream, 1)
    this.#drawn = true
  }

  finish(): void {
    if (this.#drawn) this.#stream.write('\n')
    this.#drawn = false
  }
}

function clamp(percent: number): number {
  return Number.isFinite(percent) ? Math.min(100, Math.max(0, percent)) : 0
}
