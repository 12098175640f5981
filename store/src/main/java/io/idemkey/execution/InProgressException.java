package io.idemkey.execution;

import io.idemkey.store.IdempotencyException;
import java.time.Duration;
import java.util.Objects;

/**
 * Another run holds the key: refused at once ({@link OnInFlight#REJECT}) or after the wait ran
 * out ({@link OnInFlight#WAIT}). Nothing ran; try again after {@link #leaseRemaining()} at most.
 */
public final class InProgressException extends IdempotencyException {

  private final Duration leaseRemaining;

  public InProgressException(String message, Duration leaseRemaining) {
    super(message);
    this.leaseRemaining = Objects.requireNonNull(leaseRemaining, "leaseRemaining");
  }

  /** How long the holder's lease runs unless it is renewed, as the store saw it. */
  public Duration leaseRemaining() {
    return leaseRemaining;
  }
}
