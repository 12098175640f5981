package io.idemkey.filter;

class TomcatFilterTest extends FilterHttpContract {
  @Override
  ServletContainer newContainer() {
    return new TomcatContainer();
  }
}
