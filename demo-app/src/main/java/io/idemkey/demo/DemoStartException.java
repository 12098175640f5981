package io.idemkey.demo;

/**
 * The demo cannot start as asked, for a reason the user can act on; its message is one line that
 * says what to do. {@link DemoApp#main} prints it instead of a stack trace.
 */
final class DemoStartException extends RuntimeException {

  private static final long serialVersionUID = 1L;

  DemoStartException(String message) {
    super(message);
  }
}
