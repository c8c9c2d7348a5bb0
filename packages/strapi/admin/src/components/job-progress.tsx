import { Flex, ProgressBar, Typography } from '@strapi/design-system'
import type { AdminJob } from '../api.ts'

/** The job's progress, 0–100, as a bar and a figure. */
export function JobProgress({ job }: { job: AdminJob }) {
  return (
    <Flex gap={2}>
      <ProgressBar value={job.progress} size="S" />
      <Typography variant="pi" data-progress={job.progress}>
        {job.progress}%
      </Typography>
    </Flex>
  )
}
