package io.idemkey.filter;

import java.time.Duration;

/**
 * Receives the outcome of each covered request, and of each step a request runs ({@code STEP_*},
 * {@code elapsed} being the step's own time), for metrics or logs, without a metrics
 * dependency. Called on the request thread: implementations must be fast and thread-safe.
 */
@FunctionalInterface
public interface IdempotencyListener {

  /** What happened to a covered request. */
  enum Outcome {
    /** The handler ran and its response was stored. */
    EXECUTED,
    /** A stored response was replayed. */
    REPLAYED,
    /** A duplicate arrived while the first was running (409, or a wait that ran out). */
    IN_PROGRESS,
    /** The key was reused for a different request (422). */
    FINGERPRINT_MISMATCH,
    /** A sequence key at or below its scope's floor without a record (409 key-expired). */
    KEY_EXPIRED,
    /** The handler failed or answered a release status; the key was released. */
    RELEASED,
    /** The handler finished after its lease was taken over; its response was not stored. */
    STALE_COMPLETION,
    /** A renewal found the running request's lease lost (taken over, or the key gone). */
    LEASE_LOST,
    /** The store could not be reached; the request got 503. */
    STORE_FAILURE,
    /** The store could not be reached; the handler ran without deduplication (fail-open). */
    FAIL_OPEN,
    /** The key header was missing, invalid or the body too large; the filter answered 4xx. */
    BAD_REQUEST,
    /** A step of a running request made its call and stored the result (SPEC §12). */
    STEP_EXECUTED,
    /** A step of a running request got the result a previous run stored, without calling. */
    STEP_REPLAYED
  }

  /** One covered request's outcome; {@code elapsed} is the time spent in the filter. */
  record Event(Outcome outcome, String method, String path, Duration elapsed) {}

  void onEvent(Event event);

  /** The default listener: logs each event at DEBUG. */
  static IdempotencyListener logging() {
    System.Logger log = System.getLogger(IdempotencyListener.class.getName());
    return event ->
        log.log(System.Logger.Level.DEBUG, () -> "idempotency " + event.outcome() + " "
            + event.method() + " " + event.path() + " in " + event.elapsed().toMillis() + " ms");
  }
}
