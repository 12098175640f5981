package io.idemkey.filter;

import jakarta.servlet.AsyncContext;
import jakarta.servlet.AsyncEvent;
import jakarta.servlet.AsyncListener;
import jakarta.servlet.ServletContext;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import java.io.IOException;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The async context a handler gets for a covered request. However the cycle ends, the record is
 * finished once (SPEC §6: responses produced asynchronously are captured when they complete):
 * {@link #complete()} stores and sends the captured response, then completes the real context;
 * a {@link #dispatch()} back through the filter ends in {@link #dispatchReturned()}, which does
 * the same before the container completes; a timeout or error releases the key.
 *
 * <p>Thread-safe: the record is finished exactly once, whichever thread completes.
 */
final class CapturedAsyncContext implements AsyncContext {

  private static final System.Logger LOG = System.getLogger(CapturedAsyncContext.class.getName());
  /** The request attribute under which a covered request's async context is found again. */
  static final String ATTRIBUTE = CapturedAsyncContext.class.getName();

  /** What to do once the async cycle ends. */
  interface Completion {
    /** The handler completed normally: store and send the captured response. */
    void finish() throws IOException;

    /** The cycle timed out or failed: release the key. */
    void abandon();
  }

  private final AsyncContext delegate;
  private final Completion completion;
  private final AtomicBoolean finished = new AtomicBoolean();

  CapturedAsyncContext(AsyncContext delegate, Completion completion) {
    this.delegate = delegate;
    this.completion = completion;
    delegate.addListener(
        new AsyncListener() {
          @Override
          public void onComplete(AsyncEvent event) {
            // Finished already (complete(), or after an ASYNC dispatch through the filter),
            // unless the filter is not mapped for ASYNC dispatches: then the container sent the
            // response without the filter, which can neither store nor send it now.
            if (finished.compareAndSet(false, true)) {
              LOG.log(System.Logger.Level.ERROR,
                  "an asynchronous request was dispatched past the idempotency filter; map the"
                      + " filter for the ASYNC dispatcher type too. Its key was released.");
              completion.abandon();
            }
          }

          @Override
          public void onTimeout(AsyncEvent event) {
            abandon();
          }

          @Override
          public void onError(AsyncEvent event) {
            abandon();
          }

          @Override
          public void onStartAsync(AsyncEvent event) {}
        });
  }

  private void abandon() {
    if (finished.compareAndSet(false, true)) {
      completion.abandon();
    }
  }

  /**
   * After an ASYNC dispatch through the filter has returned without starting another async
   * cycle: stores and sends the response, once, before the container completes the request.
   */
  void dispatchReturned() throws IOException {
    if (finished.compareAndSet(false, true)) {
      completion.finish();
    }
  }

  /** An ASYNC dispatch through the filter threw: the key is released. */
  void dispatchFailed() {
    abandon();
  }

  @Override
  public void complete() {
    try {
      if (finished.compareAndSet(false, true)) {
        completion.finish();
      }
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
    delegate.dispatch();
  }

  @Override
  public void dispatch(String path) {
    delegate.dispatch(path);
  }

  @Override
  public void dispatch(ServletContext context, String path) {
    delegate.dispatch(context, path);
  }

  @Override
  public void start(Runnable run) {
    delegate.start(run);
  }

  @Override
  public void addListener(AsyncListener listener) {
    delegate.addListener(listener);
  }

  @Override
  public void addListener(
      AsyncListener listener, ServletRequest request, ServletResponse response) {
    delegate.addListener(listener, request, response);
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
