package io.idemkey.spring.sample;

import org.springframework.jdbc.core.JdbcTemplate;
import org.springframework.jdbc.support.GeneratedKeyHolder;
import org.springframework.stereotype.Service;
import org.springframework.transaction.annotation.Transactional;

/**
 * Places orders in a {@code @Transactional} method: an order row and an event row. {@code
 * rejectAfterWrite} throws after both writes, so that the transaction manager rolls back.
 */
@Service
public class OrderService {

  /** Thrown after the writes: Spring rolls the transaction back. */
  public static final class Rejected extends RuntimeException {
    Rejected() {
      super("order rejected after its rows were written");
    }
  }

  private final OrderRepository orders;
  private final JdbcTemplate jdbc;

  OrderService(OrderRepository orders, JdbcTemplate jdbc) {
    this.orders = orders;
    this.jdbc = jdbc;
  }

  /** JpaTransactionManager: the repository saves the order, JdbcTemplate the event. */
  @Transactional
  public long placeWithJpa(String reference, String item, int quantity, boolean rejectAfterWrite) {
    OrderEntity order = orders.saveAndFlush(new OrderEntity(reference, item, quantity));
    jdbc.update("INSERT INTO order_events (order_id, reference, kind) VALUES (?, ?, 'placed')",
        order.getId(), reference);
    if (rejectAfterWrite) {
      throw new Rejected();
    }
    return order.getId();
  }

  /** DataSourceTransactionManager (JdbcTransactionManager): JdbcTemplate writes both rows. */
  @Transactional("jdbcTransactionManager")
  public long placeWithJdbc(String reference, String item, int quantity, boolean rejectAfterWrite) {
    GeneratedKeyHolder id = new GeneratedKeyHolder();
    jdbc.update(connection -> {
      var statement = connection.prepareStatement(
          "INSERT INTO orders (reference, item, quantity) VALUES (?, ?, ?)", new String[] {"id"});
      statement.setString(1, reference);
      statement.setString(2, item);
      statement.setInt(3, quantity);
      return statement;
    }, id);
    long orderId = id.getKey().longValue();
    jdbc.update("INSERT INTO order_events (order_id, reference, kind) VALUES (?, ?, 'placed')",
        orderId, reference);
    if (rejectAfterWrite) {
      throw new Rejected();
    }
    return orderId;
  }
}
