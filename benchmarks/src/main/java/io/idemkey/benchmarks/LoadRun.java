package io.idemkey.benchmarks;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.HdrHistogram.Histogram;

/**
 * Drives one scenario against a server on 127.0.0.1 over a fixed number of keep-alive
 * connections, one thread each, in a closed loop (each connection sends its next request when
 * the previous answer is in): a warm-up that is not recorded, then a measured window whose
 * latencies go into an HdrHistogram. It stops by itself: no request starts after the window,
 * and every request times out.
 *
 * <p>Closed loop: when the server stalls, fewer requests are sent, so the percentiles do not
 * show what a client arriving at a fixed rate would have waited (coordinated omission).
 */
final class LoadRun {

  /** What one scenario measured. */
  record Outcome(
      Histogram latencies, long measuredRequests, long allRequests, long failures,
      String firstFailure, double seconds) {

    double requestsPerSecond() {
      return measuredRequests / seconds;
    }
  }

  private static final long HIGHEST_NANOS = TimeUnit.SECONDS.toNanos(60);
  private static final int REQUEST_TIMEOUT_MILLIS = 10_000;

  private LoadRun() {}

  static Outcome run(
      LoadScenario scenario, int port, int connections, Duration warmup, Duration duration)
      throws InterruptedException {
    CountDownLatch ready = new CountDownLatch(connections);
    CountDownLatch go = new CountDownLatch(1);
    AtomicLong allRequests = new AtomicLong();
    AtomicLong failures = new AtomicLong();
    String[] firstFailure = new String[1];
    List<Histogram> histograms = new ArrayList<>();
    List<Thread> threads = new ArrayList<>();
    long[] window = new long[2];
    for (int c = 0; c < connections; c++) {
      int connection = c;
      Histogram histogram = new Histogram(HIGHEST_NANOS, 3);
      histograms.add(histogram);
      Thread thread = new Thread(() -> {
        try (HttpConnection http = new HttpConnection(port, REQUEST_TIMEOUT_MILLIS)) {
          ready.countDown();
          go.await();
          long measureFrom = window[0];
          long end = window[1];
          long sequence = 0;
          for (long start = System.nanoTime(); start < end; start = System.nanoTime()) {
            byte[] request = scenario.requests().request(connection, sequence++);
            String failure;
            try {
              HttpConnection.Response response = http.send(request);
              long latency = System.nanoTime() - start;
              failure = scenario.isGood(response) ? null
                  : "status " + response.status() + ", replayed " + response.replayed();
              if (start >= measureFrom) {
                histogram.recordValue(Math.min(latency, HIGHEST_NANOS));
              }
            } catch (IOException e) {
              failure = e.toString();
              Thread.sleep(10);
            }
            allRequests.incrementAndGet();
            if (failure != null && failures.getAndIncrement() == 0) {
              synchronized (firstFailure) {
                firstFailure[0] = failure;
              }
            }
          }
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }, "load-" + scenario.name() + "-" + c);
      thread.setDaemon(true);
      threads.add(thread);
      thread.start();
    }
    ready.await(30, TimeUnit.SECONDS);
    long start = System.nanoTime();
    window[0] = start + warmup.toNanos();
    window[1] = window[0] + duration.toNanos();
    go.countDown(); // publishes window to the threads
    long joinBy = window[1] + TimeUnit.MILLISECONDS.toNanos(REQUEST_TIMEOUT_MILLIS + 5_000);
    for (Thread thread : threads) {
      thread.join(Math.max(1, TimeUnit.NANOSECONDS.toMillis(joinBy - System.nanoTime())));
      thread.interrupt();
    }
    Histogram all = new Histogram(HIGHEST_NANOS, 3);
    for (Histogram histogram : histograms) {
      synchronized (histogram) {
        all.add(histogram);
      }
    }
    synchronized (firstFailure) {
      return new Outcome(all, all.getTotalCount(), allRequests.get(), failures.get(),
          firstFailure[0], duration.toNanos() / 1e9);
    }
  }
}
