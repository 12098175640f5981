package io.idemkey.frameworks;

class SpringMvcOnTomcatTest extends SpringMvcContract {
  @Override
  ServletContainer newContainer() {
    return new TomcatContainer();
  }
}
