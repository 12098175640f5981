package io.idemkey.store;

import java.time.Duration;
import java.util.Objects;

/**
 * What {@link IdempotencyStore#claim} found for a key. Exactly one caller per key gets
 * {@link Acquired} or {@link TakenOver}, and with it the fencing token that its later
 * {@code complete}, {@code release} and {@code renew} calls must present.
 */
public sealed interface ClaimResult {

  /** A claim that holds the key: its caller runs the request with {@link #token()}. */
  sealed interface Held extends ClaimResult {
    /** The fencing token that complete, release and renew must present. */
    long token();
  }

  /** The key was free (new, expired or released): the caller runs the request. */
  record Acquired(long token) implements Held {}

  /**
   * The previous holder's lease ran out: the caller runs the request with a higher token, and the
   * previous holder's token is no longer accepted.
   */
  record TakenOver(long token, long previousToken) implements Held {
    /**
     * @throws IllegalArgumentException if the new token is not higher than the previous one
     */
    public TakenOver {
      if (token <= previousToken) {
        throw new IllegalArgumentException(
            "token " + token + " must be higher than previous token " + previousToken);
      }
    }
  }

  /**
   * Another request holds the key for {@code leaseRemaining} more, unless it renews its lease.
   * Durations, not instants: the store's clock decides, and another node's clock may differ.
   */
  record InProgress(Duration leaseRemaining) implements ClaimResult {
    public InProgress {
      Objects.requireNonNull(leaseRemaining, "leaseRemaining");
    }
  }

  /** The key is completed: replay {@code response}, which is kept for {@code timeToLive} more. */
  record Completed(StoredResponse response, Duration timeToLive) implements ClaimResult {
    public Completed {
      Objects.requireNonNull(response, "response");
      Objects.requireNonNull(timeToLive, "timeToLive");
    }
  }

  /** The key is held or completed for a request with a different fingerprint. */
  record FingerprintMismatch() implements ClaimResult {}

  /**
   * Sequence keys only (SPEC §13): the key has no live record and is used up. Either it is at or
   * below its scope's floor (the highest key whose completed record the purge removed), or its
   * completed record has expired and waits for the purge. The request must not run.
   */
  record KeyExpired() implements ClaimResult {}
}
