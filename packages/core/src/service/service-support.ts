import type { Job, Owner } from '../model.ts'
import type { OwnerScope } from './transcoder-options.ts'

/** Whether `scope` may see a resource of this owner. */
export function inScope(resource: { owner: Owner }, scope: OwnerScope): boolean {
  return scope.owner === undefined || resource.owner === scope.owner
}

/** What a watcher sees of a job: an update that leaves it unchanged is not announced. */
export function fingerprint(job: Job): string {
  return JSON.stringify([job.state, job.progress, job.outputs.map((o) => [o.state, o.size])])
}

export function clampProgress(value: number): number {
  return Math.min(100, Math.max(0, Math.round(value * 10) / 10))
}
