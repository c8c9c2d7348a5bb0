// Shared by the benchmarks: interleaved rounds (baseline, ours, ours, baseline, … so that the
// drift of a shared machine hits both alike) and min / median / max over the rounds.

/** How many rounds to run: `ROUNDS` from the environment, at least 5. */
export function roundsFromEnv(fallback = 5): number {
  const rounds = Number(process.env.ROUNDS ?? fallback)
  if (!Number.isInteger(rounds) || rounds < 5) {
    throw new Error(`ROUNDS must be an integer of at least 5 (got ${process.env.ROUNDS})`)
  }
  return rounds
}

/** One side of a comparison: `run` does the work once and returns what it measured. */
export interface Contender<T> {
  name: string
  run(round: number): Promise<T>
}

/**
 * Runs every contender once per round, the order reversed every other round, and returns
 * the samples of each contender in round order. `onSample` sees each one as it comes.
 */
export async function interleave<T>(
  rounds: number,
  contenders: readonly Contender<T>[],
  onSample?: (round: number, name: string, sample: T) => void,
): Promise<Map<string, T[]>> {
  const samples = new Map<string, T[]>(contenders.map((c) => [c.name, []]))
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 ? contenders : [...contenders].reverse()
    for (const contender of order) {
      const sample = await contender.run(round)
      samples.get(contender.name)!.push(sample)
      onSample?.(round, contender.name, sample)
    }
  }
  return samples
}

export interface Spread {
  min: number
  median: number
  max: number
}

export function spread(values: readonly number[]): Spread {
  if (values.length === 0) throw new Error('spread of no values')
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  const median = sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
  return { min: sorted[0]!, median, max: sorted.at(-1)! }
}

/** Per-round ratios `ours[i] / baseline[i]` (both measured in the same round). */
export function ratios(ours: readonly number[], baseline: readonly number[]): number[] {
  return ours.map((value, i) => value / baseline[i]!)
}

/** Prints `label  min … median … max [unit]`. */
export function printSpread(label: string, values: readonly number[], digits = 2, unit = ''): void {
  const { min, median, max } = spread(values)
  const f = (value: number) => value.toFixed(digits)
  console.log(
    `${label.padEnd(48)} min ${f(min)}  median ${f(median)}  max ${f(max)}${unit ? ` ${unit}` : ''}`,
  )
}
