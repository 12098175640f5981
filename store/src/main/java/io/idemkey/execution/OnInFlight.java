package io.idemkey.execution;

/** What a call does when another run holds its key (SPEC §5). */
public enum OnInFlight {
  /** Refused at once with {@link InProgressException}. */
  REJECT,
  /**
   * Waits, up to the executor's wait timeout, for the other run to settle the key (or for its
   * lease to run out), then claims again.
   */
  WAIT
}
