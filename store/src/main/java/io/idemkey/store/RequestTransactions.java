package io.idemkey.store;

import java.io.PrintWriter;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.SQLFeatureNotSupportedException;
import java.sql.SQLTransientConnectionException;
import java.util.Objects;
import java.util.Optional;
import java.util.logging.Logger;
import javax.sql.DataSource;

/**
 * How application code reaches the transaction of the request it serves (transactional mode, SPEC
 * §6). The filter binds the request's {@link StoreTransaction} to the thread that runs the handler;
 * code then either asks for {@link #currentConnection()}, or, unchanged, takes its connections from
 * a data source wrapped by {@link #dataSource(DataSource)}, whose {@code getConnection()} on that
 * thread returns the request's connection (with {@code commit} and {@code close} made harmless),
 * and on any other thread a connection of the wrapped data source.
 *
 * <pre>{@code
 * DataSource pool = ...;                                   // the application's pool
 * DataSource payments = RequestTransactions.dataSource(pool);
 * // in the handler: this insert commits together with the stored response, or not at all
 * try (Connection c = payments.getConnection()) { ... }
 * }</pre>
 *
 * <p>Thread-safe: each thread sees only its own binding.
 */
public final class RequestTransactions {

  private static final ThreadLocal<StoreTransaction> CURRENT = new ThreadLocal<>();

  private RequestTransactions() {}

  /** A binding of a transaction to the current thread, undone by {@link #close()}. */
  public interface Binding extends AutoCloseable {
    @Override
    void close();
  }

  /**
   * Binds {@code transaction} to the current thread until the binding is closed.
   *
   * @throws IllegalStateException if another transaction is bound to this thread
   */
  public static Binding bind(StoreTransaction transaction) {
    Objects.requireNonNull(transaction, "transaction");
    if (CURRENT.get() != null) {
      throw new IllegalStateException("a request transaction is already bound to this thread");
    }
    CURRENT.set(transaction);
    return CURRENT::remove;
  }

  /**
   * The connection of the request transaction bound to this thread, if any; the first call
   * begins the transaction.
   *
   * @throws StoreUnavailableException if its transaction could not begin (no connection within
   *     the store's bound, or the request no longer holds its key)
   */
  public static Optional<Connection> currentConnection() {
    StoreTransaction transaction = CURRENT.get();
    return transaction == null ? Optional.empty() : Optional.of(transaction.connection());
  }

  /**
   * A data source whose connections, on a thread that runs a request in transactional mode, are
   * that request's connection; elsewhere, connections of {@code target}.
   */
  public static DataSource dataSource(DataSource target) {
    return new RequestAwareDataSource(Objects.requireNonNull(target, "target"));
  }

  /**
   * The request's connection as the application sees it: commit, close and switching auto-commit
   * on do nothing, since the filter commits once the response is known.
   */
  static Connection borrowed(Connection connection) {
    InvocationHandler handler = new BorrowedConnection(connection);
    return (Connection)
        Proxy.newProxyInstance(
            RequestTransactions.class.getClassLoader(), new Class<?>[] {Connection.class}, handler);
  }

  private static final class BorrowedConnection implements InvocationHandler {
    private final Connection target;

    BorrowedConnection(Connection target) {
      this.target = target;
    }

    @Override
    public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
      switch (method.getName()) {
        case "commit":
        case "close":
        case "setAutoCommit":
          // Committing (or turning auto-commit on, which commits) would make the request's writes
          // durable before its response is stored: the filter commits both at once.
          return null;
        case "getAutoCommit":
          return false;
        case "setReadOnly":
        case "setTransactionIsolation":
          // The request's transaction keeps what it began with: PostgreSQL cannot change either
          // in the middle of a transaction (Spring sets them for readOnly or isolation options).
          return null;
        case "unwrap":
          return ((Class<?>) args[0]).isInstance(proxy) ? proxy : target.unwrap((Class<?>) args[0]);
        case "isWrapperFor":
          return ((Class<?>) args[0]).isInstance(proxy) || target.isWrapperFor((Class<?>) args[0]);
        case "equals":
          return proxy == args[0];
        case "hashCode":
          return System.identityHashCode(proxy);
        case "toString":
          return "request transaction connection (" + target + ")";
        default:
          try {
            return method.invoke(target, args);
          } catch (InvocationTargetException e) {
            throw e.getCause();
          }
      }
    }
  }

  private static final class RequestAwareDataSource implements DataSource {
    private final DataSource target;

    RequestAwareDataSource(DataSource target) {
      this.target = target;
    }

    @Override
    public Connection getConnection() throws SQLException {
      StoreTransaction transaction = CURRENT.get();
      return transaction != null ? connectionOf(transaction) : target.getConnection();
    }

    @Override
    public Connection getConnection(String username, String password) throws SQLException {
      StoreTransaction transaction = CURRENT.get();
      return transaction != null
          ? connectionOf(transaction)
          : target.getConnection(username, password);
    }

    /**
     * The request's connection, its transaction begun on first use; as a data source says it, an
     * {@code SQLException} (SQLSTATE 08001) when none could be had.
     */
    private static Connection connectionOf(StoreTransaction transaction) throws SQLException {
      try {
        return transaction.connection();
      } catch (StoreUnavailableException e) {
        throw new SQLTransientConnectionException(e.getMessage(), "08001", e);
      }
    }

    @Override
    public PrintWriter getLogWriter() throws SQLException {
      return target.getLogWriter();
    }

    @Override
    public void setLogWriter(PrintWriter out) throws SQLException {
      target.setLogWriter(out);
    }

    @Override
    public void setLoginTimeout(int seconds) throws SQLException {
      target.setLoginTimeout(seconds);
    }

    @Override
    public int getLoginTimeout() throws SQLException {
      return target.getLoginTimeout();
    }

    @Override
    public Logger getParentLogger() throws SQLFeatureNotSupportedException {
      return target.getParentLogger();
    }

    @Override
    public <T> T unwrap(Class<T> type) throws SQLException {
      return type.isInstance(this) ? type.cast(this) : target.unwrap(type);
    }

    @Override
    public boolean isWrapperFor(Class<?> type) throws SQLException {
      return type.isInstance(this) || target.isWrapperFor(type);
    }
  }
}
