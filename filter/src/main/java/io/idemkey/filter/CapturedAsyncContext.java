package io.idemkey.filter;

import jakarta.servlet.AsyncContext;
import jakarta.servlet.AsyncEvent;
import jakarta.servlet.AsyncListener;
import jakarta.servlet.ServletContext;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import java.io.IOException;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * The async context a handler gets for a covered request. However the cycle ends, the record is
 * finished once, and it is decided when the cycle completes, not when it times out (SPEC §6:
 * responses produced asynchronously are captured when they complete): {@link #complete()} stores
 * and sends the captured response, then completes the real context; a {@link #dispatch()} back
 * through the filter ends in {@link #dispatchReturned()}, which does the same before the container
 * completes. A timeout or error first goes to the handler's own listeners, which may still answer
 * (the Servlet fallback pattern: write a response in {@code onTimeout}, then complete or
 * dispatch); only if none did is the key released, before the container answers with its error.
 *
 * <p>The handler's listeners are kept here, not on the container's context, so that they run
 * before the filter's decision: one listener on the container's context calls them, then decides.
 *
 * <p>Thread-safe: whichever thread completes, the record is finished or abandoned exactly once, by
 * the request's {@link Execution}, whose state machine decides.
 */
final class CapturedAsyncContext implements AsyncContext {

  private static final System.Logger LOG = System.getLogger(CapturedAsyncContext.class.getName());
  /** The request attribute under which a covered request's async context is found again. */
  static final String ATTRIBUTE = CapturedAsyncContext.class.getName();

  /** What to do once the async cycle ends. */
  interface Completion {
    /** The handler completed normally: store and send the captured response. */
    void finish() throws IOException;

    /**
     * The cycle timed out or failed and nobody answered: release the key. True if this call
     * abandoned the execution; false if it had been finished or abandoned already.
     */
    boolean abandon();
  }

  /** A listener of the handler's, with the request and response it was added with, if any. */
  private record Added(AsyncListener listener, ServletRequest request, ServletResponse response) {}

  private final AsyncContext delegate;
  private final Completion completion;
  private final List<Added> listeners = new CopyOnWriteArrayList<>();
  /** A dispatch() was asked for in this cycle: it finishes the record when it returns. */
  private volatile boolean dispatched;
  private final AsyncListener decision = new AsyncListener() {
    @Override
    public void onComplete(AsyncEvent event) throws IOException {
      forEachListener(event, AsyncListener::onComplete);
      // Finished already (complete(), or after an ASYNC dispatch through the filter), unless the
      // filter is not mapped for ASYNC dispatches: then the container sent the response without
      // the filter, which can neither store nor send it now.
      if (completion.abandon()) {
        LOG.log(System.Logger.Level.ERROR,
            "an asynchronous request was dispatched past the idempotency filter; map the"
                + " filter for the ASYNC dispatcher type too. Its key was released.");
      }
    }

    @Override
    public void onTimeout(AsyncEvent event) throws IOException {
      try {
        forEachListener(event, AsyncListener::onTimeout);
      } finally {
        abandonUnlessAnswered();
      }
    }

    @Override
    public void onError(AsyncEvent event) throws IOException {
      try {
        forEachListener(event, AsyncListener::onError);
      } finally {
        abandonUnlessAnswered();
      }
    }

    @Override
    public void onStartAsync(AsyncEvent event) throws IOException {
      // A new cycle (startAsync during an ASYNC dispatch): as the container does, the handler's
      // listeners hear of it and are dropped unless they add themselves again.
      dispatched = false;
      List<Added> previous = List.copyOf(listeners);
      listeners.clear();
      event.getAsyncContext().addListener(this);
      for (Added added : previous) {
        added.listener().onStartAsync(eventFor(added, event));
      }
    }
  };

  CapturedAsyncContext(AsyncContext delegate, Completion completion) {
    this.delegate = delegate;
    this.completion = completion;
    delegate.addListener(decision);
  }

  private interface Call {
    void on(AsyncListener listener, AsyncEvent event) throws IOException;
  }

  private void forEachListener(AsyncEvent event, Call call) throws IOException {
    for (Added added : listeners) {
      call.on(added.listener(), eventFor(added, event));
    }
  }

  /** The event as the handler's listener sees it: this context, its own request and response. */
  private AsyncEvent eventFor(Added added, AsyncEvent event) {
    ServletRequest request =
        added.request() != null ? added.request() : event.getSuppliedRequest();
    ServletResponse response =
        added.response() != null ? added.response() : event.getSuppliedResponse();
    return new AsyncEvent(this, request, response, event.getThrowable());
  }

  /** After a timeout or error: nobody completed or dispatched, so the key is released. */
  private void abandonUnlessAnswered() {
    if (!dispatched) {
      completion.abandon();
    }
  }

  /**
   * After an ASYNC dispatch through the filter has returned without starting another async
   * cycle: stores and sends the response, once, before the container completes the request.
   */
  void dispatchReturned() throws IOException {
    completion.finish();
  }

  /** An ASYNC dispatch through the filter threw: the key is released. */
  void dispatchFailed() {
    completion.abandon();
  }

  @Override
  public void complete() {
    try {
      completion.finish();
    } catch (IOException e) {
      // The client went away; the record is stored already if it could be.
    } finally {
      delegate.complete(); // whatever failed above, the request ends now, not at its timeout
    }
  }

  @Override
  public ServletRequest getRequest() {
    return delegate.getRequest();
  }

  @Override
  public ServletResponse getResponse() {
    return delegate.getResponse();
  }

  @Override
  public boolean hasOriginalRequestAndResponse() {
    return delegate.hasOriginalRequestAndResponse();
  }

  @Override
  public void dispatch() {
    dispatched = true;
    delegate.dispatch();
  }

  @Override
  public void dispatch(String path) {
    dispatched = true;
    delegate.dispatch(path);
  }

  @Override
  public void dispatch(ServletContext context, String path) {
    dispatched = true;
    delegate.dispatch(context, path);
  }

  @Override
  public void start(Runnable run) {
    delegate.start(run);
  }

  @Override
  public void addListener(AsyncListener listener) {
    listeners.add(new Added(listener, null, null));
  }

  @Override
  public void addListener(
      AsyncListener listener, ServletRequest request, ServletResponse response) {
    listeners.add(new Added(listener, request, response));
  }

  @Override
  public <T extends AsyncListener> T createListener(Class<T> type)
      throws jakarta.servlet.ServletException {
    return delegate.createListener(type);
  }

  @Override
  public void setTimeout(long timeout) {
    delegate.setTimeout(timeout);
  }

  @Override
  public long getTimeout() {
    return delegate.getTimeout();
  }
}
