package io.idemkey.filter;

import io.idemkey.execution.HeldKey;
import io.idemkey.execution.IdempotentExecutor;
import io.idemkey.execution.LeaseLostException;
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
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * One request that holds its key, from its claim to its answer: its life is one state machine
 * (SPEC §5, §6, §12, §15), the HTTP adapter over the execution layer's {@link HeldKey} (which
 * renews the lease, opens the transaction and keeps the steps, as it does for a message consumer).
 * It runs the handler with the lease renewed, captures the response, and
 * stores it (or releases the key) before a byte reaches the client. In transactional mode the
 * handler runs in the store's transaction, begun when the handler first asks for a connection,
 * and the completion commits with the handler's writes; otherwise the completion is retried while
 * the store is away, for up to {@code completion-timeout}.
 *
 * <p>The states, and the connection each holds (of the requests' pool unless said; renewals run
 * on the node's own connections throughout):
 *
 * <ul>
 *   <li>{@code CLAIMED}: the key is held, the handler has not started. None. In transactional
 *       mode it waits here for its turn ({@link Context#turns()}), up to {@code
 *       jdbc.connect-timeout}, and is answered 503 before its handler runs if none comes.
 *   <li>{@code RUNNING}: the handler runs, on its thread or in its async cycle. Without a
 *       transaction: none (a step takes one for its lookup, and again for its save). In
 *       transactional mode: none until the handler first asks for a connection, then that one,
 *       which also serves its step lookups; a step's result is then saved on the node's.
 *   <li>{@code SETTLING}: the response is being stored: the completion's connection, or the
 *       transaction's for its commit.
 *   <li>{@code STREAMING}: settled before the end of a body over {@code max-response-bytes}; the
 *       body streams to the client. The transaction's, committed, until {@code DONE}.
 *   <li>{@code DONE}: answered: with the stored response, as a retry would be, or with a
 *       response that streamed or was refused once its key was settled. None.
 *   <li>{@code RELEASED}: the key released, the handler's response (a release status) answered.
 *   <li>{@code ABANDONED}: the key released; nothing of this run reaches the client (a handler
 *       that threw, an async cycle that timed out, a store that failed the settling).
 * </ul>
 *
 * <p>Invariants: every move goes through {@link #moveTo}, which makes it once, whatever thread
 * asks (the handler's, a write that overflows the cap, the container's async completion, timeout
 * or error), so two of them can never both settle or both release the key. Entering a final state
 * stops the lease and returns the transaction's connection and the turn; entering {@code
 * RELEASED} or {@code ABANDONED} releases the key first, which is the only place a key is
 * released. With turns, at most as many requests are past {@code CLAIMED} as the pool has
 * connections, and each holds at most one of them: none waits for a connection another holds. A lease found
 * lost is reported only while {@code RUNNING}: once settling, the completion's answer tells.
 *
 * <p>Thread-safety: the state is an atomic reference; the other fields are written before the
 * handler starts and only read after, except the transaction, which is confined to the handler's
 * thread until a final state closes it.
 */
final class Execution {

  private static final System.Logger LOG = System.getLogger(Execution.class.getName());
  static final Duration STORE_RETRY_AFTER = Duration.ofSeconds(2);

  /** The states of a request's life; see the class comment. */
  enum State { CLAIMED, RUNNING, SETTLING, STREAMING, DONE, RELEASED, ABANDONED }

  /** What the execution needs of the filter. */
  interface Context {
    IdempotencyConfig config();

    IdempotencyStore store();

    /** The execution layer: holds the key (lease, transaction, steps) while the handler runs. */
    IdempotentExecutor executor();

    /**
     * In transactional mode, the turns to run a handler: as many as the requests' pool has
     * connections (SPEC §15); null when unbounded.
     */
    Semaphore turns();

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
  private final AtomicReference<State> state = new AtomicReference<>(State.CLAIMED);
  private HeldKey held;
  private StoreTransaction transaction;
  /** The turn this request holds, given back once when it ends; null without one. */
  private final AtomicReference<Semaphore> turn = new AtomicReference<>();

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
    boolean transactional = context.config().transactional();
    if (transactional && !awaitTurn()) {
      abandon();
      Problem.STORE_UNAVAILABLE.write(response, "all " + context.store().requestConnections()
          + " database connections stayed in use for "
          + context.config().jdbcConnectTimeout().toMillis() + " ms; retry later",
          STORE_RETRY_AFTER);
      return IdempotencyListener.Outcome.STORE_FAILURE;
    }
    try {
      // The lease renewed from here on; in transactional mode the transaction open, without a
      // connection yet.
      held = context.executor().hold(key, fingerprint, token, this::leaseLost,
          (replayed, stepStarted) -> context.report(replayed
              ? IdempotencyListener.Outcome.STEP_REPLAYED
              : IdempotencyListener.Outcome.STEP_EXECUTED, request, stepStarted));
      transaction = held.transaction().orElse(null);
      if (!transactional) {
        request.captureAsync(capture, asyncCompletion());
      }
      request.setAttribute(Steps.ATTRIBUTE, Steps.of(held.steps()));
      moveTo(State.CLAIMED, State.RUNNING);
    } catch (RuntimeException | Error e) {
      // A store that cannot open a transaction (a bug, or a store handed in that keeps its keys
      // elsewhere): the key is released and its renewal stopped, not left renewed for ever.
      abandon();
      throw e;
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
      // The container answers the exception; the key was released, and that is its outcome.
      context.report(IdempotencyListener.Outcome.RELEASED, request, started);
      throw e;
    }
    if (!transactional && request.isAsyncStarted()) {
      // Finished when the handler completes the async context (CapturedAsyncContext).
      return null;
    }
    return finish();
  }

  /**
   * Waits for a turn to run, up to {@code jdbc.connect-timeout}, in the order requests came
   * (SPEC §15). True with a turn, or when turns are unbounded.
   */
  private boolean awaitTurn() {
    Semaphore turns = context.turns();
    if (turns == null) {
      return true;
    }
    try {
      if (!turns.tryAcquire(context.config().jdbcConnectTimeout().toNanos(),
          TimeUnit.NANOSECONDS)) {
        return false;
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    }
    turn.set(turns);
    return true;
  }

  private CapturedAsyncContext.Completion asyncCompletion() {
    return new CapturedAsyncContext.Completion() {
      @Override
      public void finish() throws IOException {
        IdempotencyListener.Outcome outcome = Execution.this.finish();
        if (outcome != null) {
          context.report(outcome, request, started);
        }
      }

      @Override
      public boolean abandon() {
        return Execution.this.abandon();
      }
    };
  }

  /**
   * Moves the execution from {@code from} to {@code to}, once: false if it is not in {@code from}
   * (another thread moved it first). Entering a final state stops the lease, releases the key
   * when the state says so, and returns the transaction's connection and the turn; each of those
   * happens once, however many final states follow (a streamed or refused response then moves
   * on to {@code DONE} once it is sent).
   */
  private boolean moveTo(State from, State to) {
    if (!state.compareAndSet(from, to)) {
      return false;
    }
    if (to == State.RUNNING || to == State.SETTLING) {
      return true;
    }
    if (held != null) {
      held.stopLease();
    }
    if (to == State.RELEASED || to == State.ABANDONED) {
      releaseKey();
    }
    if (to != State.STREAMING) {
      if (held != null) {
        held.close(); // closes the transaction once; confined to the handler's thread (no async)
      }
      Semaphore held = turn.getAndSet(null);
      if (held != null) {
        held.release();
      }
    }
    return true;
  }

  /**
   * The run failed before its response was settled: its writes are rolled back and the key
   * released (SPEC §6). True if this call abandoned it; false if it had ended already.
   */
  private boolean abandon() {
    for (State from : new State[] {State.CLAIMED, State.RUNNING, State.SETTLING}) {
      if (moveTo(from, State.ABANDONED)) {
        return true;
      }
    }
    return false;
  }

  /**
   * Releases the key, on the transaction's connection when it has one; when the store fails, the
   * key's lease runs out by itself and the key is free again then.
   */
  private void releaseKey() {
    if (held != null) {
      held.release();
    } else {
      releaseQuietly(context.store(), key, token); // never held: holding it failed
    }
  }

  /** A renewal found the lease taken over. */
  private void leaseLost() {
    if (state.get() == State.RUNNING) {
      LOG.log(System.Logger.Level.WARNING,
          "the lease on a key (token {0}) was lost while its request ran", token);
      context.report(IdempotencyListener.Outcome.LEASE_LOST, request, started);
    }
  }

  /**
   * Stores (or releases) the captured response, then sends it to the client; null if there was
   * nothing left to do (the execution ended meanwhile, e.g. its async cycle timed out). Whatever
   * fails on the way (a bug, an error of the container) releases the key rather than leaving it
   * in progress until its lease runs out.
   */
  private IdempotencyListener.Outcome finish() throws IOException {
    try {
      switch (state.get()) {
        case STREAMING:
          // Over max-response-bytes: completed in settleBeforeStreaming, the body on its way.
          if (moveTo(State.STREAMING, State.DONE)) {
            capture.sendToClient();
            return IdempotencyListener.Outcome.EXECUTED;
          }
          return null;
        case RELEASED:
          // Over max-response-bytes with a release status: released, the body on its way.
          if (capture.isStreaming() && moveTo(State.RELEASED, State.DONE)) {
            capture.sendToClient();
            return IdempotencyListener.Outcome.RELEASED;
          }
          return null;
        case ABANDONED:
          // The body outgrew max-response-bytes and the key could not be settled: nothing was
          // sent, and the client is told so, once.
          if (capture.isAbandoned() && moveTo(State.ABANDONED, State.DONE)) {
            return storeUnavailable("the response could not be stored; retry later");
          }
          return null;
        case RUNNING:
          break;
        default:
          return null; // settled or being settled by another thread
      }
      if (!moveTo(State.RUNNING, State.SETTLING)) {
        return null;
      }
      if (context.config().isReleaseStatus(capture.getStatus())) {
        moveTo(State.SETTLING, State.RELEASED);
        capture.sendToClient();
        return IdempotencyListener.Outcome.RELEASED;
      }
      StoredResponse stored = capture.toStoredResponse();
      return transaction != null ? commit(stored) : complete(stored);
    } catch (IOException | RuntimeException | Error e) {
      abandon();
      throw e;
    }
  }

  /**
   * Settles the key before a response over max-response-bytes streams to the client (SPEC §6):
   * completes it without its body (in transactional mode, commits the handler's writes so far
   * with it), or releases it for a release status.
   *
   * @throws IOException if the key could not be settled: the response must not be sent
   */
  private void settleBeforeStreaming(StoredResponse notStored) throws IOException {
    if (!moveTo(State.RUNNING, State.SETTLING)) {
      throw new IOException("the request's execution has ended");
    }
    if (context.config().isReleaseStatus(notStored.status())) {
      moveTo(State.SETTLING, State.RELEASED); // the body streams; nothing is stored
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
    if (completed == null || !completed) {
      abandon();
      throw new IOException(
          completed == null ? "the idempotency store is unreachable" : "the lease was lost");
    }
    moveTo(State.SETTLING, State.STREAMING);
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
      // release finds the key completed and leaves it, and a retry replays.
      abandon();
      LOG.log(System.Logger.Level.ERROR, "the transaction of a request could not be committed: {0}",
          e.getMessage());
      return storeUnavailable("the response could not be stored; retry later");
    }
    moveTo(State.SETTLING, State.DONE);
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
   * The handler went on after an SQL error in its transaction, or its commit was refused for what
   * the transaction did (a constraint checked at commit, a serialization failure): its failure,
   * not the store's (which answered). Nothing was committed; the key is released, as for a handler
   * that threw, and a retry runs the handler again.
   */
  private IdempotencyListener.Outcome transactionAborted(TransactionAbortedException e)
      throws IOException {
    abandon();
    LOG.log(System.Logger.Level.ERROR,
        "a request's transaction was rolled back by an error of its own (a failed statement the"
            + " handler went on after, or a constraint or serialization failure at commit):"
            + " nothing was committed and its key was released. A handler that catches an SQL"
            + " error must roll back to a savepoint set before the statement (README,"
            + " transactional mode). {0}", e.getMessage());
    capture.discardHandlersResponse();
    Problem.TRANSACTION_ABORTED.write(response,
        "the request's database transaction was rolled back by an error in it; nothing was"
            + " saved");
    return IdempotencyListener.Outcome.RELEASED;
  }

  /**
   * Non-transactional mode: the completion in its own statement, tried again while the store is
   * away (the lease still renewed) for up to completion-timeout (SPEC §8).
   */
  private IdempotencyListener.Outcome complete(StoredResponse stored) throws IOException {
    Boolean completed = completeWithRetries(stored);
    moveTo(State.SETTLING, State.DONE);
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

  /**
   * Releases a key held with {@code token} that no execution holds (a claim answered as a
   * duplicate); when the store fails, the key's lease runs out by itself.
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
