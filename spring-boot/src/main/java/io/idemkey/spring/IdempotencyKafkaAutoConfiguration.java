package io.idemkey.spring;

import io.idemkey.execution.IdempotentExecutor;
import io.idemkey.kafka.RecordProcessor;
import io.idemkey.migrations.TableName;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.StoreBuilder;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import javax.sql.DataSource;
import org.springframework.beans.factory.ObjectProvider;
import org.springframework.boot.autoconfigure.AutoConfiguration;
import org.springframework.boot.autoconfigure.condition.ConditionalOnBooleanProperty;
import org.springframework.boot.autoconfigure.condition.ConditionalOnClass;
import org.springframework.boot.autoconfigure.condition.ConditionalOnMissingBean;
import org.springframework.boot.autoconfigure.condition.ConditionalOnSingleCandidate;
import org.springframework.boot.sql.init.dependency.DependsOnDatabaseInitialization;
import org.springframework.context.annotation.Bean;
import org.springframework.core.env.Environment;
import org.springframework.kafka.config.ContainerCustomizer;
import org.springframework.kafka.listener.ConcurrentMessageListenerContainer;
import org.springframework.kafka.listener.MessageListener;

/**
 * Auto-configuration of idemkey for Spring Kafka's {@code @KafkaListener}s, off unless {@code
 * idempotency.kafka.enabled=true}: every record listener of the listener containers that Spring
 * Boot's container factory makes runs once per record key ({@code idempotency.kafka.keys}:
 * {@code offsets}, or {@code header:NAME}), over a store of its own on the application's
 * DataSource (table {@code idempotency.kafka.table}). With {@code
 * idempotency.kafka.transactional=true} the application's DataSource joins the transaction that
 * settles each record, so that the listener's JDBC writes (JdbcTemplate, JPA) commit with it.
 *
 * <p>The listeners are wrapped through a {@link ContainerCustomizer} bean, which Spring Boot
 * applies to its {@code kafkaListenerContainerFactory}; an application that declares a container
 * customizer of its own, or a factory of its own, wraps its listeners with {@link
 * RecordProcessor} itself. Batch listeners are left as they are.
 */
@AutoConfiguration(
    after = IdempotencyAutoConfiguration.class,
    afterName = {
        "org.springframework.boot.jdbc.autoconfigure.DataSourceAutoConfiguration",
        "org.springframework.boot.autoconfigure.jdbc.DataSourceAutoConfiguration"},
    beforeName = {
        "org.springframework.boot.kafka.autoconfigure.KafkaAutoConfiguration",
        "org.springframework.boot.autoconfigure.kafka.KafkaAutoConfiguration"})
@ConditionalOnClass({RecordProcessor.class, ConcurrentMessageListenerContainer.class})
@ConditionalOnBooleanProperty(IdempotencyKafkaProperties.ENABLED)
@ConditionalOnSingleCandidate(DataSource.class)
public class IdempotencyKafkaAutoConfiguration {

  /** In transactional mode, the application's DataSource joins each record's transaction. */
  @Bean
  @ConditionalOnBooleanProperty(IdempotencyKafkaProperties.TRANSACTIONAL)
  @ConditionalOnMissingBean(RequestTransactionDataSource.class)
  static RequestTransactionDataSource idempotencyKafkaTransactionDataSource() {
    return new RequestTransactionDataSource();
  }

  /** The store and executor of listeners: on the application's pool, in a table of their own. */
  @Bean(destroyMethod = "close")
  @DependsOnDatabaseInitialization
  KafkaExecution idempotencyKafkaExecution(
      Environment environment,
      ObjectProvider<DataSource> dataSource,
      ObjectProvider<RequestTransactionDataSource> transactional) {
    IdempotencyKafkaProperties properties = IdempotencyKafkaProperties.read(environment);
    DataSource bean = dataSource.getIfUnique();
    RequestTransactionDataSource wrapper = transactional.getIfAvailable();
    DataSource pool = wrapper == null ? bean : wrapper.targetOf(bean);
    IdempotencyStore store = StoreBuilder.postgres(pool)
        .tableName(new TableName(
            environment.getProperty("idempotency.schema", "public"), properties.table()))
        .lease(properties.lease())
        .ttl(properties.ttl())
        .sequenceKeys(properties.keys().sequence())
        .notifySettled(true)
        // In transactional mode the claim need not wait for the disk: the record's durable
        // commit comes later in the same WAL (StoreBuilder#deferClaimFlush), as in the filter.
        .deferClaimFlush(properties.transactional())
        .build();
    IdempotentExecutor executor = IdempotentExecutor.builder(store)
        .lease(properties.lease())
        .transactional(properties.transactional())
        .waitTimeout(properties.waitTimeout())
        .build();
    return new KafkaExecution(store, executor, properties);
  }

  /** Wraps each record listener of Boot's listener containers in a record processor. */
  @Bean
  @ConditionalOnMissingBean(ContainerCustomizer.class)
  ContainerCustomizer<Object, Object, ConcurrentMessageListenerContainer<Object, Object>>
      idempotencyKafkaContainerCustomizer(KafkaExecution execution) {
    return container -> {
      Object listener = container.getContainerProperties().getMessageListener();
      if (listener instanceof MessageListener<?, ?> && container.getGroupId() != null) {
        @SuppressWarnings("unchecked")
        MessageListener<Object, Object> records = (MessageListener<Object, Object>) listener;
        container.setupMessageListener(
            new IdempotentRecordListener(execution.processor(container.getGroupId()), records));
      }
    };
  }

  /** The listeners' store and executor, and a record processor per consumer group. */
  static final class KafkaExecution implements AutoCloseable {
    private final IdempotencyStore store;
    private final IdempotentExecutor executor;
    private final IdempotencyKafkaProperties properties;
    private final Map<String, RecordProcessor> processors = new ConcurrentHashMap<>();

    KafkaExecution(
        IdempotencyStore store, IdempotentExecutor executor,
        IdempotencyKafkaProperties properties) {
      this.store = store;
      this.executor = executor;
      this.properties = properties;
    }

    RecordProcessor processor(String group) {
      return processors.computeIfAbsent(group, g -> RecordProcessor.builder(executor)
          .group(g).keys(properties.keys()).build());
    }

    IdempotentExecutor executor() {
      return executor;
    }

    @Override
    public void close() {
      executor.close();
      store.close();
    }
  }
}
