package io.idemkey.demo;

import java.nio.ByteBuffer;
import org.eclipse.jetty.http.HttpFields;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.handler.ErrorHandler;
import org.eclipse.jetty.util.Callback;

/**
 * Jetty's error page replaced by problem+json ({@link ProblemJson}): for the errors Jetty
 * produces itself (a malformed request, an unmapped path, a method a servlet does not serve, a
 * request refused while the server shuts down, an exception no filter caught). Neither Jetty's
 * message nor the exception reaches the client. Thread-safe: it holds no state.
 */
final class ProblemErrorHandler extends ErrorHandler {

  @Override
  protected void generateResponse(
      Request request, Response response, int code, String message, Throwable cause,
      Callback callback) {
    response.getHeaders().put(HttpHeader.CONTENT_TYPE, ProblemJson.CONTENT_TYPE);
    response.write(true, ByteBuffer.wrap(ProblemJson.of(code, ProblemJson.detailFor(code))),
        callback);
  }

  /** Every method gets its problem+json body (Jetty's default: GET, POST and HEAD only). */
  @Override
  public boolean errorPageForMethod(String method) {
    return true;
  }

  /** A request Jetty could not parse (bad request line or headers) never reaches a handler. */
  @Override
  public ByteBuffer badMessageError(int status, String reason, HttpFields.Mutable fields) {
    fields.put(HttpHeader.CONTENT_TYPE, ProblemJson.CONTENT_TYPE);
    return ByteBuffer.wrap(ProblemJson.of(status, ProblemJson.detailFor(status)));
  }
}
