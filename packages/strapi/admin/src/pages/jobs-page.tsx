import {
  Box,
  Button,
  Flex,
  Main,
  Table,
  Tbody,
  Td,
  Th,
  Thead,
  Tr,
  Typography,
} from '@strapi/design-system'
import { useState } from 'react'
import { Link as RouterLink } from 'react-router-dom'
import { type AdminJob, isEnded, usePolling, useTranscodekitApi } from '../api.ts'
import { JobActions } from '../components/job-actions.tsx'
import { JobProgress } from '../components/job-progress.tsx'
import { PageHeader } from '../components/page-header.tsx'
import { StateBadge } from '../components/state-badge.tsx'

/** Every transcoding job of the Media Library, newest first, refreshed while any is running. */
export function JobsPage() {
  const api = useTranscodekitApi()
  const [cursors, setCursors] = useState<Array<string | null>>([null])
  const cursor = cursors[cursors.length - 1] ?? null
  const { value, error, reload } = usePolling(
    (signal) => api.listJobs(cursor, signal),
    (page) => page.items.some((job) => !isEnded(job.state)),
    [api, cursor],
  )

  return (
    <Main>
      <PageHeader
        title="Transcoding"
        subtitle="Jobs of Media Library uploads: state, progress, outputs and errors."
      />
      <Box paddingLeft={10} paddingRight={10} paddingBottom={10}>
        {error && (
          <Typography textColor="danger600" role="alert">
            {error}
          </Typography>
        )}
        {value && value.items.length === 0 && <Typography>No transcoding job yet.</Typography>}
        {value && value.items.length > 0 && (
          <Table colCount={6} rowCount={value.items.length + 1}>
            <Thead>
              <Tr>
                <Th>
                  <Typography variant="sigma">File</Typography>
                </Th>
                <Th>
                  <Typography variant="sigma">State</Typography>
                </Th>
                <Th>
                  <Typography variant="sigma">Progress</Typography>
                </Th>
                <Th>
                  <Typography variant="sigma">Outputs</Typography>
                </Th>
                <Th>
                  <Typography variant="sigma">Error</Typography>
                </Th>
                <Th>
                  <Typography variant="sigma">Actions</Typography>
                </Th>
              </Tr>
            </Thead>
            <Tbody>
              {value.items.map((job) => (
                <JobRow key={job.id} job={job} onChanged={reload} />
              ))}
            </Tbody>
          </Table>
        )}
        <Flex gap={2} paddingTop={4}>
          {cursors.length > 1 && (
            <Button variant="tertiary" onClick={() => setCursors(cursors.slice(0, -1))}>
              Newer
            </Button>
          )}
          {value?.nextCursor && (
            <Button variant="tertiary" onClick={() => setCursors([...cursors, value.nextCursor])}>
              Older
            </Button>
          )}
        </Flex>
      </Box>
    </Main>
  )
}

function JobRow({ job, onChanged }: { job: AdminJob; onChanged: () => void }) {
  return (
    <Tr data-job={job.id} data-file={job.fileId ?? ''}>
      <Td>
        {job.fileId ? (
          <RouterLink to={`files/${job.fileId}`}>File #{job.fileId}</RouterLink>
        ) : (
          <Typography textColor="neutral600">—</Typography>
        )}
      </Td>
      <Td>
        <StateBadge state={job.state} />
      </Td>
      <Td>
        <JobProgress job={job} />
      </Td>
      <Td>
        <Typography variant="pi">
          {job.outputs.map((output) => `${output.preset} (${output.state})`).join(', ')}
        </Typography>
      </Td>
      <Td>
        {job.error && (
          <Typography variant="pi" textColor="danger600" title={job.error.message}>
            {job.error.code}: {job.error.message}
          </Typography>
        )}
      </Td>
      <Td>
        <JobActions job={job} onDone={onChanged} />
      </Td>
    </Tr>
  )
}
