package io.idemkey.spring;

import static org.assertj.core.api.Assertions.assertThat;

import io.idemkey.filter.IdempotencyConfig;
import io.idemkey.filter.IdempotencyFilter;
import io.idemkey.filter.InvalidConfigurationException;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.StoreBuilder;
import io.idemkey.store.TestDatabase;
import java.util.UUID;
import org.junit.jupiter.api.Test;
import org.springframework.boot.autoconfigure.AutoConfigurations;
import org.springframework.boot.jdbc.autoconfigure.DataSourceAutoConfiguration;
import org.springframework.boot.test.context.runner.WebApplicationContextRunner;
import org.springframework.boot.web.servlet.FilterRegistrationBean;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/** When the auto-configuration applies and when it backs off, on the real test database. */
class IdempotencyAutoConfigurationConditionsTest {

  private final WebApplicationContextRunner runner = new WebApplicationContextRunner()
      .withConfiguration(AutoConfigurations.of(
          DataSourceAutoConfiguration.class, IdempotencyAutoConfiguration.class))
      .withPropertyValues(
          "spring.datasource.url=" + TestDatabase.jdbcUrl(),
          "spring.datasource.username=" + TestDatabase.user(),
          "spring.datasource.password=" + TestDatabase.password());

  @Test
  void context_withDataSource_registersTheFilterOnAStoreOfItsOwn() {
    runner.run(context -> {
      assertThat(context).hasNotFailed();
      assertThat(context).hasSingleBean(IdempotencyFilter.class);
      assertThat(context).hasSingleBean(IdempotencyStore.class);
      assertThat(context).hasBean("idempotencyFilterRegistration");
      assertThat(Rows.tableExists("public.idempotency_keys")).isTrue();
    });
  }

  @Test
  void context_userStoreBean_autoConfiguredStoreBacksOffAndTheFilterUsesIt() {
    runner.withUserConfiguration(UserStore.class).run(context -> {
      assertThat(context).hasNotFailed();
      assertThat(context).getBean(IdempotencyStore.class).isSameAs(UserStore.STORE);
      assertThat(context).hasSingleBean(IdempotencyFilter.class);
      assertThat(context).doesNotHaveBean("idempotencyHealthIndicator");
    });
  }

  @Test
  void context_userFilterBean_backsOffEntirely() {
    runner.withUserConfiguration(UserFilter.class).run(context -> {
      assertThat(context).hasNotFailed();
      assertThat(context).getBean(IdempotencyFilter.class).isSameAs(UserFilter.FILTER);
      assertThat(context).doesNotHaveBean(IdempotencyStore.class);
      assertThat(context).doesNotHaveBean("idempotencyFilterRegistration");
      assertThat(context).getBeans(FilterRegistrationBean.class).isEmpty();
    });
  }

  @Test
  void context_enabledFalse_noFilter() {
    runner.withPropertyValues("idempotency.enabled=false").run(context -> {
      assertThat(context).hasNotFailed();
      assertThat(context).doesNotHaveBean(IdempotencyFilter.class);
      assertThat(context).doesNotHaveBean(IdempotencyStore.class);
    });
  }

  @Test
  void context_noDataSourceNoJdbcUrl_noFilter() {
    new WebApplicationContextRunner()
        .withConfiguration(AutoConfigurations.of(IdempotencyAutoConfiguration.class))
        .run(context -> {
          assertThat(context).hasNotFailed();
          assertThat(context).doesNotHaveBean(IdempotencyFilter.class);
        });
  }

  @Test
  void context_jdbcUrlWithoutDataSource_storeOpensItsOwnPool() {
    String table = "k_url_" + UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    new WebApplicationContextRunner()
        .withConfiguration(AutoConfigurations.of(IdempotencyAutoConfiguration.class))
        .withPropertyValues(
            "idempotency.jdbc.url=" + TestDatabase.jdbcUrl(),
            "idempotency.jdbc.username=" + TestDatabase.user(),
            "idempotency.jdbc.password=" + TestDatabase.password(),
            "idempotency.table=" + table)
        .run(context -> {
          assertThat(context).hasNotFailed();
          assertThat(context).hasSingleBean(IdempotencyFilter.class);
          assertThat(Rows.tableExists("public." + table)).isTrue();
        });
  }

  @Test
  void context_migrateFalse_createsNoTable() {
    String table = "k_nomig_" + UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    runner.withPropertyValues("idempotency.migrate=false", "idempotency.table=" + table)
        .run(context -> {
          assertThat(context).hasNotFailed();
          assertThat(context).hasSingleBean(IdempotencyFilter.class);
          assertThat(Rows.tableExists("public." + table)).isFalse();
        });
    runner.withPropertyValues("idempotency.table=" + table)
        .run(context -> assertThat(Rows.tableExists("public." + table)).isTrue());
  }

  @Test
  void context_badValue_failsNamingTheProperty() {
    runner.withPropertyValues("idempotency.lease=10ms").run(context -> {
      Throwable failure = context.getStartupFailure();
      while (failure != null && !(failure instanceof InvalidConfigurationException)) {
        failure = failure.getCause();
      }
      assertThat(failure).isNotNull().hasMessageStartingWith("idempotency.lease:");
    });
  }

  @Test
  void config_yamlStyleListAndRelaxedEnvironmentNames_boundThroughTheBuilder() {
    runner.withPropertyValues(
            "idempotency.methods[0]=POST", "idempotency.methods[1]=PUT",
            "idempotency.fingerprint.headers=Content-Type,X-Tenant",
            "idempotency.scope=header:X-Tenant", "idempotency.wait-timeout=3s")
        .run(context -> {
          IdempotencyConfig config = context.getBean(IdempotencyConfig.class);
          assertThat(config.methods()).containsExactlyInAnyOrder("POST", "PUT");
          assertThat(config.fingerprintHeaders()).containsExactly("Content-Type", "X-Tenant");
          assertThat(config.scope()).isEqualTo(IdempotencyConfig.Scope.header("X-Tenant"));
          assertThat(config.waitTimeout()).hasSeconds(3);
        });
  }

  @Configuration(proxyBeanMethods = false)
  static class UserStore {
    static final IdempotencyStore STORE = StoreBuilder.memory().purgeInterval(
        java.time.Duration.ZERO).build();

    @Bean
    IdempotencyStore myStore() {
      return STORE;
    }
  }

  @Configuration(proxyBeanMethods = false)
  static class UserFilter {
    static final IdempotencyFilter FILTER = IdempotencyFilter.builder()
        .store(StoreBuilder.memory().purgeInterval(java.time.Duration.ZERO).build())
        .build();

    @Bean
    IdempotencyFilter myFilter() {
      return FILTER;
    }
  }
}
