package io.idemkey.frameworks;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * How many times each endpoint's handler ran, counted by the handlers themselves. Thread-safe.
 */
final class Executions {

  private final ConcurrentMap<String, AtomicInteger> counts = new ConcurrentHashMap<>();

  /** Counts one more run of {@code endpoint} and returns its number, starting at 1. */
  int run(String endpoint) {
    return counts.computeIfAbsent(endpoint, e -> new AtomicInteger()).incrementAndGet();
  }

  /** How many times {@code endpoint} ran. */
  int of(String endpoint) {
    AtomicInteger count = counts.get(endpoint);
    return count == null ? 0 : count.get();
  }
}
