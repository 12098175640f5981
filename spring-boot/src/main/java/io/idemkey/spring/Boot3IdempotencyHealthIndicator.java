package io.idemkey.spring;

import io.idemkey.migrations.TableName;
import java.time.Duration;
import java.util.function.LongSupplier;
import javax.sql.DataSource;
import org.springframework.beans.factory.DisposableBean;
import org.springframework.boot.actuate.health.Health;
import org.springframework.boot.actuate.health.HealthIndicator;

/**
 * The health of the idemkey store on Spring Boot 3.5 ({@code
 * org.springframework.boot.actuate.health}, which Boot 4 moved to {@code
 * org.springframework.boot.health}): the {@link KeysDatabaseCheck}'s answer as a {@link Health}.
 *
 * <p>Compiled against Boot 3.5's actuator (see this module's POM) and only loaded where that
 * class exists: the auto-configuration names it behind a class condition.
 *
 * <p>Thread-safe.
 */
final class Boot3IdempotencyHealthIndicator implements HealthIndicator, DisposableBean {

  private final KeysDatabaseCheck check;

  Boot3IdempotencyHealthIndicator(
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
