package io.idemkey.spring;

import io.idemkey.filter.IdempotencyConfig;
import io.idemkey.filter.IdempotencyFilter;
import io.idemkey.filter.IdempotencyListener;
import io.idemkey.filter.InvalidConfigurationException;
import io.idemkey.filter.Steps;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.StoreBuilder;
import jakarta.servlet.DispatcherType;
import java.time.Duration;
import java.util.List;
import javax.sql.DataSource;
import org.postgresql.ds.PGSimpleDataSource;
import org.springframework.beans.factory.ObjectProvider;
import org.springframework.boot.SpringBootVersion;
import org.springframework.boot.autoconfigure.AutoConfiguration;
import org.springframework.boot.autoconfigure.condition.AnyNestedCondition;
import org.springframework.boot.autoconfigure.condition.ConditionalOnBean;
import org.springframework.boot.autoconfigure.condition.ConditionalOnBooleanProperty;
import org.springframework.boot.autoconfigure.condition.ConditionalOnClass;
import org.springframework.boot.autoconfigure.condition.ConditionalOnMissingBean;
import org.springframework.boot.autoconfigure.condition.ConditionalOnProperty;
import org.springframework.boot.autoconfigure.condition.ConditionalOnSingleCandidate;
import org.springframework.boot.autoconfigure.condition.ConditionalOnWebApplication;
import org.springframework.boot.autoconfigure.condition.NoneNestedConditions;
import org.springframework.boot.sql.init.dependency.DependsOnDatabaseInitialization;
import org.springframework.boot.web.servlet.FilterRegistrationBean;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Conditional;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Scope;
import org.springframework.context.annotation.ScopedProxyMode;
import org.springframework.core.env.Environment;
import org.springframework.web.context.WebApplicationContext;
import org.springframework.web.context.request.RequestContextHolder;
import org.springframework.web.context.request.ServletRequestAttributes;

/**
 * Auto-configuration of the idempotency filter for Spring Boot servlet applications, on Boot 3.5
 * and 4.0 (what differs between the two lines is named by class name behind class conditions;
 * an older line is refused at start-up by {@link SpringBootLine}).
 *
 * <p>With a DataSource in the context (or {@code idempotency.jdbc.url} set, or {@code
 * idempotency.store=memory}), it builds the store (running the migrations unless {@code
 * idempotency.migrate=false}) and registers the filter in front of the application's handlers
 * (REQUEST and ASYNC dispatches), configured by the {@code idempotency.*} properties. It backs
 * off from an {@link IdempotencyFilter} bean of the application's (entirely) and from an {@link
 * IdempotencyStore} bean (then the filter uses it); {@code idempotency.enabled=false} turns it
 * off. With {@code idempotency.transactional=true} the application's DataSource joins each
 * covered request's transaction ({@link RequestTransactionDataSource}); asynchronous handlers are
 * then refused. A request-scoped {@link Steps} bean gives handlers the current request's steps.
 * With Micrometer, the Timers {@value IdempotencyMetrics#NAME} and {@value
 * IdempotencyMetrics#STEPS_NAME}; with Spring Boot's health module, a health indicator {@code
 * idempotency}.
 */
@AutoConfiguration(afterName = {
    // Boot 4 (spring-boot-jdbc) and Boot 3.5 (spring-boot-autoconfigure) name it differently. Were
    // this ordered before the DataSource's, the DataSource condition below would find none and
    // the filter would silently stay away.
    "org.springframework.boot.jdbc.autoconfigure.DataSourceAutoConfiguration",
    "org.springframework.boot.autoconfigure.jdbc.DataSourceAutoConfiguration"})
@ConditionalOnWebApplication(type = ConditionalOnWebApplication.Type.SERVLET)
@ConditionalOnClass(IdempotencyFilter.class)
@ConditionalOnBooleanProperty(name = IdempotencyProperties.ENABLED, matchIfMissing = true)
@ConditionalOnMissingBean(IdempotencyFilter.class)
@Conditional(IdempotencyAutoConfiguration.OnKeyStore.class)
public class IdempotencyAutoConfiguration {

  /** The idempotency.* properties, as the filter's configuration. */
  @Bean
  @ConditionalOnMissingBean
  IdempotencyConfig idempotencyConfig(Environment environment) {
    SpringBootLine.requireSupported(SpringBootVersion.getVersion());
    return IdempotencyProperties.read(environment).toConfig();
  }

  /**
   * Wraps the application's DataSource in transactional mode, unless the keys live in a database
   * of their own ({@code idempotency.jdbc.url}): the request's transaction is on that database.
   */
  @Bean
  @ConditionalOnBooleanProperty("idempotency.transactional")
  @ConditionalOnMissingBean(IdempotencyStore.class)
  @Conditional(NoJdbcUrl.class)
  static RequestTransactionDataSource idempotencyRequestTransactionDataSource() {
    return new RequestTransactionDataSource();
  }

  /**
   * The store: on the application's DataSource (its pool, never the wrapper), or its own. Built
   * after the application's database initialization (its Flyway or Liquibase migrations, its
   * schema.sql), so that idemkey's tables never make the application's migration tool find a
   * schema it did not expect.
   */
  @Bean(destroyMethod = "close")
  @DependsOnDatabaseInitialization
  @ConditionalOnMissingBean(IdempotencyStore.class)
  IdempotencyStore idempotencyStore(
      IdempotencyConfig config,
      Environment environment,
      ObjectProvider<DataSource> dataSource,
      ObjectProvider<RequestTransactionDataSource> transactional) {
    DataSource pool = keyDataSource(environment, config, dataSource, transactional);
    StoreBuilder builder =
        pool == null ? config.storeBuilder() : config.applyTo(StoreBuilder.postgres(pool));
    // A table that is not idemkey's, or is used with other keys, is refused naming the
    // properties to change, as the filter itself does.
    return config.buildStore(builder);
  }

  /**
   * The application's DataSource (its pool, unwrapped) when the keys live there; null when the
   * store opens its own pool ({@code idempotency.jdbc.url}) or keeps keys in memory.
   */
  static DataSource keyDataSource(
      Environment environment,
      IdempotencyConfig config,
      ObjectProvider<DataSource> dataSource,
      ObjectProvider<RequestTransactionDataSource> transactional) {
    if (config.store() == IdempotencyConfig.StoreType.MEMORY
        || environment.getProperty(IdempotencyProperties.JDBC_URL) != null) {
      return null;
    }
    DataSource bean = dataSource.getIfUnique();
    if (bean == null) {
      throw new InvalidConfigurationException(IdempotencyProperties.JDBC_URL + " is not set and"
          + " there is no single (or primary) DataSource in the context for the keys");
    }
    RequestTransactionDataSource wrapper = transactional.getIfAvailable();
    return wrapper == null ? bean : wrapper.targetOf(bean);
  }

  /** The filter and its registration. */
  @Configuration(proxyBeanMethods = false)
  static class FilterConfiguration {

    @Bean
    IdempotencyFilter idempotencyFilter(
        IdempotencyConfig config,
        IdempotencyStore store,
        ObjectProvider<IdempotencyListener> listeners) {
      List<IdempotencyListener> all = listeners.orderedStream().toList();
      IdempotencyListener logging = IdempotencyListener.logging();
      return IdempotencyFilter.builder()
          .config(config)
          .store(store)
          .listener(event -> {
            logging.onEvent(event);
            for (IdempotencyListener listener : all) {
              listener.onEvent(event);
            }
          })
          .build();
    }

    /**
     * The filter's registration: for REQUEST and ASYNC dispatches, async-supported. Spring MVC
     * answers a {@code DeferredResult}, {@code Callable}, {@code WebAsyncTask} or {@code
     * StreamingResponseBody} with startAsync() and an ASYNC dispatch, during which the response
     * is written: the filter must see that dispatch to store and send it (SPEC §6). Boot maps a
     * plain Filter for REQUEST only.
     */
    @Bean
    FilterRegistrationBean<IdempotencyFilter> idempotencyFilterRegistration(
        IdempotencyFilter filter, Environment environment) {
      IdempotencyProperties properties = IdempotencyProperties.read(environment);
      FilterRegistrationBean<IdempotencyFilter> registration = new FilterRegistrationBean<>(filter);
      registration.setName("idempotencyFilter");
      registration.setUrlPatterns(List.of(properties.urlPatterns()));
      registration.setDispatcherTypes(DispatcherType.REQUEST, DispatcherType.ASYNC);
      registration.setAsyncSupported(true);
      registration.setOrder(
          environment.getProperty(
              IdempotencyProperties.FILTER_ORDER, Integer.class,
              IdempotencyProperties.DEFAULT_FILTER_ORDER));
      return registration;
    }
  }

  /**
   * The current request's {@link Steps} (SPEC §12), to inject anywhere: a request-scoped bean
   * behind a proxy that resolves it per call.
   */
  @Configuration(proxyBeanMethods = false)
  @ConditionalOnClass(name = "org.springframework.web.context.request.RequestContextHolder")
  static class StepsConfiguration {

    @Bean
    @ConditionalOnMissingBean
    @Scope(value = WebApplicationContext.SCOPE_REQUEST, proxyMode = ScopedProxyMode.INTERFACES)
    Steps idempotencySteps() {
      return Steps.of(
          ((ServletRequestAttributes) RequestContextHolder.currentRequestAttributes())
              .getRequest());
    }
  }

  /** Micrometer: the Timers idempotency.requests and idempotency.steps by outcome. */
  @Configuration(proxyBeanMethods = false)
  @ConditionalOnClass(name = "io.micrometer.core.instrument.MeterRegistry")
  static class MetricsConfiguration {

    @Bean
    @ConditionalOnMissingBean
    IdempotencyMetrics idempotencyMetrics() {
      return new IdempotencyMetrics();
    }
  }

  /**
   * The database the health indicator checks: the keys' DataSource, or one of its own on {@code
   * idempotency.jdbc.url} (never the store's pool: a check must not queue behind requests); null
   * for the memory store.
   */
  static DataSource healthDataSource(
      IdempotencyConfig config,
      Environment environment,
      ObjectProvider<DataSource> dataSource,
      ObjectProvider<RequestTransactionDataSource> transactional) {
    DataSource database = keyDataSource(environment, config, dataSource, transactional);
    if (database != null) {
      return database;
    }
    String url = environment.getProperty(IdempotencyProperties.JDBC_URL);
    if (url == null) {
      return null;
    }
    PGSimpleDataSource own = new PGSimpleDataSource();
    own.setURL(url);
    own.setUser(environment.getProperty(IdempotencyProperties.JDBC_USERNAME));
    own.setPassword(environment.getProperty(IdempotencyProperties.JDBC_PASSWORD));
    int seconds = (int) Math.max(1, config.jdbcConnectTimeout().toSeconds());
    own.setConnectTimeout(seconds);
    own.setLoginTimeout(seconds);
    own.setSocketTimeout(seconds);
    return own;
  }

  /** How long a health answer is kept. */
  static final Duration HEALTH_CACHE_FOR = Duration.ofSeconds(5);

  /** Actuator on Boot 4 (spring-boot-health): the health indicator "idempotency". */
  @Configuration(proxyBeanMethods = false)
  @ConditionalOnClass(name = "org.springframework.boot.health.contributor.HealthIndicator")
  @ConditionalOnBooleanProperty(name = "management.health.idempotency.enabled",
      matchIfMissing = true)
  @ConditionalOnMissingBean(IdempotencyStore.class)
  static class HealthConfiguration {

    @Bean
    @ConditionalOnMissingBean(name = "idempotencyHealthIndicator")
    org.springframework.boot.health.contributor.HealthIndicator idempotencyHealthIndicator(
        IdempotencyConfig config,
        Environment environment,
        ObjectProvider<DataSource> dataSource,
        ObjectProvider<RequestTransactionDataSource> transactional) {
      DataSource database = healthDataSource(config, environment, dataSource, transactional);
      if (database == null) {
        return () -> org.springframework.boot.health.contributor.Health.up()
            .withDetail("store", "memory").build();
      }
      return new IdempotencyHealthIndicator(database, config.tableName(), HEALTH_CACHE_FOR,
          config.jdbcConnectTimeout(), System::nanoTime);
    }
  }

  /** Actuator on Boot 3.5 (spring-boot-actuator): the same health indicator "idempotency". */
  @Configuration(proxyBeanMethods = false)
  @ConditionalOnClass(name = "org.springframework.boot.actuate.health.HealthIndicator")
  @ConditionalOnBooleanProperty(name = "management.health.idempotency.enabled",
      matchIfMissing = true)
  @ConditionalOnMissingBean(IdempotencyStore.class)
  static class Boot3HealthConfiguration {

    @Bean
    @ConditionalOnMissingBean(name = "idempotencyHealthIndicator")
    org.springframework.boot.actuate.health.HealthIndicator idempotencyHealthIndicator(
        IdempotencyConfig config,
        Environment environment,
        ObjectProvider<DataSource> dataSource,
        ObjectProvider<RequestTransactionDataSource> transactional) {
      DataSource database = healthDataSource(config, environment, dataSource, transactional);
      if (database == null) {
        return () -> org.springframework.boot.actuate.health.Health.up()
            .withDetail("store", "memory").build();
      }
      return new Boot3IdempotencyHealthIndicator(database, config.tableName(), HEALTH_CACHE_FOR,
          config.jdbcConnectTimeout(), System::nanoTime);
    }
  }

  /** A database (or memory) for the keys: a DataSource, a JDBC URL, a memory store, or a store. */
  static final class OnKeyStore extends AnyNestedCondition {
    OnKeyStore() {
      super(ConfigurationPhase.REGISTER_BEAN);
    }

    @ConditionalOnSingleCandidate(DataSource.class)
    static final class DataSourceBean {}

    @ConditionalOnProperty(IdempotencyProperties.JDBC_URL)
    static final class JdbcUrl {}

    @ConditionalOnProperty(name = "idempotency.store", havingValue = "memory")
    static final class Memory {}

    @ConditionalOnBean(IdempotencyStore.class)
    static final class StoreBean {}
  }

  /** idempotency.jdbc.url is not set. */
  static final class NoJdbcUrl extends NoneNestedConditions {
    NoJdbcUrl() {
      super(ConfigurationPhase.PARSE_CONFIGURATION);
    }

    @ConditionalOnProperty(IdempotencyProperties.JDBC_URL)
    static final class JdbcUrl {}
  }
}
