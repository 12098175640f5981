package io.idemkey.execution;

import java.util.Objects;

/**
 * What {@link IdempotentExecutor#execute} did for a key, and the work's result.
 *
 * @param kind whether the work ran now, its stored result was given back, or the key was used up
 * @param value the work's result; null only for {@link Kind#USED_UP}
 * @param <T> the result
 */
public record Outcome<T>(Kind kind, T value) {

  /** What happened to a call. */
  public enum Kind {
    /** The work ran in this call, and its result is stored. */
    EXECUTED,
    /** An earlier run completed the key: its stored result, and the work did not run. */
    REPLAYED,
    /**
     * Sequence keys only (SPEC §13): the key is at or below its scope's floor, or its record
     * expired: it was settled long ago and its result is no longer kept. The work did not run:
     * for a log's offsets, the record was processed before.
     */
    USED_UP
  }

  /**
   * @throws NullPointerException if {@code kind} is null, or {@code value} is null for a kind
   *     other than {@link Kind#USED_UP}
   * @throws IllegalArgumentException if {@code value} is given for {@link Kind#USED_UP}
   */
  public Outcome {
    Objects.requireNonNull(kind, "kind");
    if (kind == Kind.USED_UP) {
      if (value != null) {
        throw new IllegalArgumentException("a used-up key has no value");
      }
    } else {
      Objects.requireNonNull(value, "value");
    }
  }

  /** Whether the work ran in this call. */
  public boolean executed() {
    return kind == Kind.EXECUTED;
  }

  @Override
  public String toString() {
    return "Outcome[" + kind + "]"; // never the value, which may hold personal data
  }
}
