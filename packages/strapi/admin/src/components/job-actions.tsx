import { Button, Flex, Typography } from '@strapi/design-system'
import { ArrowClockwise, Cross } from '@strapi/icons'
import { useState } from 'react'
import { type AdminJob, describeFailure, isEnded, useTranscodekitApi } from '../api.ts'

/**
 * Retry (a failed or canceled job) and cancel (a job that has not ended). The server checks
 * the admin's retry and cancel permissions; a refusal is shown next to the buttons.
 */
export function JobActions({ job, onDone }: { job: AdminJob; onDone: () => void }) {
  const api = useTranscodekitApi()
  const [busy, setBusy] = useState(false)
  const [failure, setFailure] = useState<string | null>(null)

  const act = (action: (id: string) => Promise<unknown>) => async () => {
    setBusy(true)
    setFailure(null)
    try {
      await action(job.id)
      onDone()
    } catch (error) {
      setFailure(describeFailure(error))
    } finally {
      setBusy(false)
    }
  }

  const retryable = job.state === 'error' || job.state === 'canceled'
  return (
    <Flex gap={2} direction="column" alignItems="flex-start">
      <Flex gap={2}>
        {retryable && (
          <Button
            variant="secondary"
            size="S"
            startIcon={<ArrowClockwise />}
            disabled={busy}
            onClick={act(api.retry)}
          >
            Retry
          </Button>
        )}
        {!isEnded(job.state) && (
          <Button
            variant="danger-light"
            size="S"
            startIcon={<Cross />}
            disabled={busy}
            onClick={act(api.cancel)}
          >
            Cancel
          </Button>
        )}
      </Flex>
      {failure && (
        <Typography variant="pi" textColor="danger600" role="alert">
          {failure}
        </Typography>
      )}
    </Flex>
  )
}
