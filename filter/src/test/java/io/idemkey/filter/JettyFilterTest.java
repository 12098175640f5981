package io.idemkey.filter;

class JettyFilterTest extends FilterHttpContract {
  @Override
  ServletContainer newContainer() {
    return new JettyContainer();
  }
}
