package io.idemkey.filter;

import io.idemkey.store.ClaimResult;
import io.idemkey.store.Fingerprint;
import io.idemkey.store.IdempotencyKey;
import io.idemkey.store.IdempotencyStore;
import io.idemkey.store.RequestTransactions;
import io.idemkey.store.StoreTransaction;
import io.idemkey.store.StoreUnavailableException;
import io.idemkey.store.StoredResponse;
import io.idemkey.store.TransactionAbortedException;
import jakarta.servlet.AsyncContext;
import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequestWrapper;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.time.Duration;

/**
 * One request that holds its key: it runs the handler with the lease renewed, captures the
 * response, and then stores it (or releases the key) before a byte reaches the client (SPEC §5,
 * §6). In transactional mode the handler runs in the store's transaction, and the completion
 * commits with the handler's writes; otherwise the completion is retried while the store is away,
 * for up to {@code completion-timeout}.
 *
 * <p>Not thread-safe: it belongs to one request; an asynchronous request finishes it on the
 * thread that completes the async context.
 */
final class Execution {

  private static final System.Logger LOG = System.getLogger(Execution.class.getName());
  static final Duration STORE_RETRY_AFTER = Duration.ofSeconds(2);

  /** What the execution needs of the filter. */
  interface Context {
    IdempotencyConfig config();

    IdempotencyStore store();

    LeaseRenewals renewals();

    /** Reports an outcome that happened outside the request's own call (a lost lease, async). */
    void report(IdempotencyListener.Outcome outcome, CachedBodyRequest request, long started);

    /** Answers as a retry would be answered now, after this execution's lease was lost. */
    IdempotencyListener.Outcome answer(
        IdempotencyKey key, ClaimResult claim, HttpServletResponse response) throws IOException;
  }

  private final Context context;
  private final IdempotencyKey key;
  private final Fingerprint fingerprint;
  private final long token;
  private final CachedBodyRequest request;
  private final HttpServletResponse response;
  private final ResponseCapture capture;
  private final long started = System.nanoTime();
  private LeaseRenewals.Lease lease;
  private StoreTransaction transaction;

  Execution(
      Context context,
      IdempotencyKey key,
      Fingerprint fingerprint,
      long token,
      CachedBodyRequest request,
      HttpServletResponse response) {
    this.context = context;
    this.key = key;
    this.fingerprint = fingerprint;
    this.token = token;
    this.request = request;
    this.response = response;
    IdempotencyConfig config = context.config();
    this.capture =
        new ResponseCapture(
            response, config.excludeResponseHeaders(), config.maxResponseBytes(),
            this::settleBeforeStreaming);
  }

  /**
   * Runs the handler. Returns the outcome, or null when the handler went asynchronous: the
   * outcome is then reported when the async context completes.
   */
  IdempotencyListener.Outcome run(FilterChain chain) throws IOException, ServletException {
    lease =
        context.renewals().start(key, token,
            () -> context.report(IdempotencyListener.Outcome.LEASE_LOST, request, started));
    boolean transactional = context.config().transactional();
    if (transactional) {
      try {
        transaction = context.store().beginTransaction(key, token);
      } catch (StoreUnavailableException e) {
        abandon();
        LOG.log(System.Logger.Level.WARNING,
            "could not begin the transaction of a request: {0}", e.getMessage());
        Problem.STORE_UNAVAILABLE.write(
            response, "the idempotency store cannot be reached; retry later", STORE_RETRY_AFTER);
        return IdempotencyListener.Outcome.STORE_FAILURE;
      } catch (RuntimeException | Error e) {
        // A store that cannot open one (a bug, or a store handed in that keeps its keys elsewhere):
        // the key is released and its renewal stopped, not left renewed for ever.
        abandon();
        throw e;
      }
    } else {
      request.captureAsync(capture, asyncCompletion());
    }
    try {
      if (transactional) {
        try (RequestTransactions.Binding bound = RequestTransactions.bind(transaction)) {
          chain.doFilter(new SynchronousOnly(request), capture);
        }
      } else {
        chain.doFilter(request, capture);
      }
    } catch (IOException | ServletException | RuntimeException | Error e) {
      abandon();
      if (LeaseLostException.isCauseOf(e)) {
        return answerAsARetry(); // a step found the lease taken over (SPEC §12)
      }
      throw e;
    }
    if (!transactional && request.isAsyncStarted()) {
      // Finished when the handler completes the async context (CapturedAsyncContext).
      return null;
    }
    return finish();
  }

  private CapturedAsyncContext.Completion asyncCompletion() {
    return new CapturedAsyncContext.Completion() {
      @Override
      public void finish() throws IOException {
        context.report(Execution.this.finish(), request, started);
      }

      @Override
      public void abandon() {
        Execution.this.abandon();
      }
    };
  }

  /** The handler failed: its writes are rolled back and the key released (SPEC §6). */
  private void abandon() {
    lease.stop();
    if (transaction != null) {
      transaction.close();
    }
    releaseQuietly();
  }

  /**
   * Stores (or releases) the captured response, then sends it to the client. Whatever fails on
   * the way (a bug, an error of the container) releases the key rather than leaving it in
   * progress until its lease runs out.
   */
  private IdempotencyListener.Outcome finish() throws IOException {
    try {
      return settle();
    } catch (IOException | RuntimeException | Error e) {
      abandon();
      throw e;
    }
  }

  private IdempotencyListener.Outcome settle() throws IOException {
    lease.settling();
    if (capture.isStreaming()) {
      // Over max-response-bytes: settled in settleBeforeStreaming, the body is on its way.
      capture.sendToClient();
      if (transaction != null) {
        transaction.close();
      }
      return IdempotencyListener.Outcome.EXECUTED;
    }
    if (capture.isAbandoned()) {
      // The body outgrew max-response-bytes and the key could not be settled: nothing was sent.
      return storeUnavailable("the response could not be stored; retry later");
    }
    if (context.config().isReleaseStatus(capture.getStatus())) {
      abandon();
      capture.sendToClient();
      return IdempotencyListener.Outcome.RELEASED;
    }
    StoredResponse stored = capture.toStoredResponse();
    return transaction != null ? commit(stored) : complete(stored);
  }

  /**
   * Settles the key before a response over max-response-bytes streams to the client (SPEC §6):
   * completes it without its body (in transactional mode, commits the handler's writes so far
   * with it), or releases it for a release status.
   *
   * @throws IOException if the key could not be settled: the response must not be sent
   */
  private void settleBeforeStreaming(StoredResponse notStored) throws IOException {
    lease.settling();
    if (context.config().isReleaseStatus(notStored.status())) {
      abandon();
      return;
    }
    Boolean completed;
    if (transaction != null) {
      try {
        completed = transaction.commit(notStored);
      } catch (StoreUnavailableException | TransactionAbortedException e) {
        completed = null;
      }
    } else {
      completed = completeWithRetries(notStored);
    }
    lease.stop();
    if (completed == null || !completed) {
      abandon();
      throw new IOException(
          completed == null ? "the idempotency store is unreachable" : "the lease was lost");
    }
  }

  /** Transactional mode: the completion and the handler's writes in one commit. */
  private IdempotencyListener.Outcome commit(StoredResponse stored) throws IOException {
    boolean committed;
    try {
      committed = transaction.commit(stored);
    } catch (TransactionAbortedException e) {
      return transactionAborted(e);
    } catch (StoreUnavailableException e) {
      // Nothing was stored, unless the commit landed and only its reply was lost: then the
      // release below finds the key completed and leaves it, and a retry replays.
      abandon();
      LOG.log(System.Logger.Level.ERROR, "the transaction of a request could not be committed: {0}",
          e.getMessage());
      return storeUnavailable("the response could not be stored; retry later");
    }
    lease.stop();
    transaction.close();
    if (!committed) {
      // The lease was taken over: this request's writes were rolled back, so the client must not
      // see its response. It gets what a retry would get now.
      LOG.log(System.Logger.Level.WARNING,
          "a request finished after its lease on a key was taken over (token {0});"
              + " its writes were rolled back", token);
      return answerAsARetry();
    }
    capture.sendToClient();
    return IdempotencyListener.Outcome.EXECUTED;
  }

  /** The lease was lost: the client gets what a retry would get now, not this run's response. */
  private IdempotencyListener.Outcome answerAsARetry() throws IOException {
    capture.discardHandlersResponse();
    try {
      context.answer(key, context.store().claim(key, fingerprint), response);
    } catch (StoreUnavailableException e) {
      storeUnavailable("the response could not be stored; retry later");
    }
    return IdempotencyListener.Outcome.STALE_COMPLETION;
  }

  /**
   * The handler went on after an SQL error in its transaction: its failure, not the store's
   * (which answered). Nothing was committed; the key is released, as for a handler that threw.
   */
  private IdempotencyListener.Outcome transactionAborted(TransactionAbortedException e)
      throws IOException {
    abandon();
    LOG.log(System.Logger.Level.ERROR,
        "a request went on after an SQL error in its transaction, which PostgreSQL then aborted:"
            + " nothing was committed and its key was released. A handler that catches an SQL"
            + " error must roll back to a savepoint set before the statement (README,"
            + " transactional mode). {0}", e.getMessage());
    capture.discardHandlersResponse();
    Problem.TRANSACTION_ABORTED.write(response,
        "the request's database transaction was aborted by an error inside it; nothing was"
            + " saved");
    return IdempotencyListener.Outcome.RELEASED;
  }

  /**
   * Non-transactional mode: the completion in its own statement, tried again while the store is
   * away (the lease still renewed) for up to completion-timeout (SPEC §8).
   */
  private IdempotencyListener.Outcome complete(StoredResponse stored) throws IOException {
    Boolean completed;
    try {
      completed = completeWithRetries(stored);
    } finally {
      lease.stop();
    }
    if (completed == null) {
      // The handler ran but its response could not be stored. The key stays in progress until
      // its lease runs out; answering 503 keeps the rule that a client never sees a response that
      // a retry could not replay.
      LOG.log(System.Logger.Level.ERROR,
          "the response for a key could not be stored within {0}; answering 503",
          context.config().completionTimeout());
      return storeUnavailable("the response could not be stored; retry later");
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

  /** True if stored, false if the token is stale, null if the store stayed away too long. */
  private Boolean completeWithRetries(StoredResponse stored) {
    long deadline = System.nanoTime() + context.config().completionTimeout().toNanos();
    long backoffMillis = 50;
    while (true) {
      try {
        return context.store().complete(key, token, stored);
      } catch (StoreUnavailableException e) {
        long left = deadline - System.nanoTime();
        if (left <= 0 || !pause(Math.min(backoffMillis, left / 1_000_000 + 1))) {
          return null;
        }
        backoffMillis = Math.min(2_000, backoffMillis * 2);
      }
    }
  }

  private IdempotencyListener.Outcome storeUnavailable(String detail) throws IOException {
    capture.discardHandlersResponse();
    Problem.STORE_UNAVAILABLE.write(response, detail, STORE_RETRY_AFTER);
    return IdempotencyListener.Outcome.STORE_FAILURE;
  }

  private void releaseQuietly() {
    releaseQuietly(context.store(), key, token);
  }

  /**
   * Releases a key held with {@code token}; when the store fails, the key's lease runs out by
   * itself and the key is free again then.
   */
  static void releaseQuietly(IdempotencyStore store, IdempotencyKey key, long token) {
    try {
      store.release(key, token);
    } catch (RuntimeException e) {
      LOG.log(System.Logger.Level.WARNING, "releasing a key failed; its lease will run out", e);
    }
  }

  /** Sleeps; false (with the interrupt flag restored) if interrupted. */
  static boolean pause(long millis) {
    try {
      Thread.sleep(millis);
      return true;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    }
  }

  /**
   * The request as the handler sees it in transactional mode: the request's transaction is bound
   * to the thread that runs the handler, so asynchronous processing is refused at once (SPEC §6).
   */
  private static final class SynchronousOnly extends HttpServletRequestWrapper {
    SynchronousOnly(CachedBodyRequest request) {
      super(request);
    }

    @Override
    public boolean isAsyncSupported() {
      return false;
    }

    @Override
    public AsyncContext startAsync() {
      throw refused();
    }

    @Override
    public AsyncContext startAsync(ServletRequest request, ServletResponse response) {
      throw refused();
    }

    private static IllegalStateException refused() {
      return new IllegalStateException(
          "asynchronous processing is not supported with idempotency.transactional=true:"
              + " the request's transaction belongs to the thread that runs the handler");
    }
  }
}
