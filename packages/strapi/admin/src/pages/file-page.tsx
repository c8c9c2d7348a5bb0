import { Box, Flex, Grid, Main, Typography } from '@strapi/design-system'
import { Link as RouterLink, useParams } from 'react-router-dom'
import { isEnded, usePolling, useTranscodekitApi } from '../api.ts'
import { JobActions } from '../components/job-actions.tsx'
import { JobProgress } from '../components/job-progress.tsx'
import { OutputPlayer } from '../components/output-player.tsx'
import { PageHeader } from '../components/page-header.tsx'
import { StateBadge } from '../components/state-badge.tsx'

/**
 * One Media Library file and its transcoding: the job's state and progress, and each output
 * with a player and a download link. (Strapi 5's Media Library offers no extension point in
 * its asset dialog, so the outputs are shown here.)
 */
export function FilePage() {
  const { fileId = '' } = useParams()
  const api = useTranscodekitApi()
  const { value, error, reload } = usePolling(
    (signal) => api.getFile(fileId, signal),
    (file) => (file.job ? !isEnded(file.job.state) : file.record === null),
    [api, fileId],
  )
  const job = value?.job ?? null

  return (
    <Main>
      <PageHeader
        title={value ? value.file.name : `File #${fileId}`}
        subtitle={value ? `${value.file.mime} · Media Library file #${value.file.id}` : undefined}
      />
      <Box paddingLeft={10} paddingRight={10} paddingBottom={10}>
        <Box paddingBottom={4}>
          <RouterLink to="../..">← All jobs</RouterLink>
        </Box>
        {error && (
          <Typography textColor="danger600" role="alert">
            {error}
          </Typography>
        )}
        {value && !job && (
          <Typography data-no-job>
            {value.record?.error
              ? `Not transcoded: ${value.record.error.code}: ${value.record.error.message}`
              : 'No transcoding job for this file.'}
          </Typography>
        )}
        {job && (
          <Flex direction="column" alignItems="stretch" gap={4} data-job={job.id}>
            <Flex gap={4}>
              <StateBadge state={job.state} />
              <JobProgress job={job} />
              <JobActions job={job} onDone={reload} />
            </Flex>
            {job.error && (
              <Typography textColor="danger600">
                {job.error.code}: {job.error.message}
              </Typography>
            )}
            <Grid.Root gap={4}>
              {job.outputs.map((output) => (
                <Grid.Item
                  key={output.preset}
                  col={6}
                  s={12}
                  direction="column"
                  alignItems="stretch"
                >
                  <OutputPlayer output={output} />
                </Grid.Item>
              ))}
            </Grid.Root>
          </Flex>
        )}
      </Box>
    </Main>
  )
}
