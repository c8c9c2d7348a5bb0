/**
 * An SNS message whose signature, signing certificate, topic and age have been checked.
 * Field names are SNS's own.
 */
export interface VerifiedSnsMessage {
  Type: 'Notification' | 'SubscriptionConfirmation' | 'UnsubscribeConfirmation'
  MessageId: string
  TopicArn: string
  Message: string
  Timestamp: string
  Subject?: string
  /** Present on subscription messages; fetched only after the message verified. */
  SubscribeURL?: string
  Token?: string
}

/**
 * Checks push notifications before anything acts on them: a message that does not verify
 * must change nothing and cause no request to any host but the signing-certificate host.
 *
 * @example
 * const message = await verifier.verify(JSON.parse(request.body))
 * if (message.Type === 'SubscriptionConfirmation') await verifier.confirmSubscription(message)
 * else if (message.Type === 'Notification') await service.handleNotification(JSON.parse(message.Message))
 */
export interface NotificationVerifier {
  /**
   * Resolves with the verified message, or rejects with a `NotificationRejectedError`
   * (unsigned, bad signature, untrusted certificate URL, unknown topic, too old, replayed).
   */
  verify(body: unknown, options?: { signal?: AbortSignal }): Promise<VerifiedSnsMessage>

  /** Confirms a verified `SubscriptionConfirmation` by fetching its `SubscribeURL`. */
  confirmSubscription(
    message: VerifiedSnsMessage,
    options?: { signal?: AbortSignal },
  ): Promise<void>
}
