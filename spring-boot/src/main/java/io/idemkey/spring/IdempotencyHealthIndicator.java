package io.idemkey.spring;

import io.idemkey.migrations.TableName;
import java.time.Duration;
import java.util.function.LongSupplier;
import javax.sql.DataSource;
import org.springframework.beans.factory.DisposableBean;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.HealthIndicator;

/**
 * The health of the idemkey store on Spring Boot 4 ({@code org.springframework.boot.health}): the
 * {@link KeysDatabaseCheck}'s answer as a {@link Health}. Boot 3.5 gets the same check through
 * {@link Boot3IdempotencyHealthIndicator}.
 *
 * <p>Thread-safe.
 */
final class IdempotencyHealthIndicator implements HealthIndicator, DisposableBean {

  private final KeysDatabaseCheck check;

  IdempotencyHealthIndicator(
      DataSource dataSource, TableName table, Duration cacheFor, Duration timeout,
      LongSupplier nanoTime) {
    this.check = new KeysDatabaseCheck(dataSource, table, cacheFor, timeout, nanoTime);
  }

  @Override
  public Health health() {
    KeysDatabaseCheck.Result result = check.result();
    Health.Builder health = switch (result.state()) {
      case UP -> Health.up();
      case DOWN -> Health.down();
      case UNKNOWN -> Health.unknown();
    };
    return health.withDetails(result.details()).build();
  }

  @Override
  public void destroy() {
    check.close();
  }
}
