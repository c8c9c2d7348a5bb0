import { ADMIN_ACTIONS } from './permissions.ts'

/** A route only an authenticated admin holding `action` may call. */
function guarded(method: 'GET' | 'POST', path: string, handler: string, action: string) {
  return {
    method,
    path,
    handler: `admin.${handler}`,
    config: {
      policies: [
        'admin::isAuthenticatedAdmin',
        { name: 'admin::hasPermissions', config: { actions: [action] } },
      ],
    },
  }
}

/**
 * The admin panel's routes, under `/transcodekit` on Strapi's admin API (admin JWT, not API
 * tokens). Each one is guarded by the plugin's own RBAC action.
 */
export const routes = {
  admin: {
    type: 'admin',
    routes: [
      guarded('GET', '/jobs', 'listJobs', ADMIN_ACTIONS.read),
      guarded('GET', '/jobs/:id', 'getJob', ADMIN_ACTIONS.read),
      guarded('GET', '/files/:fileId', 'getFile', ADMIN_ACTIONS.read),
      guarded('POST', '/jobs/:id/retry', 'retryJob', ADMIN_ACTIONS.retry),
      guarded('POST', '/jobs/:id/cancel', 'cancelJob', ADMIN_ACTIONS.cancel),
    ],
  },
}
