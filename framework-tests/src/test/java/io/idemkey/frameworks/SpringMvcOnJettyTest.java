package io.idemkey.frameworks;

class SpringMvcOnJettyTest extends SpringMvcContract {
  @Override
  ServletContainer newContainer() {
    return new JettyContainer();
  }
}
