package io.idemkey.spring.sample;

import io.idemkey.store.TestDatabase;
import jakarta.persistence.EntityManagerFactory;
import java.util.Map;
import javax.sql.DataSource;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Primary;
import org.springframework.jdbc.support.JdbcTransactionManager;
import org.springframework.orm.jpa.JpaTransactionManager;

/**
 * A sample application with the starter on its classpath: {@code POST /orders} through a
 * {@code @Transactional} service that writes with JdbcTemplate and a Spring Data JPA repository.
 * Two transaction managers, so that both kinds are exercised: JPA's (primary) and a JDBC one.
 *
 * <p>Run it with {@link #main}: without {@code spring.datasource.url} it starts an embedded
 * PostgreSQL (the tests' {@link TestDatabase}).
 */
@SpringBootApplication
public class SampleApplication {

  public static void main(String[] args) {
    SpringApplication application = new SpringApplication(SampleApplication.class);
    if (System.getProperty("spring.datasource.url") == null
        && System.getenv("SPRING_DATASOURCE_URL") == null) {
      application.setDefaultProperties(Map.of(
          "spring.datasource.url", TestDatabase.jdbcUrl(),
          "spring.datasource.username", TestDatabase.user(),
          "spring.datasource.password", TestDatabase.password()));
    }
    application.run(args);
  }

  @Bean
  @Primary
  JpaTransactionManager transactionManager(EntityManagerFactory entityManagerFactory) {
    return new JpaTransactionManager(entityManagerFactory);
  }

  @Bean
  JdbcTransactionManager jdbcTransactionManager(DataSource dataSource) {
    return new JdbcTransactionManager(dataSource);
  }
}
