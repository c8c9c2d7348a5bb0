// The messages between a process and its launcher (process-launcher.ts forks
// launcher-process.ts). Types only: the launcher imports nothing of the app at run time.

/** From the app to the launcher. */
export type LauncherRequest =
  | { type: 'spawn'; id: number; command: string; args: string[] }
  | { type: 'kill'; id: number; signal: NodeJS.Signals }

/** From the launcher to the app, about the child `id`. */
export type LauncherEvent =
  | { type: 'spawn'; id: number; pid: number }
  | { type: 'error'; id: number; code?: string; errno?: number; syscall?: string; message: string }
  | { type: 'data'; id: number; fd: 1 | 2; chunk: Uint8Array }
  | { type: 'exit'; id: number; code: number | null; signal: NodeJS.Signals | null }
  | { type: 'close'; id: number; code: number | null; signal: NodeJS.Signals | null }
