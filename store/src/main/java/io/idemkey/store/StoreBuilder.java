package io.idemkey.store;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.idemkey.migrations.ForeignTableException;
import io.idemkey.migrations.Migrations;
import io.idemkey.migrations.TableName;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Clock;
import java.time.Duration;
import java.util.Objects;
import javax.sql.DataSource;

/**
 * The one builder of {@link IdempotencyStore}s.
 *
 * <pre>{@code
 * IdempotencyStore store = StoreBuilder.postgres("jdbc:postgresql://db/app", "app", secret)
 *     .ttl(Duration.ofHours(24))
 *     .build();
 * }</pre>
 *
 * <p>A PostgreSQL store is wrapped in a Caffeine cache of completed responses unless
 * {@link #cacheMaxBytes(long)} is 0, and purges expired keys every {@link #purgeInterval} unless
 * that is zero. The memory store holds its completed responses within the same byte budget,
 * {@link #cacheMaxBytes(long)}: past it, the completed keys least likely to be used again are
 * evicted, and a retry of an evicted key runs the request again. Every store it builds keeps step
 * results beside its keys ({@link IdempotencyStore#steps()}, SPEC §12). Not thread-safe; the
 * stores it builds are.
 */
public final class StoreBuilder {

  /** Default time to live of a completed key. */
  public static final Duration DEFAULT_TTL = Duration.ofHours(24);
  /** Default in-flight lease. */
  public static final Duration DEFAULT_LEASE = Duration.ofSeconds(30);
  /** Default pool size when the store opens its own pool. */
  public static final int DEFAULT_POOL_SIZE = 10;
  /** Default longest wait for a connection. */
  public static final Duration DEFAULT_CONNECT_TIMEOUT = Duration.ofSeconds(2);
  /** Default bound on the heap retained by completed responses held in this process. */
  public static final long DEFAULT_CACHE_MAX_BYTES = 64L * 1024 * 1024;
  /** Default interval between purges. */
  public static final Duration DEFAULT_PURGE_INTERVAL = Duration.ofMinutes(1);
  /** Default number of keys deleted per purge batch. */
  public static final int DEFAULT_PURGE_BATCH_SIZE = 1000;

  private enum Kind { MEMORY, POSTGRES_DATA_SOURCE, POSTGRES_URL }

  private final Kind kind;
  private final DataSource dataSource;
  private final String jdbcUrl;
  private final String username;
  private final String password;
  private Clock clock;
  private Duration ttl = DEFAULT_TTL;
  private Duration lease = DEFAULT_LEASE;
  private TableName tableName = TableName.DEFAULT;
  private boolean migrate = true;
  private int poolSize = DEFAULT_POOL_SIZE;
  private Duration connectTimeout = DEFAULT_CONNECT_TIMEOUT;
  private long cacheMaxBytes = DEFAULT_CACHE_MAX_BYTES;
  private Duration purgeInterval = DEFAULT_PURGE_INTERVAL;
  private int purgeBatchSize = DEFAULT_PURGE_BATCH_SIZE;
  private boolean notifySettled;
  private boolean deferClaimFlush;
  private boolean sequenceKeys;
  private String listenUrl;
  private String listenUsername;
  private String listenPassword;

  private StoreBuilder(
      Kind kind, DataSource dataSource, String jdbcUrl, String username, String password) {
    this.kind = kind;
    this.dataSource = dataSource;
    this.jdbcUrl = jdbcUrl;
    this.username = username;
    this.password = password;
  }

  /** A store held in this process's memory: for tests and single-node use. */
  public static StoreBuilder memory() {
    return new StoreBuilder(Kind.MEMORY, null, null, null, null);
  }

  /**
   * A PostgreSQL store on a data source that the caller owns (and closes).
   *
   * @throws NullPointerException if {@code dataSource} is null
   */
  public static StoreBuilder postgres(DataSource dataSource) {
    return new StoreBuilder(
        Kind.POSTGRES_DATA_SOURCE, Objects.requireNonNull(dataSource, "dataSource"), null, null,
        null);
  }

  /**
   * A PostgreSQL store that opens its own connection pool, closed with the store.
   *
   * @param jdbcUrl a {@code jdbc:postgresql:} URL
   * @param username the user, or null to take it from the URL
   * @param password the password, or null
   * @throws IllegalArgumentException if the URL is not a PostgreSQL JDBC URL
   */
  public static StoreBuilder postgres(String jdbcUrl, String username, String password) {
    Objects.requireNonNull(jdbcUrl, "jdbcUrl");
    if (!jdbcUrl.startsWith("jdbc:postgresql:")) {
      throw new IllegalArgumentException(
          "JDBC URL must start with jdbc:postgresql:, was '" + jdbcUrl + "'");
    }
    return new StoreBuilder(Kind.POSTGRES_URL, null, jdbcUrl, username, password);
  }

  /**
   * A clock for tests, whose advance moves the store's time forward. Without one, a PostgreSQL
   * store takes every time from the database's clock, so that nodes whose clocks disagree still
   * agree on leases and expiry; the memory store uses the system clock.
   */
  public StoreBuilder clock(Clock clock) {
    this.clock = Objects.requireNonNull(clock, "clock");
    return this;
  }

  /** How long a completed key is kept. Default 24 hours. */
  public StoreBuilder ttl(Duration ttl) {
    this.ttl = positive("ttl", ttl);
    return this;
  }

  /** How long a claim holds a key without being renewed. Default 30 seconds. */
  public StoreBuilder lease(Duration lease) {
    this.lease = positive("lease", lease);
    return this;
  }

  /** Where the keys live (PostgreSQL only). Default {@code public.idempotency_keys}. */
  public StoreBuilder tableName(TableName tableName) {
    this.tableName = Objects.requireNonNull(tableName, "tableName");
    return this;
  }

  /** Whether {@link #build()} runs the migrations (PostgreSQL only). Default true. */
  public StoreBuilder migrate(boolean migrate) {
    this.migrate = migrate;
    return this;
  }

  /** Connections in the pool the store opens itself. Default 10. */
  public StoreBuilder poolSize(int poolSize) {
    if (poolSize < 1) {
      throw new IllegalArgumentException("pool size must be at least 1, was " + poolSize);
    }
    this.poolSize = poolSize;
    return this;
  }

  /**
   * Longest wait for a connection from the pool the store opens itself, and the bound on every
   * store statement (at least a second), on a handed-in {@code DataSource} too. Default 2 seconds.
   */
  public StoreBuilder connectTimeout(Duration connectTimeout) {
    this.connectTimeout = positive("connect timeout", connectTimeout);
    if (connectTimeout.toMillis() < 250) {
      throw new IllegalArgumentException(
          "connect timeout must be at least 250ms, was " + connectTimeout.toMillis() + "ms");
    }
    return this;
  }

  /**
   * The bound on the heap that completed responses held in this process retain, counting their
   * keys, fingerprints and the cache's own entries. Default 64 MiB.
   *
   * <p>PostgreSQL: the size of the cache of completed responses in front of the database; 0 turns
   * the cache off. An entry evicted from the cache is read from the database again.
   *
   * <p>Memory store: the bound on the completed keys the store itself holds. Past it, the completed
   * keys least likely to be used again are evicted, and a retry of an evicted key runs the request
   * again, as for a new key; keys in progress are never evicted. The memory store is for tests and
   * single nodes. 0 leaves it unbounded.
   *
   * @throws IllegalArgumentException if {@code cacheMaxBytes} is negative
   */
  public StoreBuilder cacheMaxBytes(long cacheMaxBytes) {
    if (cacheMaxBytes < 0) {
      throw new IllegalArgumentException("cache max bytes must be >= 0, was " + cacheMaxBytes);
    }
    this.cacheMaxBytes = cacheMaxBytes;
    return this;
  }

  /** Interval between background purges; {@link Duration#ZERO} disables them. Default 1 min. */
  public StoreBuilder purgeInterval(Duration purgeInterval) {
    Objects.requireNonNull(purgeInterval, "purgeInterval");
    if (purgeInterval.isNegative()) {
      throw new IllegalArgumentException("purge interval must not be negative");
    }
    this.purgeInterval = purgeInterval;
    return this;
  }

  /**
   * Whether completions and releases notify every node that {@link IdempotencyStore#watch}es the
   * key (PostgreSQL: {@code pg_notify} in a short transaction of its own, once the change has
   * committed). Turn it on on every node where requests wait for one another; it costs a
   * statement per completion. Default false.
   */
  public StoreBuilder notifySettled(boolean notifySettled) {
    this.notifySettled = notifySettled;
    return this;
  }

  /**
   * Whether a claim's commit may return before it reaches the disk (PostgreSQL's {@code
   * synchronous_commit} off for the claim alone), saving a disk flush per new key. Safe when
   * every effect of a request is committed later with a durable commit, as in transactional mode:
   * the write-ahead log is flushed in order, so that commit makes the claim durable too, and a
   * crash before it loses the claim together with everything the request did. Without
   * transactional mode, leave it off: a handler's effects elsewhere could outlive a lost claim.
   * Default false.
   */
  public StoreBuilder deferClaimFlush(boolean deferClaimFlush) {
    this.deferClaimFlush = deferClaimFlush;
    return this;
  }

  /**
   * Whether keys are sequence numbers (SPEC §13): non-negative decimal integers of at most 19
   * digits that grow per scope. The store then keeps, per scope, a floor (the highest key whose
   * completed record the purge removed) and answers {@link ClaimResult.KeyExpired} to a key at
   * or below it that has no record, however late it comes; a claim of any other key throws
   * {@link IllegalArgumentException}. Every store on one table must agree on it: the first
   * PostgreSQL store on a table records it, and {@link #build()} refuses a store that differs.
   * Default false.
   */
  public StoreBuilder sequenceKeys(boolean sequenceKeys) {
    this.sequenceKeys = sequenceKeys;
    return this;
  }

  /**
   * A direct JDBC URL to PostgreSQL for the node's one listening connection, when the store's
   * other connections go through a transaction pooler (PgBouncer with {@code
   * pool_mode=transaction}), which cannot keep a session's {@code LISTEN}: waiting requests are
   * then woken when the key they wait for settles, on any node. The user and password are those
   * given, else the pool's. Default none: the listener uses the node's own connections.
   *
   * @throws IllegalArgumentException if the URL is not a PostgreSQL JDBC URL
   */
  public StoreBuilder listenUrl(String jdbcUrl, String username, String password) {
    if (jdbcUrl != null && !jdbcUrl.startsWith("jdbc:postgresql:")) {
      throw new IllegalArgumentException(
          "listen URL must start with jdbc:postgresql:, was '" + jdbcUrl + "'");
    }
    this.listenUrl = jdbcUrl;
    this.listenUsername = username;
    this.listenPassword = password;
    return this;
  }

  /** Keys deleted per purge batch. Default 1000. */
  public StoreBuilder purgeBatchSize(int purgeBatchSize) {
    if (purgeBatchSize < 1) {
      throw new IllegalArgumentException(
          "purge batch size must be at least 1, was " + purgeBatchSize);
    }
    this.purgeBatchSize = purgeBatchSize;
    return this;
  }

  /**
   * Builds the store; for PostgreSQL, opens the pool and runs the migrations if asked to.
   *
   * @throws StoreUnavailableException if the database cannot be reached or migrated
   * @throws ForeignTableException if the table name is taken by a table that is not idemkey's
   * @throws KeysModeMismatchException if the table is used with the other keys ({@link
   *     #sequenceKeys}); the message says how to move it
   * @throws IdempotencyException if the table exists without the table where its keys are
   *     recorded (migrations run by hand, without V5)
   */
  public IdempotencyStore build() {
    IdempotencyStore store;
    if (kind == Kind.MEMORY) {
      Clock memoryClock = clock == null ? Clock.systemUTC() : clock;
      MemoryStore keys = new MemoryStore(memoryClock, ttl, lease, cacheMaxBytes, sequenceKeys);
      store = new SteppedStore(keys, new MemoryStepStore(keys, memoryClock, ttl));
    } else {
      store = buildPostgres();
    }
    return purgeInterval.isZero() ? store : new PurgeSchedule(store, purgeInterval);
  }

  private IdempotencyStore buildPostgres() {
    HikariDataSource ownPool = kind == Kind.POSTGRES_URL ? openPool() : null;
    DataSource source = ownPool != null ? ownPool : dataSource;
    boolean wakesWaiters;
    try {
      // Before the migrations, whose prepared statements would fail behind a transaction pooler
      // with a message that does not say why.
      wakesWaiters = checkTransactionPooler(source);
      if (migrate) {
        Migrations.migrate(source, tableName);
      }
    } catch (ForeignTableException | TransactionPoolerException e) {
      // Not a database that is away: a retry cannot help, so it is not StoreUnavailable.
      if (ownPool != null) {
        ownPool.close();
      }
      throw e;
    } catch (RuntimeException e) {
      if (ownPool != null) {
        ownPool.close();
      }
      throw new StoreUnavailableException(
          "could not migrate " + tableName + ": " + e.getMessage(), e);
    }
    boolean agreed = agreeOnKeys(source, ownPool);
    IdempotencyStore store =
        new PostgresStore(
            source, tableName, clock, ttl, lease, statementTimeout(), purgeBatchSize,
            notifySettled, deferClaimFlush, sequenceKeys, listenSource(source), wakesWaiters,
            ownPool);
    IdempotencyStore keys =
        cacheMaxBytes == 0 ? store : new CachingStore(store, cacheMaxBytes, ttl, lease, clock);
    return new SteppedStore(
        new KeysModeCheck(keys, source, tableName, sequenceKeys, statementTimeout(), agreed),
        store.steps());
  }

  /**
   * Checks that this store's keys are the table's, recording them if it is the table's first
   * (SPEC §13). Without migrations, a database that cannot be reached defers the check to the
   * first claim or purge ({@link KeysModeCheck}), as such a store starts while its database is
   * down, or its table does not exist yet. A keys table without its settings table (migrations
   * run by hand, without V5) fails at once.
   *
   * @return whether the check was made
   * @throws KeysModeMismatchException if the table's keys are the other ones
   */
  private boolean agreeOnKeys(DataSource source, HikariDataSource ownPool) {
    try {
      TableKeysMode.agree(source, tableName, sequenceKeys, statementTimeout());
      return true;
    } catch (StoreUnavailableException e) {
      if (!migrate) {
        return false;
      }
      if (ownPool != null) {
        ownPool.close();
      }
      throw e;
    } catch (KeysModeMismatchException | TableKeysMode.MissingSettingsException e) {
      if (ownPool != null) {
        ownPool.close();
      }
      throw e;
    }
  }

  /**
   * Looks whether {@code source} reaches PostgreSQL through a transaction pooler (issue 27), and
   * refuses one the store cannot work through. Returns whether this node can hear settled keys.
   * A database that does not answer now is looked at no further: the store starts, as it does
   * without one, and works through a pooler only if configured for it.
   *
   * @throws TransactionPoolerException if the connections would prepare statements on the server
   */
  private boolean checkTransactionPooler(DataSource source) {
    try (Connection connection =
        StoreConnections.bounded(source, StoreConnections.unwrapHikari(source), statementTimeout().toMillis())) {
      return TransactionPooler.check(connection, listenUrl != null);
    } catch (SQLException e) {
      return true;
    }
  }

  /** The listener's own data source, on {@link #listenUrl}; null for the node's connections. */
  private DataSource listenSource(DataSource source) {
    if (listenUrl == null) {
      return null;
    }
    HikariDataSource hikari = StoreConnections.unwrapHikari(source); // null: the credentials given, or the URL's
    org.postgresql.ds.PGSimpleDataSource direct = new org.postgresql.ds.PGSimpleDataSource();
    direct.setURL(listenUrl);
    String user = listenUsername != null ? listenUsername
        : username != null ? username : hikari != null ? hikari.getUsername() : null;
    String secret = listenPassword != null ? listenPassword
        : password != null ? password : hikari != null ? hikari.getPassword() : null;
    if (user != null) {
      direct.setUser(user);
    }
    if (secret != null) {
      direct.setPassword(secret);
    }
    long seconds = Math.max(1, connectTimeout.toSeconds());
    direct.setConnectTimeout((int) seconds);
    direct.setLoginTimeout((int) seconds);
    direct.setApplicationName("idemkey-listener");
    return direct;
  }

  private HikariDataSource openPool() {
    HikariConfig pool = new HikariConfig();
    pool.setPoolName("idemkey");
    pool.setJdbcUrl(jdbcUrl);
    pool.setUsername(username);
    pool.setPassword(password);
    pool.setMaximumPoolSize(poolSize);
    pool.setConnectionTimeout(connectTimeout.toMillis());
    pool.setValidationTimeout(Math.min(connectTimeout.toMillis(), 1000));
    // Start even while the database is down; calls fail fast until it is back.
    pool.setInitializationFailTimeout(-1);
    long seconds = Math.max(1, connectTimeout.toSeconds());
    pool.addDataSourceProperty("connectTimeout", String.valueOf(seconds));
    pool.addDataSourceProperty("loginTimeout", String.valueOf(seconds));
    // Each store call bounds its own statements too (PostgresStore); this covers the pool's own.
    pool.addDataSourceProperty(
        "socketTimeout", String.valueOf(Math.max(1, statementTimeout().toSeconds())));
    return new HikariDataSource(pool);
  }

  /**
   * The longest a store statement may take before the call fails (SPEC §8: a database that hangs
   * answers store-unavailable within a few seconds): the connect timeout again, at least a
   * second.
   */
  private Duration statementTimeout() {
    return connectTimeout.compareTo(Duration.ofSeconds(1)) < 0 ? Duration.ofSeconds(1) : connectTimeout;
  }

  private static Duration positive(String what, Duration duration) {
    Objects.requireNonNull(duration, what);
    if (duration.isNegative() || duration.isZero()) {
      throw new IllegalArgumentException(what + " must be positive, was " + duration);
    }
    return duration;
  }
}
