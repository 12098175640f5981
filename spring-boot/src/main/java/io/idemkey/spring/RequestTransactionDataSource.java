package io.idemkey.spring;

import io.idemkey.store.RequestTransactions;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Map;
import javax.sql.DataSource;
import org.springframework.beans.BeansException;
import org.springframework.beans.factory.BeanFactory;
import org.springframework.beans.factory.BeanFactoryAware;
import org.springframework.beans.factory.config.BeanPostProcessor;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;

/**
 * Transactional mode (SPEC §6) for Spring: wraps the application's DataSource bean with {@link
 * RequestTransactions#dataSource(DataSource)}, so that on a thread that runs a covered request its
 * connections are the request's (commit and close harmless): JdbcTemplate, {@code @Transactional}
 * services and JPA repositories join the request's transaction without a code change. On any other
 * thread, and for requests the filter does not cover, the pool's own connections are handed out
 * and Spring commits as usual. The wrapper unwraps to the pool (Boot's DataSourceUnwrapper, pool
 * metrics). The idemkey store is built on the pool itself ({@link #targetOf}).
 *
 * <p>Only the DataSource that a single-DataSource injection gets is wrapped (the only one, or the
 * primary one): another database cannot join a PostgreSQL transaction on the keys' database.
 *
 * <p>Thread-safe.
 */
final class RequestTransactionDataSource implements BeanPostProcessor, BeanFactoryAware {

  private final Map<DataSource, DataSource> targets =
      Collections.synchronizedMap(new IdentityHashMap<>());
  private ConfigurableListableBeanFactory beanFactory;

  @Override
  public void setBeanFactory(BeanFactory beanFactory) {
    this.beanFactory = (ConfigurableListableBeanFactory) beanFactory;
  }

  @Override
  public Object postProcessAfterInitialization(Object bean, String beanName)
      throws BeansException {
    if (!(bean instanceof DataSource dataSource) || targets.containsKey(bean)
        || !isTheDataSource(beanName)) {
      return bean;
    }
    DataSource wrapped = RequestTransactions.dataSource(dataSource);
    targets.put(wrapped, dataSource);
    return wrapped;
  }

  /** The pool behind {@code dataSource} if this wrapped it, else {@code dataSource} itself. */
  DataSource targetOf(DataSource dataSource) {
    return targets.getOrDefault(dataSource, dataSource);
  }

  private boolean isTheDataSource(String beanName) {
    String[] names = beanFactory.getBeanNamesForType(DataSource.class, true, false);
    if (names.length == 1) {
      return names[0].equals(beanName);
    }
    return beanFactory.containsBeanDefinition(beanName)
        && beanFactory.getBeanDefinition(beanName).isPrimary();
  }
}
