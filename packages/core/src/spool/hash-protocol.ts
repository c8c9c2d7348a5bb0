// The messages between `FileHasher` and its thread (hash-worker.ts).

/** To the thread: a file to hash, how much of it is written, its end, or never mind. */
export type HashRequest =
  | { type: 'start'; id: number; path: string }
  | { type: 'written'; id: number; length: number }
  | { type: 'end'; id: number; length: number }
  | { type: 'cancel'; id: number }

/** From the thread: the digest of a file once its end was given, or why there is none. */
export type HashReply = { id: number; sha256: string } | { id: number; error: string }
