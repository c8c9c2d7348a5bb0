import type { Logger } from '@transcodekit/core'

/** One dependency the server needs to serve requests. */
export interface ReadinessCheck {
  name: string
  /** Resolves when the dependency answers; should stop work when `signal` aborts. */
  run(signal: AbortSignal): Promise<void>
}

export interface ReadinessReport {
  ready: boolean
  /** Each check's result: no error text, which could tell a stranger about the servers. */
  checks: Record<string, 'ok' | 'failed' | 'timeout'>
}

export interface ReadinessOptions {
  /** Longest one check may take before it counts as failed. @default 2000 */
  timeoutMs?: number
  /** How long a report is reused, so that a flood of probes runs the checks at this pace. @default 1000 */
  reuseMs?: number
  /** Where failed checks are logged, with their error. */
  logger: Logger
}

/**
 * Runs the checks together, each bounded by `timeoutMs`; concurrent callers share one run, and
 * a report is reused for `reuseMs`, so that `/readyz` costs the same however often it is hit.
 */
export function readiness(
  checks: readonly ReadinessCheck[],
  options: ReadinessOptions,
): () => Promise<ReadinessReport> {
  const timeoutMs = options.timeoutMs ?? 2000
  const reuseMs = options.reuseMs ?? 1000
  /** The latest run; `at` is when it was answered, `null` while it runs. */
  let current: { report: Promise<ReadinessReport>; at: number | null } | null = null

  const runOne = async (check: ReadinessCheck): Promise<'ok' | 'failed' | 'timeout'> => {
    const signal = AbortSignal.timeout(timeoutMs)
    try {
      await Promise.race([
        check.run(signal),
        new Promise<never>((_, reject) => {
          signal.addEventListener('abort', () => reject(signal.reason), { once: true })
        }),
      ])
      return 'ok'
    } catch (error) {
      const timedOut = signal.aborted
      options.logger.warn(
        { check: check.name, error: error instanceof Error ? error.message : String(error) },
        timedOut ? 'readiness check timed out' : 'readiness check failed',
      )
      return timedOut ? 'timeout' : 'failed'
    }
  }

  const runAll = async (): Promise<ReadinessReport> => {
    const results = await Promise.all(
      checks.map(async (check) => [check.name, await runOne(check)]),
    )
    const report = Object.fromEntries(results) as ReadinessReport['checks']
    return { ready: Object.values(report).every((result) => result === 'ok'), checks: report }
  }

  return () => {
    if (current && (current.at === null || Date.now() - current.at < reuseMs)) {
      return current.report
    }
    const run: { report: Promise<ReadinessReport>; at: number | null } = {
      report: runAll(),
      at: null,
    }
    // runAll never rejects: each check's failure is its result.
    void run.report.then(() => {
      run.at = Date.now()
    })
    current = run
    return run.report
  }
}
