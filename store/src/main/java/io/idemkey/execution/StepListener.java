package io.idemkey.execution;

/**
 * Told of each step that ran or was replayed, for metrics. Called on the thread that ran the
 * step; must be quick and thread-safe.
 */
@FunctionalInterface
public interface StepListener {

  /** A listener that ignores every step. */
  StepListener NONE = (replayed, startedNanos) -> {};

  /**
   * A step ended.
   *
   * @param replayed true if its stored result was returned, false if the call was made
   * @param startedNanos {@link System#nanoTime()} when the step started
   */
  void stepEnded(boolean replayed, long startedNanos);
}
