package io.idemkey.benchmarks;

import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;

/**
 * What the filter costs in-process, without a network: the handler alone against the same
 * handler behind the filter on an uncovered request, and a replay of a completed key.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class FilterOverheadBenchmark {

  @Benchmark
  public void request(FilterState state) throws Exception {
    if (state.path.equals("bare")) {
      state.handler.doFilter(state.request, state.response);
    } else {
      state.filter.doFilter(state.request, state.response, state.handler);
    }
  }
}
