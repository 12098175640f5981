package io.idemkey.benchmarks;

import io.idemkey.store.ClaimResult;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;

/**
 * What the store costs per request, on each implementation of {@link StoreState}, one thread:
 *
 * <ul>
 *   <li>{@code claimAndComplete}: a first request, the claim of a new key and its completion
 *       with the response (two statements and two commits on PostgreSQL);
 *   <li>{@code replay}: a duplicate, the claim of a completed key. On {@code cached} the answer
 *       comes from the cache (after the first claim of each key); on {@code postgres} it is read
 *       from PostgreSQL every time; {@code memory} is the floor.
 * </ul>
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class StoreBenchmark {

  @Benchmark
  public boolean claimAndComplete(StoreState state) {
    return state.claimAndComplete(state.newKey());
  }

  @Benchmark
  public ClaimResult replay(StoreState state) {
    ClaimResult result = state.idempotencyStore.claim(state.completedKey(), state.fingerprint);
    if (!(result instanceof ClaimResult.Completed)) {
      throw new IllegalStateException("a completed key did not replay: " + result);
    }
    return result;
  }
}
