package io.idemkey.filter;

import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicInteger;

/** Factories of the filter's daemon threads. Thread-safe. */
final class DaemonThreads {

  private DaemonThreads() {}

  /** Daemon threads named {@code name-1}, {@code name-2}, ... */
  static ThreadFactory named(String name) {
    AtomicInteger count = new AtomicInteger();
    return runnable -> {
      Thread thread = new Thread(runnable, name + "-" + count.incrementAndGet());
      thread.setDaemon(true);
      return thread;
    };
  }
}
