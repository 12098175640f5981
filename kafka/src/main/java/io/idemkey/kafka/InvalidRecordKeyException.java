package io.idemkey.kafka;

import io.idemkey.store.IdempotencyException;

/**
 * A record carries no usable idempotency key (its key header is missing, repeated, empty or too
 * long). Nothing ran; the message names the record's topic, partition and offset. What to do
 * with it (skip it, send it to a dead-letter topic) is the consumer's decision.
 */
public final class InvalidRecordKeyException extends IdempotencyException {

  public InvalidRecordKeyException(String message) {
    super(message);
  }
}
