import type { WebhookDelivery, WebhookDeliveryStore } from '../../src/index.ts'

/**
 * Reads a delivery from the store until it passes `test` (the store has no change events);
 * throws after `timeoutMs`.
 */
export async function untilDelivery(
  store: WebhookDeliveryStore,
  id: string,
  test: (delivery: WebhookDelivery) => boolean,
  timeoutMs = 20_000,
): Promise<WebhookDelivery> {
  const delivery = await readUntil(store, id, (read) => read !== null && test(read), timeoutMs)
  return delivery!
}

/** Reads a delivery from the store until it is gone; throws after `timeoutMs`. */
export async function untilGone(
  store: WebhookDeliveryStore,
  id: string,
  timeoutMs = 20_000,
): Promise<void> {
  await readUntil(store, id, (read) => read === null, timeoutMs)
}

async function readUntil(
  store: WebhookDeliveryStore,
  id: string,
  test: (delivery: WebhookDelivery | null) => boolean,
  timeoutMs: number,
): Promise<WebhookDelivery | null> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const delivery = await store.get(id)
    if (test(delivery)) return delivery
    if (Date.now() > deadline) {
      throw new Error(
        `delivery ${id} did not reach the expected state: ${JSON.stringify(delivery)}`,
      )
    }
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
