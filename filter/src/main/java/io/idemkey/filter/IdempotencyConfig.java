package io.idemkey.filter;

import io.idemkey.migrations.ForeignTableException;
import io.idemkey.migrations.TableName;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.KeysModeMismatchException;
import io.idemkey.store.StoreBuilder;
import io.idemkey.store.TransactionPoolerException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import java.util.Set;
import java.util.function.BiConsumer;
import java.util.regex.Pattern;

/**
 * The filter's configuration (SPEC §10): one immutable object, built by {@link Builder}, which
 * validates each value. Properties from every source go through the same builder.
 *
 * <p>Immutable and thread-safe.
 */
public final class IdempotencyConfig {

  /** Whether a duplicate of a request in flight is rejected or waits for the first. */
  public enum InFlight { REJECT, WAIT }

  /** What covered requests get when the store cannot be reached. */
  public enum OnStoreFailure { FAIL_CLOSED, FAIL_OPEN }

  /** Where keys are kept. */
  public enum StoreType { POSTGRES, MEMORY }

  /**
   * What keys are (SPEC §13): any client-chosen text, forgotten after the ttl ({@code OPAQUE}), or
   * numbers that grow per scope, refused however late a duplicate comes ({@code SEQUENCE}).
   */
  public enum Keys { OPAQUE, SEQUENCE }

  /** Whose key it is (SPEC §3). */
  public record Scope(Kind kind, String headerName) {
    /** The kinds of scope. */
    public enum Kind { PRINCIPAL, HEADER, NONE }

    /**
     * @throws IllegalArgumentException if a header scope has no valid header name, or another has one
     */
    public Scope {
      Objects.requireNonNull(kind, "kind");
      if ((kind == Kind.HEADER) != (headerName != null)) {
        throw new IllegalArgumentException("a header name goes with, and only with, header scope");
      }
      if (headerName != null && !TOKEN.matcher(headerName).matches()) {
        throw new IllegalArgumentException("'" + headerName + "' is not a header name");
      }
    }

    public static Scope principal() {
      return new Scope(Kind.PRINCIPAL, null);
    }

    public static Scope header(String name) {
      return new Scope(Kind.HEADER, name);
    }

    public static Scope none() {
      return new Scope(Kind.NONE, null);
    }

    static Scope parse(String value) {
      String text = value.trim();
      if (text.equals("principal")) {
        return principal();
      }
      if (text.equals("none")) {
        return none();
      }
      if (text.startsWith("header:")) {
        return header(text.substring("header:".length()));
      }
      throw new IllegalArgumentException(
          "'" + value + "' is not a scope (principal, header:NAME or none)");
    }

    @Override
    public String toString() {
      return kind == Kind.HEADER ? "header:" + headerName : kind.name().toLowerCase(Locale.ROOT);
    }
  }

  static final String PREFIX = "idempotency.";
  private static final Pattern TOKEN = Pattern.compile("[!#$%&'*+.^_`|~0-9A-Za-z-]+");

  /** The shortest lease: renewed every lease/3, it must leave time for the renewal to run. */
  static final Duration MIN_LEASE = Duration.ofSeconds(1);

  /**
   * The longest ttl: now + ttl must stay far inside PostgreSQL's timestamptz range (and
   * {@link java.time.Instant}'s), and a key kept longer than ten years is a mistake.
   */
  static final Duration MAX_TTL = Duration.ofDays(3650);

  /** The longest {@code wait-timeout}. */
  static final Duration MAX_WAIT_TIMEOUT = Duration.ofHours(1);

  /**
   * Standard headers: request headers, headers that describe the content or steer caches, and the
   * headers never stored (hop-by-hop, Date, Set-Cookie, Server). The replay marker must not be
   * one (a replay that set it would change what the stored response says), nor the key header
   * (clients send them for their own purposes), Idempotency-Key aside. Lower case.
   */
  private static final Set<String> RESERVED_REPLAY_HEADERS = reservedReplayHeaders();

  private static Set<String> reservedReplayHeaders() {
    Set<String> names = new LinkedHashSet<>(ResponseCapture.NEVER_STORED);
    names.addAll(List.of(
        // content and representation
        "content-type", "content-length", "content-encoding", "content-language",
        "content-location", "content-range", "content-disposition", "digest",
        // response control and caching
        "location", "cache-control", "etag", "last-modified", "expires", "pragma", "vary", "age",
        "allow", "retry-after", "accept-ranges", "www-authenticate", "link",
        // request headers
        "host", "authorization", "cookie", "accept", "accept-encoding", "accept-language",
        "user-agent", "origin", "referer", "expect", "range", "if-match", "if-none-match",
        "if-modified-since", "if-unmodified-since", "if-range", "forwarded", "idempotency-key"));
    return Set.copyOf(names);
  }

  /** Every property, its key written once, and how a text value reaches the builder. */
  private enum Property {
    HEADER("header", (b, v) -> b.header(v.trim())),
    METHODS("methods", (b, v) -> b.methods(ConfigValues.list(v))),
    INCLUDE_PATHS("include-paths", (b, v) -> b.includePaths(ConfigValues.list(v))),
    EXCLUDE_PATHS("exclude-paths", (b, v) -> b.excludePaths(ConfigValues.list(v))),
    REQUIRED("required", (b, v) -> b.required(ConfigValues.bool(v))),
    SCOPE("scope", (b, v) -> b.scope(Scope.parse(v))),
    FINGERPRINT_HEADERS(
        "fingerprint.headers", (b, v) -> b.fingerprintHeaders(ConfigValues.list(v))),
    TTL("ttl", (b, v) -> b.ttl(ConfigValues.duration(v))),
    LEASE("lease", (b, v) -> b.lease(ConfigValues.duration(v))),
    ON_IN_FLIGHT("on-in-flight", (b, v) -> b.onInFlight(parseEnum(InFlight.class, v))),
    WAIT_TIMEOUT("wait-timeout", (b, v) -> b.waitTimeout(ConfigValues.duration(v))),
    MAX_WAITERS("max-waiters", (b, v) -> b.maxWaiters(ConfigValues.integer(v))),
    RELEASE_STATUSES("release-statuses", (b, v) -> b.releaseStatuses(v)),
    REPLAY_HEADER("replay-header", (b, v) -> b.replayHeader(v.trim())),
    EXCLUDE_RESPONSE_HEADERS(
        "exclude-response-headers", (b, v) -> b.excludeResponseHeaders(ConfigValues.list(v))),
    MAX_REQUEST_BYTES("max-request-bytes", (b, v) -> b.maxRequestBytes(ConfigValues.size(v))),
    MAX_RESPONSE_BYTES("max-response-bytes", (b, v) -> b.maxResponseBytes(ConfigValues.size(v))),
    ON_STORE_FAILURE(
        "on-store-failure", (b, v) -> b.onStoreFailure(parseEnum(OnStoreFailure.class, v))),
    TRANSACTIONAL("transactional", (b, v) -> b.transactional(ConfigValues.bool(v))),
    KEYS("keys", (b, v) -> b.keys(parseEnum(Keys.class, v))),
    COMPLETION_TIMEOUT(
        "completion-timeout", (b, v) -> b.completionTimeout(ConfigValues.duration(v))),
    STORE("store", (b, v) -> b.store(parseEnum(StoreType.class, v))),
    JDBC_URL("jdbc.url", (b, v) -> b.jdbcUrl(v.trim())),
    JDBC_USERNAME("jdbc.username", (b, v) -> b.jdbcUsername(v)),
    JDBC_PASSWORD("jdbc.password", (b, v) -> b.jdbcPassword(v)),
    JDBC_LISTEN_URL("jdbc.listen-url", (b, v) -> b.jdbcListenUrl(v.trim())),
    JDBC_POOL_SIZE("jdbc.pool-size", (b, v) -> b.jdbcPoolSize(ConfigValues.integer(v))),
    JDBC_CONNECT_TIMEOUT(
        "jdbc.connect-timeout", (b, v) -> b.jdbcConnectTimeout(ConfigValues.duration(v))),
    SCHEMA("schema", (b, v) -> b.schema(v.trim())),
    TABLE("table", (b, v) -> b.table(v.trim())),
    MIGRATE("migrate", (b, v) -> b.migrate(ConfigValues.bool(v))),
    CACHE_MAX_BYTES("cache.max-bytes", (b, v) -> b.cacheMaxBytes(ConfigValues.size(v))),
    PURGE_INTERVAL("purge.interval", (b, v) -> b.purgeInterval(ConfigValues.duration(v))),
    PURGE_BATCH_SIZE("purge.batch-size", (b, v) -> b.purgeBatchSize(ConfigValues.integer(v)));

    final String key;
    final BiConsumer<Builder, String> apply;

    Property(String name, BiConsumer<Builder, String> apply) {
      this.key = PREFIX + name;
      this.apply = apply;
    }

    /** The environment variable: upper case, '.' and '-' become '_'. */
    String environmentVariable() {
      return key.toUpperCase(Locale.ROOT).replace('.', '_').replace('-', '_');
    }

    static Property of(String name) {
      String key = name.startsWith(PREFIX) ? name : PREFIX + name;
      for (Property property : values()) {
        if (property.key.equals(key)) {
          return property;
        }
      }
      return null;
    }
  }

  private static <E extends Enum<E>> E parseEnum(Class<E> type, String value) {
    String name = value.trim().toUpperCase(Locale.ROOT).replace('-', '_');
    for (E constant : type.getEnumConstants()) {
      if (constant.name().equals(name)) {
        return constant;
      }
    }
    StringBuilder allowed = new StringBuilder();
    for (E constant : type.getEnumConstants()) {
      allowed.append(allowed.length() == 0 ? "" : ", ").append(display(constant));
    }
    throw new IllegalArgumentException("'" + value + "' is not one of " + allowed);
  }

  private static String display(Enum<?> constant) {
    return constant.name().toLowerCase(Locale.ROOT).replace('_', '-');
  }

  private final String header;
  private final Set<String> methods;
  private final PathPatterns includePaths;
  private final PathPatterns excludePaths;
  private final boolean required;
  private final Scope scope;
  private final List<String> fingerprintHeaders;
  private final Duration ttl;
  private final Duration lease;
  private final InFlight onInFlight;
  private final Duration waitTimeout;
  private final int maxWaiters;
  private final String releaseStatusSpec;
  private final boolean[] releaseStatuses;
  private final String replayHeader;
  private final Set<String> excludeResponseHeaders;
  private final long maxRequestBytes;
  private final long maxResponseBytes;
  private final OnStoreFailure onStoreFailure;
  private final boolean transactional;
  private final Keys keys;
  private final Duration completionTimeout;
  private final StoreType store;
  private final String jdbcUrl;
  private final String jdbcUsername;
  private final String jdbcPassword;
  private final String jdbcListenUrl;
  private final int jdbcPoolSize;
  private final Duration jdbcConnectTimeout;
  private final TableName tableName;
  private final boolean migrate;
  private final long cacheMaxBytes;
  private final Duration purgeInterval;
  private final int purgeBatchSize;

  private IdempotencyConfig(Builder b) {
    this.header = b.header;
    this.methods = Set.copyOf(b.methods);
    this.includePaths = b.includePaths;
    this.excludePaths = b.excludePaths;
    this.required = b.required;
    this.scope = b.scope;
    this.fingerprintHeaders = List.copyOf(b.fingerprintHeaders);
    this.ttl = b.ttl;
    this.lease = b.lease;
    this.onInFlight = b.onInFlight;
    this.waitTimeout = b.waitTimeout;
    this.maxWaiters = b.maxWaiters;
    this.releaseStatusSpec = b.releaseStatusSpec;
    this.releaseStatuses = b.releaseStatuses.clone();
    this.replayHeader = b.replayHeader;
    this.excludeResponseHeaders = Set.copyOf(b.excludeResponseHeaders);
    this.maxRequestBytes = b.maxRequestBytes;
    this.maxResponseBytes = b.maxResponseBytes;
    this.onStoreFailure = b.onStoreFailure;
    this.transactional = b.transactional;
    this.keys = b.keys;
    this.completionTimeout = b.completionTimeout;
    this.store = b.store;
    this.jdbcUrl = b.jdbcUrl;
    this.jdbcUsername = b.jdbcUsername;
    this.jdbcPassword = b.jdbcPassword;
    this.jdbcListenUrl = b.jdbcListenUrl;
    this.jdbcPoolSize = b.jdbcPoolSize;
    this.jdbcConnectTimeout = b.jdbcConnectTimeout;
    this.tableName = b.tableName();
    this.migrate = b.migrate;
    this.cacheMaxBytes = b.cacheMaxBytes;
    this.purgeInterval = b.purgeInterval;
    this.purgeBatchSize = b.purgeBatchSize;
  }

  /**
   * The name of every property, with the {@code idempotency.} prefix, in the order of SPEC §10:
   * what {@link Builder#set(String, String)} accepts. For integrations that read properties from
   * a source of their own (Spring's Environment, say) and pass each one to the builder.
   */
  public static List<String> propertyNames() {
    List<String> names = new java.util.ArrayList<>();
    for (Property property : Property.values()) {
      names.add(property.key);
    }
    return List.copyOf(names);
  }

  /** A builder holding every default of SPEC §10. */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * The configuration from every source, later ones overriding earlier (SPEC §10): defaults,
   * {@code idempotency.properties} on the classpath, {@code initParams}, Java system properties,
   * environment variables ({@code IDEMPOTENCY_JDBC_URL} for {@code idempotency.jdbc.url}).
   *
   * @throws InvalidConfigurationException naming the property and its source on a bad value
   */
  public static IdempotencyConfig load(Map<String, String> initParams) {
    return load(classpathProperties(), initParams, System.getProperties(), System.getenv());
  }

  static IdempotencyConfig load(
      Properties classpathFile,
      Map<String, String> initParams,
      Properties system,
      Map<String, String> environment) {
    Builder builder = builder();
    builder.setAll(asMap(classpathFile), "idempotency.properties", true);
    builder.setAll(initParams, "filter init-param", false);
    builder.setAll(asMap(system), "system property", true);
    for (Property property : Property.values()) {
      String value = environment.get(property.environmentVariable());
      if (value != null) {
        builder.set(property, value, "environment variable " + property.environmentVariable());
      }
    }
    return builder.build();
  }

  private static Map<String, String> asMap(Properties properties) {
    Map<String, String> map = new LinkedHashMap<>();
    for (String name : properties.stringPropertyNames()) {
      map.put(name, properties.getProperty(name));
    }
    return map;
  }

  private static Properties classpathProperties() {
    Properties properties = new Properties();
    ClassLoader loader = Thread.currentThread().getContextClassLoader();
    if (loader == null) {
      loader = IdempotencyConfig.class.getClassLoader();
    }
    try (InputStream in = loader.getResourceAsStream("idempotency.properties")) {
      if (in != null) {
        properties.load(in);
      }
    } catch (IOException e) {
      throw new UncheckedIOException("could not read idempotency.properties", e);
    }
    return properties;
  }

  public String header() {
    return header;
  }

  public Set<String> methods() {
    return methods;
  }

  public boolean required() {
    return required;
  }

  public Scope scope() {
    return scope;
  }

  public List<String> fingerprintHeaders() {
    return fingerprintHeaders;
  }

  public Duration ttl() {
    return ttl;
  }

  public Duration lease() {
    return lease;
  }

  public InFlight onInFlight() {
    return onInFlight;
  }

  public Duration waitTimeout() {
    return waitTimeout;
  }

  /** The most duplicates that wait at once on this node (on-in-flight=wait); beyond, 409. */
  public int maxWaiters() {
    return maxWaiters;
  }

  public String replayHeader() {
    return replayHeader;
  }

  /** The response headers never stored, lower case. */
  public Set<String> excludeResponseHeaders() {
    return excludeResponseHeaders;
  }

  public long maxRequestBytes() {
    return maxRequestBytes;
  }

  public long maxResponseBytes() {
    return maxResponseBytes;
  }

  public OnStoreFailure onStoreFailure() {
    return onStoreFailure;
  }

  /**
   * Whether the handler runs in a transaction that the filter opens, and the completion is
   * written in it, so that one commit makes the handler's writes and the stored response durable
   * together (SPEC §6).
   */
  public boolean transactional() {
    return transactional;
  }

  /** What keys are: opaque (default) or sequence numbers (SPEC §13). */
  public Keys keys() {
    return keys;
  }

  /**
   * In non-transactional mode, how long the filter keeps retrying (with backoff, renewing the
   * lease) to store a response while the database is away, before it answers 503. Positive and at
   * most {@link #ttl()}.
   */
  public Duration completionTimeout() {
    return completionTimeout;
  }

  public StoreType store() {
    return store;
  }

  public String jdbcUrl() {
    return jdbcUrl;
  }

  /** The most connections a pool that this configuration sizes may open ({@code jdbc.pool-size}). */
  public int jdbcPoolSize() {
    return jdbcPoolSize;
  }

  /** The longest wait for a connection ({@code jdbc.connect-timeout}); at least 250 ms. */
  public Duration jdbcConnectTimeout() {
    return jdbcConnectTimeout;
  }

  public TableName tableName() {
    return tableName;
  }

  /** Whether a request with this method and path (inside the context) is covered (SPEC §1). */
  public boolean covers(String method, String path) {
    return coversMethod(method) && coversPath(path);
  }

  /** The first, cheap half of {@link #covers}: most uncovered requests stop here. */
  boolean coversMethod(String method) {
    return methods.contains(method);
  }

  boolean coversPath(String path) {
    return includePaths.matches(path) && !excludePaths.matches(path);
  }

  /** Whether a response with this status releases the key instead of being stored. */
  public boolean isReleaseStatus(int status) {
    return status >= 0 && status < releaseStatuses.length && releaseStatuses[status];
  }

  /**
   * A store builder for {@link #store()}: in memory, or PostgreSQL on {@code jdbc.*}, with
   * {@link #applyTo} applied.
   *
   * @throws InvalidConfigurationException if the store is PostgreSQL and no JDBC URL is set
   */
  public StoreBuilder storeBuilder() {
    if (store == StoreType.MEMORY) {
      return applyTo(StoreBuilder.memory());
    }
    if (jdbcUrl == null) {
      throw new InvalidConfigurationException(
          Property.JDBC_URL.key + " is required when " + Property.STORE.key + "=postgres (set "
              + Property.JDBC_URL.environmentVariable() + ", or "
              + Property.STORE.key + "=memory)");
    }
    return applyTo(
        StoreBuilder.postgres(jdbcUrl, jdbcUsername, jdbcPassword).poolSize(jdbcPoolSize));
  }

  /**
   * Builds the store from {@code builder}; when the table name is taken by a table that is not
   * idemkey's, or the table is used with other keys, the error names the properties to change.
   *
   * @throws InvalidConfigurationException naming {@code idempotency.schema} and {@code
   *     idempotency.table} if the table exists and is not an idemkey table, or naming {@code
   *     idempotency.keys} if the table is used with the other keys (SPEC §13)
   * @throws io.idemkey.store.StoreUnavailableException if the database cannot be reached or
   *     migrated
   */
  public IdempotencyStore buildStore(StoreBuilder builder) {
    try {
      return builder.build();
    } catch (ForeignTableException e) {
      throw new InvalidConfigurationException(Property.SCHEMA.key + "/" + Property.TABLE.key
          + " (" + e.tableName() + "): " + e.getMessage(), e);
    } catch (TransactionPoolerException e) {
      throw new InvalidConfigurationException(Property.JDBC_URL.key + ": " + e.getMessage(), e);
    } catch (KeysModeMismatchException e) {
      String theirs = e.tableSequenceKeys() ? "sequence" : "opaque";
      throw new InvalidConfigurationException(Property.KEYS.key + ": " + e.getMessage()
          + ". Set " + Property.KEYS.key + "=" + theirs + " to join the table, or "
          + Property.TABLE.key + " to another table", e);
    }
  }

  /**
   * Sets this configuration's key lifetime, kind of keys, table, migration, cache, purge and time
   * bound ({@code jdbc.connect-timeout}, which bounds every store statement, on a handed-in
   * {@code DataSource} too) on {@code builder}.
   */
  public StoreBuilder applyTo(StoreBuilder builder) {
    return builder
        .connectTimeout(jdbcConnectTimeout)
        .ttl(ttl)
        .lease(lease)
        .tableName(tableName)
        .migrate(migrate)
        .cacheMaxBytes(cacheMaxBytes)
        .purgeInterval(purgeInterval)
        .purgeBatchSize(purgeBatchSize)
        // Always: a duplicate may wait on another node whatever this node's on-in-flight.
        .notifySettled(true)
        .deferClaimFlush(transactional)
        .listenUrl(jdbcListenUrl, jdbcUsername, jdbcPassword)
        .sequenceKeys(keys == Keys.SEQUENCE);
  }

  /**
   * The resolved configuration on one line, the password masked, sets in sorted order (the same
   * line on every run); an unset {@code jdbc.*} value is empty.
   */
  @Override
  public String toString() {
    return "idempotency config: header=" + header
        + ", methods=" + String.join(",", new java.util.TreeSet<>(methods))
        + ", include-paths=" + includePaths + ", exclude-paths=" + excludePaths
        + ", required=" + required + ", scope=" + scope
        + ", fingerprint.headers=" + String.join(",", fingerprintHeaders)
        + ", ttl=" + ttl + ", lease=" + lease + ", on-in-flight=" + display(onInFlight)
        + ", wait-timeout=" + waitTimeout + ", max-waiters=" + maxWaiters + ", release-statuses=" + releaseStatusSpec
        + ", replay-header=" + replayHeader
        + ", exclude-response-headers="
        + String.join(",", new java.util.TreeSet<>(excludeResponseHeaders))
        + ", max-request-bytes=" + maxRequestBytes + ", max-response-bytes=" + maxResponseBytes
        + ", on-store-failure=" + display(onStoreFailure) + ", transactional=" + transactional
        + ", keys=" + display(keys)
        + ", completion-timeout=" + completionTimeout + ", store=" + display(store)
        + ", jdbc.url=" + (jdbcUrl == null ? "" : jdbcUrl)
        + ", jdbc.username=" + (jdbcUsername == null ? "" : jdbcUsername)
        + ", jdbc.password=" + (jdbcPassword == null ? "" : "****")
        + ", jdbc.listen-url=" + (jdbcListenUrl == null ? "" : jdbcListenUrl)
        + ", jdbc.pool-size=" + jdbcPoolSize + ", jdbc.connect-timeout=" + jdbcConnectTimeout
        + ", schema=" + tableName.schema() + ", table=" + tableName.table()
        + ", migrate=" + migrate + ", cache.max-bytes=" + cacheMaxBytes
        + ", purge.interval=" + purgeInterval + ", purge.batch-size=" + purgeBatchSize;
  }

  /** The builder of {@link IdempotencyConfig}: each setter validates its value. Not thread-safe. */
  public static final class Builder {
    private String header = "Idempotency-Key";
    private Set<String> methods = Set.of("POST", "PATCH");
    private PathPatterns includePaths = new PathPatterns(List.of("/*"));
    private PathPatterns excludePaths = new PathPatterns(List.of());
    private boolean required;
    private Scope scope = Scope.principal();
    private List<String> fingerprintHeaders = List.of("Content-Type");
    private Duration ttl = StoreBuilder.DEFAULT_TTL;
    private Duration lease = StoreBuilder.DEFAULT_LEASE;
    private InFlight onInFlight = InFlight.REJECT;
    private Duration waitTimeout = Duration.ofSeconds(10);
    private int maxWaiters = 1000;
    private String releaseStatusSpec;
    private boolean[] releaseStatuses;
    private String replayHeader = "Idempotent-Replayed";
    private Set<String> excludeResponseHeaders = Set.of("set-cookie");
    private long maxRequestBytes = 1L << 20;
    private long maxResponseBytes = 4L << 20;
    private OnStoreFailure onStoreFailure = OnStoreFailure.FAIL_CLOSED;
    private boolean transactional;
    private Keys keys = Keys.OPAQUE;
    private Duration completionTimeout = Duration.ofSeconds(30);
    private StoreType store = StoreType.POSTGRES;
    private String jdbcUrl;
    private String jdbcUsername;
    private String jdbcPassword;
    private String jdbcListenUrl;
    private int jdbcPoolSize = StoreBuilder.DEFAULT_POOL_SIZE;
    private Duration jdbcConnectTimeout = StoreBuilder.DEFAULT_CONNECT_TIMEOUT;
    private String schema = TableName.DEFAULT.schema();
    private String table = TableName.DEFAULT.table();
    private boolean migrate = true;
    private long cacheMaxBytes = StoreBuilder.DEFAULT_CACHE_MAX_BYTES;
    private Duration purgeInterval = StoreBuilder.DEFAULT_PURGE_INTERVAL;
    private int purgeBatchSize = StoreBuilder.DEFAULT_PURGE_BATCH_SIZE;

    private Builder() {
      releaseStatuses("408,429,5xx");
    }

    /**
     * Sets a property from its text value, as in a properties file.
     *
     * @param property the name, with or without the {@code idempotency.} prefix
     * @throws InvalidConfigurationException if the property is unknown or the value is bad
     */
    public Builder set(String property, String value) {
      Property known = Property.of(property);
      if (known == null) {
        throw new InvalidConfigurationException("unknown property " + property);
      }
      return set(known, value, null);
    }

    private Builder set(Property property, String value, String source) {
      try {
        property.apply.accept(this, Objects.requireNonNull(value, "value"));
        return this;
      } catch (IllegalArgumentException | NullPointerException e) {
        throw new InvalidConfigurationException(
            property.key + (source == null ? "" : " from " + source) + ": " + e.getMessage(), e);
      }
    }

    private void setAll(Map<String, String> values, String source, boolean onlyPrefixed) {
      for (Map.Entry<String, String> entry : values.entrySet()) {
        String name = entry.getKey();
        if (onlyPrefixed && !name.startsWith(PREFIX)) {
          continue;
        }
        Property property = Property.of(name);
        if (property == null) {
          throw new InvalidConfigurationException("unknown property " + name + " in " + source);
        }
        set(property, entry.getValue(), source);
      }
    }

    /**
     * @throws IllegalArgumentException if not a header name, or a standard request, content or
     *     hop-by-hop header, which clients and proxies send for their own purposes
     */
    public Builder header(String header) {
      token("header", header);
      String lower = header.toLowerCase(Locale.ROOT);
      if (!lower.equals("idempotency-key") && RESERVED_REPLAY_HEADERS.contains(lower)) {
        throw new IllegalArgumentException("'" + header + "' is a standard request, content or"
            + " hop-by-hop header that clients and proxies send for their own purposes; a key"
            + " needs a header of its own (as Idempotency-Key)");
      }
      this.header = header;
      return this;
    }

    /**
     * @throws IllegalArgumentException if a method is not a token, or there is none
     */
    public Builder methods(Collection<String> methods) {
      if (methods.isEmpty()) {
        throw new IllegalArgumentException(
            "must name at least one method: with none, the filter would cover no request");
      }
      Set<String> upper = new LinkedHashSet<>();
      for (String method : methods) {
        upper.add(token("method", method).toUpperCase(Locale.ROOT));
      }
      this.methods = upper;
      return this;
    }

    /**
     * @throws IllegalArgumentException if a pattern is not a servlet path pattern, or there is none
     */
    public Builder includePaths(List<String> patterns) {
      if (patterns.isEmpty()) {
        throw new IllegalArgumentException("must name at least one path pattern (/* for every"
            + " path): with none, the filter would cover no request");
      }
      this.includePaths = new PathPatterns(patterns);
      return this;
    }

    public Builder excludePaths(List<String> patterns) {
      this.excludePaths = new PathPatterns(patterns);
      return this;
    }

    public Builder required(boolean required) {
      this.required = required;
      return this;
    }

    public Builder scope(Scope scope) {
      this.scope = Objects.requireNonNull(scope, "scope");
      return this;
    }

    public Builder fingerprintHeaders(List<String> headers) {
      for (String name : headers) {
        token("header", name);
      }
      this.fingerprintHeaders = List.copyOf(headers);
      return this;
    }

    /**
     * @throws IllegalArgumentException if not positive, or over {@link #MAX_TTL} (ten years)
     */
    public Builder ttl(Duration ttl) {
      positive(ttl);
      if (ttl.compareTo(MAX_TTL) > 0) {
        throw new IllegalArgumentException("must be at most " + ConfigValues.format(MAX_TTL)
            + " (10 years), so that an expiry time stays a valid timestamp, was "
            + ConfigValues.format(ttl));
      }
      this.ttl = ttl;
      return this;
    }

    /**
     * @throws IllegalArgumentException if shorter than {@link #MIN_LEASE} (1s)
     */
    public Builder lease(Duration lease) {
      positive(lease);
      if (lease.compareTo(MIN_LEASE) < 0) {
        throw new IllegalArgumentException("must be at least " + ConfigValues.format(MIN_LEASE)
            + ", so that it can be renewed (every lease/3) before it runs out, was "
            + ConfigValues.format(lease));
      }
      this.lease = lease;
      return this;
    }

    public Builder onInFlight(InFlight onInFlight) {
      this.onInFlight = Objects.requireNonNull(onInFlight, "onInFlight");
      return this;
    }

    public Builder maxWaiters(int maxWaiters) {
      if (maxWaiters < 1 || maxWaiters > 1_000_000) {
        throw new IllegalArgumentException("must be 1 to 1000000, was " + maxWaiters);
      }
      this.maxWaiters = maxWaiters;
      return this;
    }

    /**
     * @throws IllegalArgumentException if not positive, or over {@link #MAX_WAIT_TIMEOUT}: longer
     *     than any client or proxy waits for an answer
     */
    public Builder waitTimeout(Duration waitTimeout) {
      positive(waitTimeout);
      if (waitTimeout.compareTo(MAX_WAIT_TIMEOUT) > 0) {
        throw new IllegalArgumentException("must be at most " + MAX_WAIT_TIMEOUT.toMinutes()
            + " minutes (longer than any client or proxy waits for an answer), was "
            + waitTimeout);
      }
      this.waitTimeout = waitTimeout;
      return this;
    }

    /**
     * Statuses that release the key, e.g. {@code 408,429,5xx}: codes or a class like 5xx.
     *
     * @throws IllegalArgumentException if an item is not a status or class, or covers a 2xx
     *     status: a released success would run the handler again on every retry
     */
    public Builder releaseStatuses(String spec) {
      boolean[] statuses = new boolean[600];
      for (String item : ConfigValues.list(spec)) {
        if (item.matches("[1-5]xx")) {
          int base = (item.charAt(0) - '0') * 100;
          for (int status = base; status < base + 100; status++) {
            statuses[status] = true;
          }
        } else if (item.matches("[1-5][0-9][0-9]")) {
          statuses[Integer.parseInt(item)] = true;
        } else {
          throw new IllegalArgumentException(
              "'" + item + "' is not a status (100-599) or a class (1xx-5xx)");
        }
        if (item.charAt(0) == '2') {
          throw new IllegalArgumentException("'" + item + "' covers success statuses (200-299):"
              + " a released success is not stored, so every retry would run the handler again");
        }
      }
      this.releaseStatusSpec = String.join(",", ConfigValues.list(spec));
      this.releaseStatuses = statuses;
      return this;
    }

    /**
     * @throws IllegalArgumentException if not a header name, or a request, content, caching or
     *     hop-by-hop header that a response already uses
     */
    public Builder replayHeader(String replayHeader) {
      token("header", replayHeader);
      if (RESERVED_REPLAY_HEADERS.contains(replayHeader.toLowerCase(Locale.ROOT))) {
        throw new IllegalArgumentException("'" + replayHeader + "' is a request, content or"
            + " hop-by-hop header, not a marker of its own (as Idempotent-Replayed is)");
      }
      this.replayHeader = replayHeader;
      return this;
    }

    public Builder excludeResponseHeaders(Collection<String> headers) {
      Set<String> lower = new LinkedHashSet<>();
      for (String name : headers) {
        lower.add(token("header", name).toLowerCase(Locale.ROOT));
      }
      this.excludeResponseHeaders = lower;
      return this;
    }

    public Builder maxRequestBytes(long bytes) {
      this.maxRequestBytes = positive(bytes, Integer.MAX_VALUE - 8);
      return this;
    }

    public Builder maxResponseBytes(long bytes) {
      this.maxResponseBytes = positive(bytes, Integer.MAX_VALUE - 8);
      return this;
    }

    public Builder onStoreFailure(OnStoreFailure onStoreFailure) {
      this.onStoreFailure = Objects.requireNonNull(onStoreFailure, "onStoreFailure");
      return this;
    }

    /** Whether the handler's writes and the completion are committed together (SPEC §6). */
    public Builder transactional(boolean transactional) {
      this.transactional = transactional;
      return this;
    }

    /** What keys are: opaque (default) or sequence numbers (SPEC §13). */
    public Builder keys(Keys keys) {
      this.keys = Objects.requireNonNull(keys, "keys");
      return this;
    }

    /**
     * How long, in non-transactional mode, the filter keeps trying to store a response while the
     * database is away before it answers 503; at most the ttl (checked in {@link #build()}).
     *
     * @throws IllegalArgumentException if not positive
     */
    public Builder completionTimeout(Duration completionTimeout) {
      this.completionTimeout = positive(completionTimeout);
      return this;
    }

    public Builder store(StoreType store) {
      this.store = Objects.requireNonNull(store, "store");
      return this;
    }

    public Builder jdbcUrl(String jdbcUrl) {
      if (jdbcUrl != null && !jdbcUrl.startsWith("jdbc:postgresql:")) {
        throw new IllegalArgumentException("'" + jdbcUrl + "' is not a jdbc:postgresql: URL");
      }
      this.jdbcUrl = jdbcUrl;
      return this;
    }

    public Builder jdbcUsername(String jdbcUsername) {
      this.jdbcUsername = jdbcUsername;
      return this;
    }

    /**
     * A direct URL to PostgreSQL for the node's one listening connection, when the others go
     * through a transaction pooler (PgBouncer with pool_mode=transaction).
     */
    public Builder jdbcListenUrl(String jdbcListenUrl) {
      if (jdbcListenUrl != null && !jdbcListenUrl.startsWith("jdbc:postgresql:")) {
        throw new IllegalArgumentException(
            "'" + jdbcListenUrl + "' is not a jdbc:postgresql: URL");
      }
      this.jdbcListenUrl = jdbcListenUrl;
      return this;
    }

    public Builder jdbcPassword(String jdbcPassword) {
      this.jdbcPassword = jdbcPassword;
      return this;
    }

    public Builder jdbcPoolSize(int size) {
      StoreBuilder.memory().poolSize(size); // the store's own rule, so the two cannot disagree
      this.jdbcPoolSize = size;
      return this;
    }

    public Builder jdbcConnectTimeout(Duration timeout) {
      StoreBuilder.memory().connectTimeout(timeout); // the store's own rule
      this.jdbcConnectTimeout = timeout;
      return this;
    }

    public Builder schema(String schema) {
      new TableName(schema, TableName.DEFAULT.table());
      this.schema = schema;
      return this;
    }

    public Builder table(String table) {
      new TableName(TableName.DEFAULT.schema(), table);
      this.table = table;
      return this;
    }

    public Builder migrate(boolean migrate) {
      this.migrate = migrate;
      return this;
    }

    public Builder cacheMaxBytes(long bytes) {
      if (bytes < 0) {
        throw new IllegalArgumentException("must not be negative, was " + bytes);
      }
      this.cacheMaxBytes = bytes;
      return this;
    }

    /**
     * @throws IllegalArgumentException if negative, or under a second and not 0 (off): each purge
     *     is a statement on the table every node shares
     */
    public Builder purgeInterval(Duration interval) {
      if (interval.isNegative()) {
        throw new IllegalArgumentException("must not be negative, was " + interval);
      }
      if (!interval.isZero() && interval.compareTo(Duration.ofSeconds(1)) < 0) {
        throw new IllegalArgumentException("must be 0 (off) or at least 1s (each purge is a"
            + " statement on the table every node shares), was " + interval);
      }
      this.purgeInterval = interval;
      return this;
    }

    public Builder purgeBatchSize(int size) {
      if (size < 1) {
        throw new IllegalArgumentException("must be at least 1, was " + size);
      }
      this.purgeBatchSize = size;
      return this;
    }

    /**
     * The immutable configuration, once the values that are valid alone are checked together.
     *
     * @throws InvalidConfigurationException naming both properties if two values are unsafe
     *     together
     */
    public IdempotencyConfig build() {
      if (ttl.compareTo(lease) < 0) {
        throw new InvalidConfigurationException(Property.TTL.key + " (" + ConfigValues.format(ttl)
            + ") must be at least " + Property.LEASE.key + " (" + ConfigValues.format(lease)
            + "): a completed key must live at least as long as the claim that made it");
      }
      // Only a pool that the store opens waits for connections this long; a memory store has none.
      if (store == StoreType.POSTGRES && lease.compareTo(jdbcConnectTimeout.multipliedBy(3)) < 0) {
        throw new InvalidConfigurationException(Property.LEASE.key + " ("
            + ConfigValues.format(lease) + ") must be at least 3 x " + Property.JDBC_CONNECT_TIMEOUT.key
            + " (" + ConfigValues.format(jdbcConnectTimeout) + ") = "
            + ConfigValues.format(jdbcConnectTimeout.multipliedBy(3)) + ": the lease is renewed"
            + " every lease/3, and a renewal that waits that long for a connection must still"
            + " finish before the lease runs out");
      }
      if (transactional && store == StoreType.MEMORY) {
        throw new InvalidConfigurationException(Property.TRANSACTIONAL.key + " (true) needs "
            + Property.STORE.key + "=postgres, was " + display(store) + ": the handler's writes"
            + " and the stored response commit in one PostgreSQL transaction");
      }
      if (completionTimeout.compareTo(ttl) > 0) {
        throw new InvalidConfigurationException(Property.COMPLETION_TIMEOUT.key + " ("
            + ConfigValues.format(completionTimeout) + ") must be at most " + Property.TTL.key
            + " (" + ConfigValues.format(ttl) + ")");
      }
      requireReplayHeaderDiffers(Property.HEADER, header);
      if (scope.kind() == Scope.Kind.HEADER) {
        requireReplayHeaderDiffers(Property.SCOPE, scope.headerName());
      }
      for (String name : fingerprintHeaders) {
        requireReplayHeaderDiffers(Property.FINGERPRINT_HEADERS, name);
      }
      return new IdempotencyConfig(this);
    }

    private void requireReplayHeaderDiffers(Property property, String requestHeader) {
      if (replayHeader.equalsIgnoreCase(requestHeader)) {
        throw new InvalidConfigurationException(Property.REPLAY_HEADER.key + " (" + replayHeader
            + ") names a request header of " + property.key + " (" + requestHeader
            + "): the replay marker must be a header of its own");
      }
    }

    private TableName tableName() {
      return new TableName(schema, table);
    }

    private static String token(String what, String value) {
      if (value == null || !TOKEN.matcher(value).matches()) {
        throw new IllegalArgumentException("'" + value + "' is not a valid " + what + " name");
      }
      return value;
    }

    private static Duration positive(Duration duration) {
      if (duration == null || duration.isNegative() || duration.isZero()) {
        throw new IllegalArgumentException("must be a positive duration, was " + duration);
      }
      return duration;
    }

    private static long positive(long bytes, long max) {
      if (bytes < 1 || bytes > max) {
        throw new IllegalArgumentException("must be 1 to " + max + " bytes, was " + bytes);
      }
      return bytes;
    }
  }
}
