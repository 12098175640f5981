package io.idemkey.spring;

import io.idemkey.filter.IdempotencyListener;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.binder.MeterBinder;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * The filter's outcomes as Micrometer meters: a Timer {@value #NAME} per request outcome, tagged
 * {@code outcome} with the {@link IdempotencyListener.Outcome} name in lower case ({@code
 * executed}, {@code replayed}, {@code in_progress}, {@code fingerprint_mismatch}, {@code
 * key_expired}, {@code released}, {@code stale_completion}, {@code lease_lost}, {@code
 * store_failure}, {@code fail_open}, {@code bad_request}), timing the time spent in the filter; and a Timer {@value
 * #STEPS_NAME} per step outcome ({@code step_executed}: the call was made and its result stored;
 * {@code step_replayed}: a stored result was returned without calling), timing the step. Every
 * outcome is registered at once, so that dashboards see a zero rather than nothing.
 *
 * <p>Spring Boot binds it to the application's MeterRegistry (it is a {@link MeterBinder}); events
 * before that are not counted. Thread-safe.
 */
final class IdempotencyMetrics implements IdempotencyListener, MeterBinder {

  static final String NAME = "idempotency.requests";
  static final String STEPS_NAME = "idempotency.steps";

  private final List<Map<Outcome, Timer>> registries = new CopyOnWriteArrayList<>();

  @Override
  public void bindTo(MeterRegistry registry) {
    Map<Outcome, Timer> timers = new EnumMap<>(Outcome.class);
    for (Outcome outcome : Outcome.values()) {
      boolean step = outcome.name().startsWith("STEP_");
      timers.put(outcome,
          Timer.builder(step ? STEPS_NAME : NAME)
              .description(step
                  ? "Steps of requests covered by the idempotency filter, by outcome"
                  : "Requests covered by the idempotency filter, by outcome")
              .tag("outcome", outcome.name().toLowerCase(Locale.ROOT))
              .register(registry));
    }
    registries.add(timers);
  }

  @Override
  public void onEvent(Event event) {
    for (Map<Outcome, Timer> timers : registries) {
      timers.get(event.outcome()).record(event.elapsed());
    }
  }
}
