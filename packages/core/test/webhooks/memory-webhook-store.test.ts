import { memoryWebhookStore } from '../../src/index.ts'
import { webhookStoreConformance } from '../../src/testing/index.ts'

webhookStoreConformance('memoryWebhookStore', async () => ({ store: memoryWebhookStore() }))
