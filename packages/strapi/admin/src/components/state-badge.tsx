import { Badge } from '@strapi/design-system'
import type { JobState } from '../api.ts'

const VARIANT = {
  submitted: 'secondary',
  progressing: 'primary',
  complete: 'success',
  error: 'danger',
  canceled: 'neutral',
} as const

/** A job's or an output's state, coloured by outcome. */
export function StateBadge({ state }: { state: JobState }) {
  return (
    <Badge variant={VARIANT[state]} data-state={state}>
      {state}
    </Badge>
  )
}
