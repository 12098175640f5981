package io.idemkey.filter;

import io.idemkey.execution.IdempotentExecutor;
import io.idemkey.store.ClaimResult;
import io.idemkey.store.Fingerprint;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.ResponseHeader;
import io.idemkey.store.StoreBuilder;
import io.idemkey.store.StoreUnavailableException;
import io.idemkey.store.StoredResponse;
import jakarta.servlet.AsyncContext;
import jakarta.servlet.AsyncEvent;
import jakarta.servlet.AsyncListener;
import jakarta.servlet.DispatcherType;
import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.FilterConfig;
import jakarta.servlet.ServletContext;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.security.Principal;
import java.time.Clock;
import java.time.Duration;
import java.util.Collections;
import java.util.Enumeration;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Semaphore;
import java.util.regex.Pattern;
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
public final class IdempotencyFilter implements Filter, Execution.Context {

  private static final System.Logger LOG = System.getLogger(IdempotencyFilter.class.getName());
  private static final Duration IN_PROGRESS_RETRY_AFTER = Duration.ofSeconds(1);
  /** The most of a too-large body read and dropped before the 413 is sent. */
  static final long DRAINED_BYTES = 2L * 1024 * 1024;
  private static final Pattern MULTIPART_BOUNDARY =
      Pattern.compile(
          "(?i);\\s*boundary=(\"[^\"]*\"|[^;]*)");

  private IdempotencyConfig config;
  /** The fingerprint headers' names in lower case, as the fingerprint takes them. */
  private List<String> fingerprintHeaders;
  private IdempotencyStore store;
  private boolean ownsStore;
  private IdempotencyListener listener;
  private IdempotentExecutor executor;
  private Waiters waiters;
  private Semaphore turns;

  /** A filter configured in {@link #init} from init-params and the other sources. */
  public IdempotencyFilter() {}

  private IdempotencyFilter(Builder builder) {
    start(builder.config, builder.store, builder.storeOwned, builder.listener);
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
    start(loaded, loaded.buildStore(loaded.storeBuilder()), true,
        IdempotencyListener.logging());
  }

  private void start(
      IdempotencyConfig config,
      IdempotencyStore store,
      boolean ownsStore,
      IdempotencyListener listener) {
    this.config = config;
    this.fingerprintHeaders =
        config.fingerprintHeaders().stream().map(name -> name.toLowerCase(Locale.ROOT)).toList();
    this.store = store;
    this.ownsStore = ownsStore;
    this.listener = listener;
    this.executor = IdempotentExecutor.builder(store)
        .lease(config.lease())
        .transactional(config.transactional())
        .build();
    this.waiters = new Waiters(store, config.waitTimeout(), config.maxWaiters());
    int connections = store.requestConnections();
    this.turns = config.transactional() && connections > 0 ? new Semaphore(connections, true) : null;
    LOG.log(System.Logger.Level.INFO, config.toString());
  }

  @Override
  public void destroy() {
    if (executor != null) {
      executor.close();
      waiters.close();
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
    if (request.getDispatcherType() == DispatcherType.ASYNC) {
      if (request.getAttribute(CapturedAsyncContext.ATTRIBUTE)
          instanceof CapturedAsyncContext async) {
        dispatchAsync(async, request, response, chain);
      } else {
        // The request was decided on its REQUEST dispatch (run without deduplication by
        // fail-open, or not covered): its body is read, and it is no new request.
        chain.doFilter(request, response);
      }
      return;
    }
    String path = pathOf(request);
    if (!config.coversPath(path)) {
      chain.doFilter(request, response);
      return;
    }
    long started = System.nanoTime();
    IdempotencyListener.Outcome outcome = handle(request, response, chain, path, started);
    if (outcome != null) {
      report(outcome, request, path, started);
    }
  }

  /**
   * A covered request that the handler dispatched back (startAsync, then dispatch: Spring's
   * DeferredResult and Callable): the response is written into the capture during this dispatch,
   * and stored and sent when it returns (SPEC §6).
   */
  private static void dispatchAsync(
      CapturedAsyncContext async,
      HttpServletRequest request,
      HttpServletResponse response,
      FilterChain chain)
      throws IOException, ServletException {
    try {
      chain.doFilter(request, response);
    } catch (IOException | ServletException | RuntimeException | Error e) {
      async.dispatchFailed();
      throw e;
    }
    if (!request.isAsyncStarted()) {
      async.dispatchReturned();
    }
  }

  private void report(
      IdempotencyListener.Outcome outcome, HttpServletRequest request, String path, long started) {
    listener.onEvent(
        new IdempotencyListener.Event(
            outcome, request.getMethod(), path, Duration.ofNanos(System.nanoTime() - started)));
  }

  @Override
  public void report(
      IdempotencyListener.Outcome outcome, CachedBodyRequest request, long started) {
    report(outcome, request, pathOf(request), started);
  }

  @Override
  public IdempotencyConfig config() {
    return config;
  }

  @Override
  public IdempotencyStore store() {
    return store;
  }

  @Override
  public IdempotentExecutor executor() {
    return executor;
  }

  @Override
  public Semaphore turns() {
    return turns;
  }

  private IdempotencyListener.Outcome handle(
      HttpServletRequest request,
      HttpServletResponse response,
      FilterChain chain,
      String path,
      long started)
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
    if (config.keys() == IdempotencyConfig.Keys.SEQUENCE
        && IdempotencyKey.sequenceNumber(((KeyParser.Valid) parsed).key()) < 0) {
      Problem.INVALID_KEY.write(response, "this server takes sequence keys: a non-negative"
          + " decimal integer of at most " + IdempotencyKey.MAX_SEQUENCE_DIGITS
          + " digits (at most " + Long.MAX_VALUE + "), without sign or leading zeros");
      return IdempotencyListener.Outcome.BAD_REQUEST;
    }
    long declared = request.getContentLengthLong();
    if (declared > config.maxRequestBytes()) {
      return tooLarge(request, response);
    }
    CachedBodyRequest cached = CachedBodyRequest.read(request, config.maxRequestBytes());
    if (cached == null) {
      return tooLarge(request, response);
    }
    String scope = scopeOf(request);
    if (scope == null) {
      Problem.INVALID_SCOPE.write(
          response, "the " + config.scope().headerName() + " header must appear once");
      return IdempotencyListener.Outcome.BAD_REQUEST;
    }
    IdempotencyKey key = new IdempotencyKey(scope, ((KeyParser.Valid) parsed).key());
    Fingerprint fingerprint = fingerprintOf(request, path, cached.fingerprintBody());

    ClaimResult claim;
    try {
      claim = store.claim(key, fingerprint);
    } catch (StoreUnavailableException e) {
      return storeUnavailable(cached, response, chain, e);
    }
    if (claim instanceof ClaimResult.InProgress inProgress
        && config.onInFlight() == IdempotencyConfig.InFlight.WAIT) {
      return await(request, response, key, fingerprint, inProgress, path, started);
    }

    if (claim instanceof ClaimResult.Held held) {
      return new Execution(this, key, fingerprint, held.token(), cached, response).run(chain);
    }
    return answer(key, claim, response);
  }

  /**
   * Answers a claim that does not hold the key: a replay, 422 or 409 (in progress, or a sequence
   * key used up, SPEC §13). A claim that does hold it (after an execution lost its lease, the key
   * was freed again) is released and answered 409.
   */
  @Override
  public IdempotencyListener.Outcome answer(
      IdempotencyKey key, ClaimResult claim, HttpServletResponse response) throws IOException {
    if (claim instanceof ClaimResult.Completed completed) {
      return replay(completed.response(), response);
    }
    if (claim instanceof ClaimResult.FingerprintMismatch) {
      Problem.KEY_REUSED.write(
          response, "this key was used for a different request; use a new key for a new request");
      return IdempotencyListener.Outcome.FINGERPRINT_MISMATCH;
    }
    if (claim instanceof ClaimResult.KeyExpired) {
      Problem.KEY_EXPIRED.write(response, "this sequence key is at or below the highest key of"
          + " this client whose record has expired: it was used, or a higher key came first and"
          + " has expired since; send a new, higher key for a new request");
      return IdempotencyListener.Outcome.KEY_EXPIRED;
    }
    if (claim instanceof ClaimResult.Held held) {
      Execution.releaseQuietly(store, key, held.token());
    }
    return inProgress(response);
  }

  /**
   * 409 in-progress. {@code Retry-After} is one second, whatever the lease left: the filter cannot
   * tell how long the first request will run, most handlers take milliseconds, and a retry costs
   * one claim; the lease left would only say when a dead node's key becomes free.
   */
  private static IdempotencyListener.Outcome inProgress(HttpServletResponse response)
      throws IOException {
    Problem.IN_PROGRESS.write(
        response, "the first request with this key is still running; retry later",
        IN_PROGRESS_RETRY_AFTER);
    return IdempotencyListener.Outcome.IN_PROGRESS;
  }

  /**
   * 413. The rest of a body of up to {@value #DRAINED_BYTES} bytes is read and dropped first, so
   * that a client still sending it reads the answer instead of a reset connection (as Tomcat
   * swallows up to 2 MiB); a larger body is cut off.
   */
  private IdempotencyListener.Outcome tooLarge(
      HttpServletRequest request, HttpServletResponse response) throws IOException {
    long declared = request.getContentLengthLong();
    if (declared <= DRAINED_BYTES) {
      try {
        java.io.InputStream in = request.getInputStream();
        long left = DRAINED_BYTES;
        byte[] scrap = new byte[8192];
        int read;
        while (left > 0 && (read = in.read(scrap, 0, (int) Math.min(scrap.length, left))) > 0) {
          left -= read;
        }
      } catch (IOException | IllegalStateException e) {
        // The client went away, or the body was read as parameters: nothing to drain.
      }
    }
    Problem.REQUEST_TOO_LARGE.write(
        response, "the request body is over " + config.maxRequestBytes() + " bytes");
    return IdempotencyListener.Outcome.BAD_REQUEST;
  }

  /**
   * A duplicate in wait mode (SPEC §5): it waits without a thread (the request goes asynchronous)
   * for the first request to settle, then is answered as a new duplicate would be: a replay, 422,
   * or 409 when the first was released (the client retries and runs it) or the wait ran out.
   * Returns null when the answer comes later; it is reported then.
   */
  private IdempotencyListener.Outcome await(
      HttpServletRequest request,
      HttpServletResponse response,
      IdempotencyKey key,
      Fingerprint fingerprint,
      ClaimResult.InProgress first,
      String path,
      long started)
      throws IOException {
    Waiters.Waiter waiter = waiters.reserve();
    if (waiter == null) {
      return answer(key, first, response);
    }
    if (!request.isAsyncSupported()) {
      // The container will not let this request wait without its thread: it waits on it.
      CompletableFuture<Waiters.Outcome> settled = new CompletableFuture<>();
      waiter.await(key, fingerprint, first, settled::complete);
      try {
        return answerWait(key, settled.get(), response);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        waiter.cancel();
        return answerWait(key, Waiters.Outcome.TIMED_OUT, response);
      } catch (ExecutionException e) {
        throw new IllegalStateException("a waiter failed", e.getCause());
      }
    }
    AsyncContext async;
    try {
      async = request.startAsync(request, response);
    } catch (RuntimeException e) {
      waiter.cancel(); // its place among the waiters is given back
      throw e;
    }
    async.setTimeout(0); // the waiters time it out themselves
    async.addListener(new AsyncListener() {
      @Override
      public void onComplete(AsyncEvent event) {}

      @Override
      public void onTimeout(AsyncEvent event) {
        waiter.cancel();
      }

      @Override
      public void onError(AsyncEvent event) {
        waiter.cancel();
      }

      @Override
      public void onStartAsync(AsyncEvent event) {}
    });
    waiter.await(key, fingerprint, first, outcome -> {
      Runnable answer = () -> {
        try {
          report(answerWait(key, outcome, (HttpServletResponse) async.getResponse()), request,
              path, started);
        } catch (IOException | RuntimeException e) {
          LOG.log(System.Logger.Level.DEBUG, "answering a waiting request failed", e);
        } finally {
          async.complete();
        }
      };
      // Written on a thread of the container's, as any response is, not on the waiters' thread
      // that settles every waiter of the key: a client slow to read its replay must not hold
      // back the others'.
      try {
        async.start(answer);
      } catch (IllegalStateException e) {
        answer.run(); // the container will not run it (stopping): answered here, once
      }
    });
    return null;
  }

  private IdempotencyListener.Outcome answerWait(
      IdempotencyKey key, Waiters.Outcome outcome, HttpServletResponse response)
      throws IOException {
    if (outcome.failure() != null) {
      Problem.STORE_UNAVAILABLE.write(
          response, "the idempotency store cannot be reached; retry later",
          Execution.STORE_RETRY_AFTER);
      return IdempotencyListener.Outcome.STORE_FAILURE;
    }
    if (outcome.claim() == null) {
      return inProgress(response);
    }
    return answer(key, outcome.claim(), response);
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
    // The first value of each name (stored side by side) replaces what a filter in front set,
    // as the handler did.
    String previous = null;
    for (ResponseHeader header : stored.headers()) {
      if (header.name().equalsIgnoreCase(previous)) {
        response.addHeader(header.name(), header.value());
      } else {
        response.setHeader(header.name(), header.value());
      }
      previous = header.name();
    }
    response.setHeader(config.replayHeader(), "true");
    // An empty body is left to the container, as ResponseCapture.sendToClient leaves it: a length
    // of 0 would commit the response before the filters in front had written their headers.
    if (stored.bodyLength() > 0) {
      response.setContentLength(stored.bodyLength());
      stored.writeBodyTo(response.getOutputStream());
    }
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
    // Once the store knows its database is away it has said so, once: not a line per request.
    LOG.log(store.knownDown() ? System.Logger.Level.DEBUG : System.Logger.Level.WARNING,
        "idempotency store unavailable: {0}", e.getMessage());
    Problem.STORE_UNAVAILABLE.write(
        response, "the idempotency store cannot be reached; retry later",
        Execution.STORE_RETRY_AFTER);
    return IdempotencyListener.Outcome.STORE_FAILURE;
  }

  /**
   * Scopes are prefixed by kind, so that no principal name can pose as a header value. Null when
   * the scope header appears more than once.
   */
  private String scopeOf(HttpServletRequest request) {
    IdempotencyConfig.Scope scope = config.scope();
    switch (scope.kind()) {
      case PRINCIPAL:
        Principal principal = request.getUserPrincipal();
        return principal == null ? "anonymous" : "principal:" + principal.getName();
      case HEADER:
        Enumeration<String> values = request.getHeaders(scope.headerName());
        if (values == null || !values.hasMoreElements()) {
          return "anonymous";
        }
        String value = values.nextElement();
        // SPEC §3: a gateway that appends instead of replacing must not let a client pick a scope.
        return values.hasMoreElements() ? null : "header:" + value;
      default:
        return "global";
    }
  }

  /**
   * SPEC §4. The path is the container's decoded and normalized one ({@code /%70ay/./x} is
   * {@code /pay/x}) under the context's own path; the query is compared as sent, an empty one
   * being none.
   */
  private Fingerprint fingerprintOf(HttpServletRequest request, String path, byte[] body) {
    String query = request.getQueryString();
    ServletContext context = request.getServletContext();
    String contextPath = context == null ? "" : context.getContextPath();
    String pathAndQuery =
        contextPath + path + (query == null || query.isEmpty() ? "" : "?" + query);
    return RequestFingerprint.compute(
        request.getMethod(),
        pathAndQuery,
        fingerprintHeaders,
        name -> {
          Enumeration<String> values = request.getHeaders(name);
          if (values == null) {
            return List.of();
          }
          List<String> list = Collections.list(values);
          // A multipart body is fingerprinted by its parts; its boundary is chosen anew by each
          // try of a client, so it is no part of what makes two requests the same.
          list.replaceAll(value -> value.regionMatches(true, 0, "multipart/", 0, 10)
              ? MULTIPART_BOUNDARY.matcher(value).replaceAll("")
              : value);
          return list;
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
    private Clock clock;
    private IdempotencyListener listener = IdempotencyListener.logging();

    private Builder() {}

    /** The configuration; default: every default of SPEC §10. */
    public Builder config(IdempotencyConfig config) {
      this.config = Objects.requireNonNull(config, "config");
      return this;
    }

    /**
     * A store the application owns (and closes); the config's store properties are unused. With
     * {@code keys=sequence}, build it through {@link IdempotencyConfig#applyTo} (or with {@link
     * StoreBuilder#sequenceKeys}), or keys are never refused past their ttl.
     */
    public Builder store(IdempotencyStore store) {
      this.store = Objects.requireNonNull(store, "store");
      return this;
    }

    /** A PostgreSQL data source the application owns; the filter builds its store on it. */
    public Builder dataSource(DataSource dataSource) {
      this.dataSource = Objects.requireNonNull(dataSource, "dataSource");
      return this;
    }

    /**
     * A clock for tests, whose advance moves the store's time forward (the database's clock
     * decides leases and expiry); default: none.
     */
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
     * @throws InvalidConfigurationException if no store, data source or JDBC URL is given, or
     *     the configured table exists and is not an idemkey table
     * @throws StoreUnavailableException if the database cannot be reached or migrated
     */
    public IdempotencyFilter build() {
      if (store == null) {
        StoreBuilder storeBuilder =
            dataSource != null
                ? config.applyTo(StoreBuilder.postgres(dataSource))
                : config.storeBuilder();
        if (clock != null) {
          storeBuilder.clock(clock);
        }
        store = config.buildStore(storeBuilder);
        storeOwned = true;
      }
      return new IdempotencyFilter(this);
    }
  }
}
