package io.idemkey.filter;

import io.idemkey.store.ClaimResult;
import io.idemkey.store.Fingerprint;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.ResponseHeader;
import io.idemkey.store.StoreBuilder;
import io.idemkey.store.StoreUnavailableException;
import io.idemkey.store.StoredResponse;
import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.FilterConfig;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.security.Principal;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Collections;
import java.util.Enumeration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import javax.sql.DataSource;

/**
 * The servlet filter that runs each covered request once per {@code Idempotency-Key} and replays
 * the stored response to every duplicate (SPEC.md).
 *
 * <p>Register it with its no-argument constructor (web.xml, {@code ServletContext.addFilter}):
 * {@link #init} then reads the configuration from every source and opens the store, which
 * {@link #destroy} closes. Or build it in code with {@link #builder()}, handing in a store or a
 * data source that the application owns.
 *
 * <p>Thread-safe: one instance serves all requests.
 */
public final class IdempotencyFilter implements Filter {

  private static final System.Logger LOG = System.getLogger(IdempotencyFilter.class.getName());
  private static final Duration STORE_RETRY_AFTER = Duration.ofSeconds(2);
  private static final int COMPLETE_ATTEMPTS = 3;

  private IdempotencyConfig config;
  private IdempotencyStore store;
  private boolean ownsStore;
  private Clock clock;
  private IdempotencyListener listener;
  private ScheduledExecutorService renewals;

  /** A filter configured in {@link #init} from init-params and the other sources. */
  public IdempotencyFilter() {}

  private IdempotencyFilter(Builder builder) {
    start(builder.config, builder.store, builder.storeOwned, builder.clock, builder.listener);
  }

  /** A builder for configuring the filter in code. */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * Reads the configuration (init-params, then the other sources of SPEC §10) and opens the store,
   * unless the filter was built with {@link #builder()}.
   *
   * @throws InvalidConfigurationException naming the property on a bad value
   */
  @Override
  public void init(FilterConfig filterConfig) {
    if (config != null) {
      return;
    }
    Map<String, String> initParams = new HashMap<>();
    for (String name : Collections.list(filterConfig.getInitParameterNames())) {
      initParams.put(name, filterConfig.getInitParameter(name));
    }
    IdempotencyConfig loaded = IdempotencyConfig.load(initParams);
    start(loaded, loaded.storeBuilder().build(), true, Clock.systemUTC(),
        IdempotencyListener.logging());
  }

  private void start(
      IdempotencyConfig config,
      IdempotencyStore store,
      boolean ownsStore,
      Clock clock,
      IdempotencyListener listener) {
    this.config = config;
    this.store = store;
    this.ownsStore = ownsStore;
    this.clock = clock;
    this.listener = listener;
    ScheduledThreadPoolExecutor renewals =
        new ScheduledThreadPoolExecutor(
            1,
            runnable -> {
              Thread thread = new Thread(runnable, "idemkey-lease-renewal");
              thread.setDaemon(true);
              return thread;
            });
    // Every executed request schedules a renewal and cancels it when done: without this, each
    // cancelled task would stay queued until its first run, a third of a lease later.
    renewals.setRemoveOnCancelPolicy(true);
    this.renewals = renewals;
    LOG.log(System.Logger.Level.INFO, config.toString());
  }

  @Override
  public void destroy() {
    if (renewals != null) {
      renewals.shutdownNow();
    }
    if (ownsStore && store != null) {
      store.close();
    }
  }

  @Override
  public void doFilter(ServletRequest req, ServletResponse res, FilterChain chain)
      throws IOException, ServletException {
    if (!(req instanceof HttpServletRequest) || !(res instanceof HttpServletResponse)) {
      chain.doFilter(req, res);
      return;
    }
    HttpServletRequest request = (HttpServletRequest) req;
    HttpServletResponse response = (HttpServletResponse) res;
    // SPEC §1: an uncovered request costs a method check, before the path is even built.
    if (!config.coversMethod(request.getMethod())) {
      chain.doFilter(request, response);
      return;
    }
    String path = pathOf(request);
    if (!config.coversPath(path)) {
      chain.doFilter(request, response);
      return;
    }
    long started = System.nanoTime();
    IdempotencyListener.Outcome outcome = handle(request, response, chain, path);
    if (outcome != null) {
      listener.onEvent(
          new IdempotencyListener.Event(
              outcome, request.getMethod(), path, Duration.ofNanos(System.nanoTime() - started)));
    }
  }

  private IdempotencyListener.Outcome handle(
      HttpServletRequest request, HttpServletResponse response, FilterChain chain, String path)
      throws IOException, ServletException {
    Enumeration<String> headers = request.getHeaders(config.header());
    if (headers == null || !headers.hasMoreElements()) {
      if (config.required()) {
        Problem.MISSING_KEY.write(
            response, "this request needs an " + config.header() + " header");
        return IdempotencyListener.Outcome.BAD_REQUEST;
      }
      chain.doFilter(request, response);
      return null;
    }
    String headerValue = headers.nextElement();
    if (headers.hasMoreElements()) {
      Problem.INVALID_KEY.write(response, "the " + config.header() + " header must appear once");
      return IdempotencyListener.Outcome.BAD_REQUEST;
    }
    KeyParser.Result parsed = KeyParser.parse(headerValue);
    if (parsed instanceof KeyParser.Invalid invalid) {
      Problem.INVALID_KEY.write(response, invalid.reason());
      return IdempotencyListener.Outcome.BAD_REQUEST;
    }
    long declared = request.getContentLengthLong();
    if (declared > config.maxRequestBytes()) {
      return tooLarge(response);
    }
    CachedBodyRequest cached = CachedBodyRequest.read(request, config.maxRequestBytes());
    if (cached == null) {
      return tooLarge(response);
    }
    IdempotencyKey key = new IdempotencyKey(scopeOf(request), ((KeyParser.Valid) parsed).key());
    Fingerprint fingerprint = fingerprintOf(request, cached.fingerprintBody());

    ClaimResult claim;
    try {
      claim = store.claim(key, fingerprint);
      if (claim instanceof ClaimResult.InProgress && config.onInFlight() == IdempotencyConfig.InFlight.WAIT) {
        claim = waitForFirst(key, fingerprint, (ClaimResult.InProgress) claim);
      }
    } catch (StoreUnavailableException e) {
      return storeUnavailable(cached, response, chain, e);
    }

    if (claim instanceof ClaimResult.Completed completed) {
      return replay(completed.response(), response);
    }
    if (claim instanceof ClaimResult.FingerprintMismatch) {
      Problem.KEY_REUSED.write(
          response, "this key was used for a different request; use a new key for a new request");
      return IdempotencyListener.Outcome.FINGERPRINT_MISMATCH;
    }
    if (claim instanceof ClaimResult.InProgress inProgress) {
      Problem.IN_PROGRESS.write(
          response,
          "the first request with this key is still running; retry later",
          Duration.between(clock.instant(), inProgress.leaseExpiresAt()));
      return IdempotencyListener.Outcome.IN_PROGRESS;
    }
    long token =
        claim instanceof ClaimResult.Acquired acquired
            ? acquired.token()
            : ((ClaimResult.TakenOver) claim).token();
    return execute(key, token, cached, response, chain);
  }

  private IdempotencyListener.Outcome tooLarge(HttpServletResponse response) throws IOException {
    Problem.REQUEST_TOO_LARGE.write(
        response, "the request body is over " + config.maxRequestBytes() + " bytes");
    return IdempotencyListener.Outcome.BAD_REQUEST;
  }

  private IdempotencyListener.Outcome execute(
      IdempotencyKey key,
      long token,
      CachedBodyRequest request,
      HttpServletResponse response,
      FilterChain chain)
      throws IOException, ServletException {
    long renewEvery = Math.max(1, config.lease().toMillis() / 3);
    ScheduledFuture<?> renewal =
        renewals.scheduleAtFixedRate(
            () -> renew(key, token), renewEvery, renewEvery, TimeUnit.MILLISECONDS);
    ResponseCapture capture = new ResponseCapture(
        response, config.excludeResponseHeaders(), config.maxResponseBytes(),
        notStored -> settleBeforeStreaming(key, token, renewal, notStored));
    long started = System.nanoTime();
    request.captureAsync(
        capture,
        new CapturedAsyncContext.Completion() {
          @Override
          public void finish() throws IOException {
            renewal.cancel(false);
            IdempotencyListener.Outcome outcome =
                IdempotencyFilter.this.finish(key, token, capture, response);
            listener.onEvent(
                new IdempotencyListener.Event(
                    outcome,
                    request.getMethod(),
                    pathOf(request),
                    Duration.ofNanos(System.nanoTime() - started)));
          }

          @Override
          public void abandon() {
            renewal.cancel(false);
            releaseQuietly(key, token);
          }
        });
    try {
      chain.doFilter(request, capture);
    } catch (IOException | ServletException | RuntimeException | Error e) {
      renewal.cancel(false);
      releaseQuietly(key, token);
      throw e;
    }
    if (request.isAsyncStarted()) {
      // Finished when the handler completes the async context (CapturedAsyncContext).
      return null;
    }
    renewal.cancel(false);
    return finish(key, token, capture, response);
  }

  /** Stores (or releases) the captured response, then sends it to the client. */
  private IdempotencyListener.Outcome finish(
      IdempotencyKey key, long token, ResponseCapture capture, HttpServletResponse response)
      throws IOException {
    if (capture.isStreaming()) {
      // Over max-response-bytes: settled in settleBeforeStreaming, the body is on its way.
      capture.sendToClient();
      return IdempotencyListener.Outcome.EXECUTED;
    }
    int status = capture.getStatus();
    if (config.isReleaseStatus(status)) {
      releaseQuietly(key, token);
      capture.sendToClient();
      return IdempotencyListener.Outcome.RELEASED;
    }
    // Abandoned: the store failed when the body outgrew max-response-bytes.
    Boolean completed =
        capture.isAbandoned() ? null : completeWithRetries(key, token, capture.toStoredResponse());
    if (completed == null) {
      // The handler ran but its response could not be stored. The key stays in progress until
      // its lease runs out; answering 503 keeps the rule that a client never sees a response that
      // a retry could not replay.
      LOG.log(System.Logger.Level.ERROR,
          "the response for a key could not be stored after {0} attempts; answering 503",
          COMPLETE_ATTEMPTS);
      capture.reset();
      Problem.STORE_UNAVAILABLE.write(
          response, "the response could not be stored; retry later", STORE_RETRY_AFTER);
      return IdempotencyListener.Outcome.STORE_FAILURE;
    }
    capture.sendToClient();
    if (!completed) {
      LOG.log(System.Logger.Level.WARNING,
          "a request finished after its lease on a key was taken over (token {0});"
              + " its response was not stored", token);
      return IdempotencyListener.Outcome.STALE_COMPLETION;
    }
    return IdempotencyListener.Outcome.EXECUTED;
  }

  /**
   * Completes the key without its body (or releases it, for a release status) before a response
   * over max-response-bytes streams to the client (SPEC §6).
   *
   * @throws IOException if the store stayed unreachable: the response must not be sent
   */
  private void settleBeforeStreaming(
      IdempotencyKey key, long token, ScheduledFuture<?> renewal, StoredResponse notStored)
      throws IOException {
    renewal.cancel(false);
    if (config.isReleaseStatus(notStored.status())) {
      releaseQuietly(key, token);
    } else if (completeWithRetries(key, token, notStored) == null) {
      throw new IOException("the idempotency store is unreachable");
    }
  }

  /** True if stored, false if the token is stale, null if the store stayed unreachable. */
  private Boolean completeWithRetries(IdempotencyKey key, long token, StoredResponse stored) {
    for (int attempt = 1; ; attempt++) {
      try {
        return store.complete(key, token, stored);
      } catch (StoreUnavailableException e) {
        if (attempt == COMPLETE_ATTEMPTS) {
          return null;
        }
        if (!pause(Duration.ofMillis(200L * attempt))) {
          return null;
        }
      }
    }
  }

  private void renew(IdempotencyKey key, long token) {
    try {
      if (!store.renew(key, token)) {
        LOG.log(System.Logger.Level.WARNING,
            "the lease on a key (token {0}) was lost while its request ran", token);
      }
    } catch (RuntimeException e) {
      LOG.log(System.Logger.Level.WARNING, "renewing a lease failed; retrying", e);
    }
  }

  private void releaseQuietly(IdempotencyKey key, long token) {
    try {
      store.release(key, token);
    } catch (RuntimeException e) {
      // The lease runs out by itself; the key is free again then.
      LOG.log(System.Logger.Level.WARNING, "releasing a key failed; its lease will run out", e);
    }
  }

  private ClaimResult waitForFirst(
      IdempotencyKey key, Fingerprint fingerprint, ClaimResult.InProgress first) {
    Instant deadline = clock.instant().plus(config.waitTimeout());
    long backoffMillis = 10;
    ClaimResult claim = first;
    while (claim instanceof ClaimResult.InProgress && clock.instant().isBefore(deadline)) {
      if (!pause(Duration.ofMillis(backoffMillis))) {
        return claim;
      }
      backoffMillis = Math.min(250, backoffMillis * 2);
      claim = store.claim(key, fingerprint);
    }
    return claim;
  }

  /** Sleeps; false (with the interrupt flag restored) if interrupted. */
  private static boolean pause(Duration duration) {
    try {
      Thread.sleep(duration.toMillis());
      return true;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    }
  }

  private IdempotencyListener.Outcome replay(StoredResponse stored, HttpServletResponse response)
      throws IOException {
    if (!stored.bodyStored()) {
      Problem.RESPONSE_NOT_STORED.write(
          response,
          "the first request with this key was answered with status " + stored.status()
              + ", but its body was too large to store");
      return IdempotencyListener.Outcome.REPLAYED;
    }
    response.setStatus(stored.status());
    for (ResponseHeader header : stored.headers()) {
      response.addHeader(header.name(), header.value());
    }
    response.setHeader(config.replayHeader(), "true");
    response.setContentLength(stored.bodyLength());
    stored.writeBodyTo(response.getOutputStream());
    return IdempotencyListener.Outcome.REPLAYED;
  }

  private IdempotencyListener.Outcome storeUnavailable(
      CachedBodyRequest request,
      HttpServletResponse response,
      FilterChain chain,
      StoreUnavailableException e)
      throws IOException, ServletException {
    if (config.onStoreFailure() == IdempotencyConfig.OnStoreFailure.FAIL_OPEN) {
      LOG.log(System.Logger.Level.WARNING,
          "idempotency store unavailable; running the request without deduplication: {0}",
          e.getMessage());
      chain.doFilter(request, response);
      return IdempotencyListener.Outcome.FAIL_OPEN;
    }
    LOG.log(System.Logger.Level.WARNING, "idempotency store unavailable: {0}", e.getMessage());
    Problem.STORE_UNAVAILABLE.write(
        response, "the idempotency store cannot be reached; retry later", STORE_RETRY_AFTER);
    return IdempotencyListener.Outcome.STORE_FAILURE;
  }

  /** Scopes are prefixed by kind, so that no principal name can pose as a header value. */
  private String scopeOf(HttpServletRequest request) {
    IdempotencyConfig.Scope scope = config.scope();
    switch (scope.kind()) {
      case PRINCIPAL:
        Principal principal = request.getUserPrincipal();
        return principal == null ? "anonymous" : "principal:" + principal.getName();
      case HEADER:
        String value = request.getHeader(scope.headerName());
        return value == null ? "anonymous" : "header:" + value;
      default:
        return "global";
    }
  }

  private Fingerprint fingerprintOf(HttpServletRequest request, byte[] body) {
    String query = request.getQueryString();
    String pathAndQuery = request.getRequestURI() + (query == null ? "" : "?" + query);
    return RequestFingerprint.compute(
        request.getMethod(),
        pathAndQuery,
        config.fingerprintHeaders(),
        name -> {
          Enumeration<String> values = request.getHeaders(name);
          return values == null ? List.of() : Collections.list(values);
        },
        body,
        body.length);
  }

  private static String pathOf(HttpServletRequest request) {
    String servletPath = request.getServletPath();
    String pathInfo = request.getPathInfo();
    String path = (servletPath == null ? "" : servletPath) + (pathInfo == null ? "" : pathInfo);
    return path.isEmpty() ? "/" : path;
  }

  /** Builds a filter in code. Not thread-safe. */
  public static final class Builder {
    private IdempotencyConfig config = IdempotencyConfig.builder().build();
    private IdempotencyStore store;
    private DataSource dataSource;
    private boolean storeOwned;
    private Clock clock = Clock.systemUTC();
    private IdempotencyListener listener = IdempotencyListener.logging();

    private Builder() {}

    /** The configuration; default: every default of SPEC §10. */
    public Builder config(IdempotencyConfig config) {
      this.config = Objects.requireNonNull(config, "config");
      return this;
    }

    /** A store the application owns (and closes); the config's store properties are unused. */
    public Builder store(IdempotencyStore store) {
      this.store = Objects.requireNonNull(store, "store");
      return this;
    }

    /** A PostgreSQL data source the application owns; the filter builds its store on it. */
    public Builder dataSource(DataSource dataSource) {
      this.dataSource = Objects.requireNonNull(dataSource, "dataSource");
      return this;
    }

    /** The clock for leases and Retry-After; default the UTC system clock. */
    public Builder clock(Clock clock) {
      this.clock = Objects.requireNonNull(clock, "clock");
      return this;
    }

    /** Receives each outcome; default logs at DEBUG. */
    public Builder listener(IdempotencyListener listener) {
      this.listener = Objects.requireNonNull(listener, "listener");
      return this;
    }

    /**
     * Builds the filter; opens the store unless one was handed in.
     *
     * @throws InvalidConfigurationException if no store, data source or JDBC URL is given
     * @throws StoreUnavailableException if the database cannot be reached or migrated
     */
    public IdempotencyFilter build() {
      if (store == null) {
        StoreBuilder storeBuilder =
            dataSource != null
                ? config.applyTo(StoreBuilder.postgres(dataSource))
                : config.storeBuilder();
        store = storeBuilder.clock(clock).build();
        storeOwned = true;
      }
      return new IdempotencyFilter(this);
    }
  }
}
